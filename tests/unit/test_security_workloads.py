"""Restricted pod security for every workload we ship or create, and least-privilege RBAC.

Covered: the operator from the chart (every mode) and from `install generate`; what the
operator builds for the examples (shard StatefulSets with the chroma container and the
router sidecar, the encoder Deployment); the tuning Job/CronJob when that builder exists.
Every container runs with a read-only root filesystem: what the programs write goes to
emptyDir volumes (/tmp, the encoder's model cache) or the shard's PersistentVolumeClaim.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import build_all, owner_of
from chroma_operator.install import InstallOptions, build_install
from chroma_operator.reconcile.rbac import cluster_scoped_rules, operator_rules

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "chroma-operator"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}

# Containers that may not run with a read-only root filesystem, and why. None today.
WRITABLE_ROOT: dict[str, str] = {}


def _chart_objects() -> list[tuple[str, dict[str, Any]]]:
    production = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
    out = []
    with helm.Chart.load(CHART) as chart:
        for label, values in (
            ("default", {}),
            ("namespaced", {"watchNamespaces": ["a", "b"]}),
            ("production", production),
        ):
            rendered = chart.render(values, name="chroma-operator", namespace="ops")
            for path, text in rendered.items():
                if not path.endswith("NOTES.txt"):
                    out += [(f"chart[{label}]", d) for d in yaml.safe_load_all(text) if d]
    return out


def _operator_built(repo_root: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for example in ("quickstart", "production"):
        cluster = parse_cluster(
            yaml.safe_load((repo_root / "examples" / f"{example}.yaml").read_text())
        )
        owner = owner_of(cluster, "search", uid="0000")
        out += [(f"build_all[{example}]", m) for m in build_all(cluster, owner)]
        tuning = _tuning_objects(cluster, owner)
        out += [(f"tuning[{example}]", m) for m in tuning]
    return out


def _tuning_objects(cluster: Any, owner: Any) -> list[dict[str, Any]]:
    """The tuning Job and CronJob, once `chroma_operator.build.tuning` exists."""
    try:
        tuning = importlib.import_module("chroma_operator.build.tuning")
    except ImportError:
        return []
    out = []
    cron = getattr(tuning, "build_tuning_cronjob", None)
    job = getattr(tuning, "build_tuning_job", None)
    if cron is not None and (manifest := cron(owner, cluster.spec)) is not None:
        out.append(manifest)
    if job is not None:
        out.append(job(owner, cluster.spec, "security-test"))
    return out


ALL_OBJECTS = (
    _chart_objects()
    + [("install", m) for m in build_install(InstallOptions())]
    + [("install[ha]", m) for m in build_install(InstallOptions(replicas=2))]
    + _operator_built(ROOT)
)


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        spec: dict[str, Any] = obj["spec"]
    elif obj["kind"] == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = obj["spec"]["template"]["spec"]
    return spec


WORKLOADS = [
    pytest.param(obj, id=f"{src}:{obj['kind']}/{obj['metadata']['name']}")
    for src, obj in ALL_OBJECTS
    if obj["kind"] in WORKLOAD_KINDS
]


def test_every_kind_of_workload_is_covered() -> None:
    covered = {(p.values[0]["kind"], p.values[0]["metadata"]["name"]) for p in WORKLOADS}
    names = {name for _, name in covered}
    assert ("Deployment", "chroma-operator") in covered
    assert ("StatefulSet", "chroma-operator") in covered
    assert any(n.startswith("search-shard-") for n in names)
    assert "search-encoder" in names
    containers = {c["name"] for p in WORKLOADS for c in _pod_spec(p.values[0])["containers"]}
    assert {"operator", "chroma", "router", "encoder"} <= containers, containers


@pytest.mark.parametrize("obj", WORKLOADS)
def test_restricted_pod_security(obj: dict[str, Any]) -> None:
    pod = _pod_spec(obj)
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag), flag
    assert not [v for v in pod.get("volumes", []) if "hostPath" in v]
    pod_ctx = pod.get("securityContext", {})
    assert pod_ctx.get("runAsNonRoot") is True
    assert pod_ctx.get("runAsUser", 1) != 0
    assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    containers = pod["containers"] + pod.get("initContainers", [])
    for c in containers:
        ctx = c.get("securityContext", {})
        where = f"container {c['name']}"
        assert ctx.get("allowPrivilegeEscalation") is False, where
        assert not ctx.get("privileged"), where
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not ctx.get("capabilities", {}).get("add"), where
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, where
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", where
        if c["name"] not in WRITABLE_ROOT:
            assert ctx.get("readOnlyRootFilesystem") is True, where
        for port in c.get("ports", []):
            assert "hostPort" not in port, where


def _rule_sets() -> list[tuple[str, list[dict[str, Any]]]]:
    out = [("operator_rules", operator_rules()), ("cluster_scoped_rules", cluster_scoped_rules())]
    out += [
        (f"{src}:{obj['kind']}/{obj['metadata']['name']}", obj["rules"])
        for src, obj in ALL_OBJECTS
        if obj["kind"] in ("Role", "ClusterRole")
    ]
    return out


@pytest.mark.parametrize(("where", "rules"), _rule_sets(), ids=[w for w, _ in _rule_sets()])
def test_rbac_is_least_privilege(where: str, rules: list[dict[str, Any]]) -> None:
    assert rules, where
    for rule in rules:
        assert "nonResourceURLs" not in rule
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], (where, rule)
            assert not any("*" in value for value in rule[field]), (where, rule)
        assert "secrets" not in rule["resources"], (where, rule)
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
        assert not {"pods/exec", "pods/attach", "serviceaccounts/token"} & set(rule["resources"])


def test_namespaced_rules_hold_no_cluster_scoped_resources() -> None:
    cluster_only = {r for rule in cluster_scoped_rules() for r in rule["resources"]}
    assert not cluster_only & {r for rule in operator_rules() for r in rule["resources"]}
