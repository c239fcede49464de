"""Builders: valid Kubernetes objects, deterministic, and a change touches only its objects."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Manifest, Owner, build_all, owner_of
from chroma_operator.build.naming import CONFIG_HASH_ANNOTATION, SPEC_HASH_ANNOTATION
from chroma_operator.topology import TOPOLOGY_KEY, Topology
from chroma_operator.yamlio import dump_all
from manifests import validate_manifest

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _cluster(spec: dict[str, Any], name: str = "c") -> dict[str, Any]:
    return {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }


def _build(
    doc: dict[str, Any], uid: str | None = "0f6a3c1e-1111-4c2b-9a55-5b0c9d1f0a01"
) -> list[Manifest]:
    cluster = parse_cluster(doc)
    return build_all(cluster, owner_of(cluster, "default", uid))


def _by_key(manifests: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


EDGE_SPECS = {
    "one-shard": {"shards": 1},
    "64-shards": {"shards": 64, "replicas": 2},
    "gpu-0": {"encoder": {"enabled": True, "gpu": 0}},
    "gpu-4": {"encoder": {"enabled": True, "gpu": 4, "nodeSelector": {"pool": "gpu"}}},
    "replicas-3": {"replicas": 3, "storage": {"storageClassName": "ssd"}},
    "secured": {
        "auth": {"secretName": "demo-tokens"},
        "tls": {"secretName": "demo-tls"},
        "encoder": {"enabled": True},
        "monitoring": {"serviceMonitor": True},
        "network": {
            "allowFrom": [
                {"namespaceSelector": {"matchLabels": {"team": "search"}}},
                {
                    "podSelector": {
                        "matchExpressions": [{"key": "role", "operator": "In", "values": ["api"]}]
                    }
                },
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
            ]
        },
    },
    "no-policies": {"network": {"policies": False}},
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_examples_validate_against_kubernetes(
    version: str, quickstart: dict[str, Any], production: dict[str, Any]
) -> None:
    for doc in (quickstart, production):
        for manifest in _build(doc):
            validate_manifest(manifest, version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", list(EDGE_SPECS))
def test_edge_specs_validate_against_kubernetes(version: str, name: str) -> None:
    for manifest in _build(_cluster(EDGE_SPECS[name])):
        validate_manifest(manifest, version)


def test_objects_of_the_quickstart(quickstart: dict[str, Any]) -> None:
    objs = _by_key(_build(quickstart))
    assert sorted(objs) == sorted(
        [
            ("ConfigMap", "quickstart-config"),
            ("Service", "quickstart-shard-0"),
            ("StatefulSet", "quickstart-shard-0"),
            ("Service", "quickstart-shard-1"),
            ("StatefulSet", "quickstart-shard-1"),
            ("Service", "quickstart"),
            ("Deployment", "quickstart-encoder"),
            ("Service", "quickstart-encoder"),
            ("NetworkPolicy", "quickstart-shards"),
            ("NetworkPolicy", "quickstart-encoder"),
        ]
    )
    for m in objs.values():
        assert m["metadata"]["namespace"] == "default"
        labels = m["metadata"]["labels"]
        for key in ("name", "instance", "component", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels
        assert labels["app.kubernetes.io/instance"] == "quickstart"
        (ref,) = m["metadata"]["ownerReferences"]
        assert ref["kind"] == "ChromaCluster" and ref["controller"] is True
        assert len(m["metadata"]["annotations"][SPEC_HASH_ANNOTATION]) == 16


def test_render_without_uid_has_no_owner_references(quickstart: dict[str, Any]) -> None:
    for m in _build(quickstart, uid=None):
        assert "ownerReferences" not in m["metadata"]


def test_pdb_only_with_replicas() -> None:
    assert not [m for m in _build(_cluster({"replicas": 1})) if m["kind"] == "PodDisruptionBudget"]
    pdbs = [
        m
        for m in _build(_cluster({"shards": 3, "replicas": 2}))
        if m["kind"] == "PodDisruptionBudget"
    ]
    assert [p["metadata"]["name"] for p in pdbs] == ["c-shard-0", "c-shard-1", "c-shard-2"]
    assert pdbs[0]["spec"]["maxUnavailable"] == 1


def test_topology_in_config_map(production: dict[str, Any]) -> None:
    cm = _by_key(_build(production))[("ConfigMap", "search-config")]
    topo = Topology.from_json(cm["data"][TOPOLOGY_KEY])
    assert len(topo.shards) == 8
    assert topo.shards[3].endpoints == [
        "http://search-shard-3-0.search-shard-3.vectors.svc.cluster.local:8000",
        "http://search-shard-3-1.search-shard-3.vectors.svc.cluster.local:8000",
    ]
    assert len(topo.router.peers) == 16
    assert (
        topo.hnsw.space == "cosine" and topo.hnsw.ef_search == 80 and topo.hnsw.max_neighbors == 32
    )
    assert (
        topo.encoder is not None
        and topo.encoder.url == "http://search-encoder.vectors.svc.cluster.local:8080"
    )
    assert topo.router.partial_results is True and topo.router.cache.max_entries == 50000
    assert topo.slo.latency_thresholds_ms == [50.0, 250.0]


def test_encoder_gpu_settings() -> None:
    gpu = _by_key(_build(_cluster(EDGE_SPECS["gpu-4"])))[("Deployment", "c-encoder")]
    pod = gpu["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert "cuda" in pod["containers"][0]["args"]
    cpu = _by_key(_build(_cluster(EDGE_SPECS["gpu-0"])))[("Deployment", "c-encoder")]
    cpu_pod = cpu["spec"]["template"]["spec"]
    assert "tolerations" not in cpu_pod and "nodeSelector" not in cpu_pod
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"].get("limits", {})
    assert "cpu" in cpu_pod["containers"][0]["args"]


def test_no_encoder_objects_when_disabled() -> None:
    kinds = {
        (m["kind"], m["metadata"]["name"])
        for m in _build(_cluster({"encoder": {"enabled": False}}))
    }
    assert ("Deployment", "c-encoder") not in kinds and ("Service", "c-encoder") not in kinds
    cm = _by_key(_build(_cluster({})))[("ConfigMap", "c-config")]
    assert Topology.from_json(cm["data"][TOPOLOGY_KEY]).encoder is None


def _pods(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (m["metadata"]["name"], m["spec"]["template"]["spec"])
        for m in manifests
        if m["kind"] in ("StatefulSet", "Deployment")
    ]


def test_restricted_pod_security(production: dict[str, Any]) -> None:
    for name, pod in _pods(_build(production)):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert not pod.get("hostNetwork") and not any("hostPath" in v for v in pod["volumes"])
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_probes_hit_real_endpoints(quickstart: dict[str, Any]) -> None:
    sts = _by_key(_build(quickstart))[("StatefulSet", "quickstart-shard-0")]
    chroma, router = sts["spec"]["template"]["spec"]["containers"]
    assert chroma["readinessProbe"]["httpGet"]["path"] == "/api/v2/heartbeat"
    assert router["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert router["args"][:3] == ["router", "--topology", "/etc/chroma-operator/topology.json"]


def test_builders_are_deterministic(production: dict[str, Any]) -> None:
    assert dump_all(_build(production)) == dump_all(_build(copy.deepcopy(production)))


def _changed(before: list[Manifest], after: list[Manifest]) -> set[tuple[str, str]]:
    a, b = _by_key(before), _by_key(after)
    assert a.keys() == b.keys()
    return {k for k in a if a[k] != b[k]}


def _with(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc["spec"]
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return doc


def test_ef_search_changes_only_the_config_map(production: dict[str, Any]) -> None:
    changed = _changed(_build(production), _build(_with(production, "hnsw.efSearch", 200)))
    assert changed == {("ConfigMap", "search-config")}


def test_encoder_replicas_change_only_the_encoder_deployment(production: dict[str, Any]) -> None:
    changed = _changed(_build(production), _build(_with(production, "encoder.replicas", 5)))
    assert changed == {("Deployment", "search-encoder")}


def test_router_cache_changes_only_the_config_map(production: dict[str, Any]) -> None:
    changed = _changed(_build(production), _build(_with(production, "router.cache.ttlSeconds", 5)))
    assert changed == {("ConfigMap", "search-config")}


def test_chroma_settings_restart_shards_through_the_pod_template(
    production: dict[str, Any],
) -> None:
    before = _build(production)
    after = _build(_with(production, "chromaConfig", {"allow_reset": True}))
    changed = _changed(before, after)
    assert changed == {("ConfigMap", "search-config")} | {
        ("StatefulSet", f"search-shard-{i}") for i in range(8)
    }
    sts = _by_key(after)[("StatefulSet", "search-shard-0")]
    old = _by_key(before)[("StatefulSet", "search-shard-0")]
    ann = sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    assert ann != old["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]


def test_spec_hash_tracks_content(quickstart: dict[str, Any]) -> None:
    a = _by_key(_build(quickstart))
    b = _by_key(_build(_with(quickstart, "replicas", 2)))
    key = ("StatefulSet", "quickstart-shard-0")
    assert (
        a[key]["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        != b[key]["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    )
    svc = ("Service", "quickstart")
    assert a[svc]["metadata"]["annotations"] == b[svc]["metadata"]["annotations"]


def test_owner_is_namespaced_by_resource_or_default() -> None:
    cluster = parse_cluster(_cluster({}))
    assert owner_of(cluster, "other") == Owner(name="c", namespace="ns", uid=None)
    doc = _cluster({})
    del doc["metadata"]["namespace"]
    assert owner_of(parse_cluster(doc), "other").namespace == "other"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rollout_and_verify_job_from_status(version: str) -> None:
    """What status asks for (a restart token per shard, a verify Job) the builders build."""
    cluster = parse_cluster(
        _cluster({"shards": 2, "tuning": {"collection": "docs", "apply": "efSearch"}})
    )
    owner = owner_of(cluster, "default", "0f6a3c1e-1111-4c2b-9a55-5b0c9d1f0a01")
    objs = _by_key(
        build_all(
            cluster,
            owner,
            {"ef_search": 40},
            {0: "2026-11-25T14:00:00Z"},
            ("2026-11-25T14:00:00Z", "docs"),
        )
    )
    tmpl0 = objs[("StatefulSet", "c-shard-0")]["spec"]["template"]["metadata"]["annotations"]
    tmpl1 = objs[("StatefulSet", "c-shard-1")]["spec"]["template"]["metadata"]["annotations"]
    assert tmpl0["chroma.operator.dev/restarted-at"] == "2026-11-25T14:00:00Z"
    assert "chroma.operator.dev/restarted-at" not in tmpl1
    topo = Topology.from_json(objs[("ConfigMap", "c-config")]["data"][TOPOLOGY_KEY])
    assert topo.hnsw.ef_search == 40  # the applied value, for collections created from now on
    (job,) = [m for k, m in objs.items() if k[0] == "Job"]
    assert job["metadata"]["name"].startswith("c-verify-")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        args[:3] == ["tune", "--url", "http://c.ns.svc.cluster.local:8000"] and "--verify" in args
    )
    validate_manifest(job, version)
