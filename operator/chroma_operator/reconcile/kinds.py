"""Every kind the operator touches, with its API path: the one table RBAC is derived from."""

from __future__ import annotations

from dataclasses import dataclass

from chroma_operator.api.models import API_GROUP, API_VERSION, PLURAL


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""


CHROMA_CLUSTER = Kind(f"{API_GROUP}/{API_VERSION}", "ChromaCluster", PLURAL)
CHROMA_BACKUP = Kind(f"{API_GROUP}/{API_VERSION}", "ChromaBackup", "chromabackups")

CHILD_KINDS: tuple[Kind, ...] = (
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Service", "services"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Kind("batch/v1", "CronJob", "cronjobs"),
    Kind("batch/v1", "Job", "jobs"),
    Kind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
    Kind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
)
"""Kinds the operator creates, patches and deletes as children of a ChromaCluster."""

EVENT = Kind("v1", "Event", "events")
POD = Kind("v1", "Pod", "pods")
"""Read only: a tuning Job's result is its Pod's termination message; upgrade failures."""
PVC = Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
"""Read and patched (never created or deleted): growing shard storage."""
STORAGE_CLASS = Kind("storage.k8s.io/v1", "StorageClass", "storageclasses")
"""Cluster-scoped, read only: whether a claim may grow (allowVolumeExpansion)."""

_BY_KEY = {
    (k.api_version, k.kind): k
    for k in (CHROMA_CLUSTER, CHROMA_BACKUP, EVENT, POD, PVC, STORAGE_CLASS, *CHILD_KINDS)
}


def lookup(api_version: str, kind: str) -> Kind:
    try:
        return _BY_KEY[(api_version, kind)]
    except KeyError:
        raise KeyError(f"the operator does not manage {kind} ({api_version})") from None


def api_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """The REST path of a kind; `namespace` None for cluster-scoped kinds."""
    k = lookup(api_version, kind)
    root = f"/apis/{k.api_version}" if k.group else f"/api/{k.api_version}"
    path = f"{root}/namespaces/{namespace}/{k.plural}" if namespace else f"{root}/{k.plural}"
    return f"{path}/{name}" if name else path
