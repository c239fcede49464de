"""The operator's RBAC rules: least privilege, no wildcards, one source for code and chart."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from chroma_operator.reconcile.kinds import CHILD_KINDS, CHROMA_BACKUP, CHROMA_CLUSTER

CHILD_VERBS = ["get", "list", "watch", "create", "patch", "delete"]


def operator_rules() -> list[dict[str, Any]]:
    """PolicyRules for a ClusterRole (all namespaces) or a Role per watched namespace."""
    children: dict[str, list[str]] = defaultdict(list)
    for kind in CHILD_KINDS:
        children[kind.group].append(kind.plural)
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": [CHROMA_CLUSTER.group],
            "resources": [CHROMA_CLUSTER.plural],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {
            "apiGroups": [CHROMA_CLUSTER.group],
            "resources": [f"{CHROMA_CLUSTER.plural}/status"],
            "verbs": ["get", "patch"],
        },
        # ChromaBackups: users create them, the operator runs each as a Job.
        {
            "apiGroups": [CHROMA_BACKUP.group],
            "resources": [CHROMA_BACKUP.plural],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {
            "apiGroups": [CHROMA_BACKUP.group],
            "resources": [f"{CHROMA_BACKUP.plural}/status"],
            "verbs": ["get", "patch"],
        },
    ]
    rules += [
        {"apiGroups": [group], "resources": sorted(plurals), "verbs": CHILD_VERBS}
        for group, plurals in sorted(children.items())
    ]
    rules += [
        # A tuning Job's result is the termination message on its Pod; a pod of a new
        # Chroma version that keeps restarting stops a rolling upgrade: read only.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        # Growing shard storage patches each claim (never creates or deletes one).
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims"],
            "verbs": ["get", "list", "patch"],
        },
        # Events on ChromaClusters (kopf posts core/v1 Events).
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        # kopf's peering keeps a second replica on standby.
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["kopfpeerings"],
            "verbs": ["get", "list", "watch", "patch"],
        },
    ]
    return rules


def cluster_scoped_rules() -> list[dict[str, Any]]:
    """What only a ClusterRole can grant: discovery of CRDs and cluster-wide peering."""
    return [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        # Whether a claim may grow (allowVolumeExpansion), and which class is the default.
        {
            "apiGroups": ["storage.k8s.io"],
            "resources": ["storageclasses"],
            "verbs": ["get", "list"],
        },
    ]
