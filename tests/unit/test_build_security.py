"""Auth, TLS and NetworkPolicies in the built manifests (schema checks: test_builders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Manifest, build_all, owner_of
from chroma_operator.build.naming import AUTH_DIR, TLS_DIR
from chroma_operator.build.network import operator_peer
from chroma_operator.cli import app
from chroma_operator.topology import TOPOLOGY_KEY, Topology
from manifests import validate_manifest

CLUSTER_PODS = {
    "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/instance": "c"}
    }
}


def build(spec: dict[str, Any]) -> dict[tuple[str, str], Manifest]:
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": spec,
    }
    cluster = parse_cluster(doc)
    return {(m["kind"], m["metadata"]["name"]): m for m in build_all(cluster, owner_of(cluster))}


def router_of(objs: dict[tuple[str, str], Manifest]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = objs[("StatefulSet", "c-shard-0")]["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "router")


def test_shard_port_only_from_the_clusters_pods_router_from_anywhere() -> None:
    objs = build({})
    policy = objs[("NetworkPolicy", "c-shards")]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "shard"
    chroma, router = policy["spec"]["ingress"]
    assert chroma == {"ports": [{"protocol": "TCP", "port": 8000}], "from": [CLUSTER_PODS]}
    assert router == {"ports": [{"protocol": "TCP", "port": 8080}]}  # no from: anywhere
    # Tuning Jobs carry the instance label the policy admits.
    objs = build({"tuning": {"enabled": True}})
    job_pod = objs[("CronJob", "c-tune")]["spec"]["jobTemplate"]["spec"]["template"]
    assert job_pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "c"


def test_allow_from_limits_router_and_encoder() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "search"}}}
    objs = build({"encoder": {"enabled": True}, "network": {"allowFrom": [peer]}})
    _, router = objs[("NetworkPolicy", "c-shards")]["spec"]["ingress"]
    assert router["from"] == [peer, CLUSTER_PODS]
    (encoder,) = objs[("NetworkPolicy", "c-encoder")]["spec"]["ingress"]
    assert encoder == {"ports": [{"protocol": "TCP", "port": 8080}], "from": [peer, CLUSTER_PODS]}
    for m in objs.values():
        if m["kind"] == "NetworkPolicy":
            validate_manifest(m, "1.30.0")


OPERATOR_ENV = {
    "CHROMA_OPERATOR_NAMESPACE": "ops",
    "CHROMA_OPERATOR_NAME": "chroma-operator",
    "CHROMA_OPERATOR_INSTANCE": "search",
}


def test_the_operator_reaches_the_shards_and_restricted_routers() -> None:
    """Resharding moves records between shards from the operator, and it scrapes the
    routers: with its own pods named, the policies let it in (and only it, besides the
    cluster's pods and allowFrom)."""
    peer = operator_peer(OPERATOR_ENV)
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}},
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "chroma-operator",
                "app.kubernetes.io/instance": "search",
            }
        },
    }
    allowed = {"namespaceSelector": {"matchLabels": {"team": "search"}}}
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"encoder": {"enabled": True}, "network": {"allowFrom": [allowed]}},
    }
    cluster = parse_cluster(doc)
    objs = {
        (m["kind"], m["metadata"]["name"]): m
        for m in build_all(cluster, owner_of(cluster), operator_peer=peer)
    }
    chroma, router = objs[("NetworkPolicy", "c-shards")]["spec"]["ingress"]
    assert chroma["from"] == [CLUSTER_PODS, peer]
    assert router["from"] == [allowed, CLUSTER_PODS, peer]
    (encoder,) = objs[("NetworkPolicy", "c-encoder")]["spec"]["ingress"]
    assert encoder["from"] == [allowed, CLUSTER_PODS, peer]
    for m in objs.values():
        if m["kind"] == "NetworkPolicy":
            validate_manifest(m, "1.30.0")
    # Outside a cluster (any of the three unset) the operator is not named.
    for missing in OPERATOR_ENV:
        assert operator_peer({k: v for k, v in OPERATOR_ENV.items() if k != missing}) is None


def test_policies_off() -> None:
    assert not [k for k in build({"network": {"policies": False}}) if k[0] == "NetworkPolicy"]


def test_auth_and_tls_secrets_are_mounted_and_named_in_the_topology() -> None:
    objs = build({"auth": {"secretName": "toks"}, "tls": {"secretName": "cert"}})
    pod, router = router_of(objs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "toks"
    assert volumes["tls"]["secret"]["secretName"] == "cert"
    mounts = {m["name"]: m for m in router["volumeMounts"]}
    assert mounts["auth"]["mountPath"] == AUTH_DIR and "subPath" not in mounts["auth"]
    assert mounts["tls"]["mountPath"] == TLS_DIR
    assert router["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    topo = Topology.from_json(objs[("ConfigMap", "c-config")]["data"][TOPOLOGY_KEY])
    assert topo.auth is not None and topo.auth.tokens_file == f"{AUTH_DIR}/tokens.yaml"
    assert topo.tls is not None and topo.tls.cert_file == f"{TLS_DIR}/tls.crt"
    assert all(p.startswith("https://") for p in topo.router.peers)


def test_no_auth_no_mounts() -> None:
    pod, router = router_of(build({}))
    assert {v["name"] for v in pod["volumes"]} == {"chroma-config", "topology", "tmp"}
    assert router["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    topo = Topology.from_json(build({})[("ConfigMap", "c-config")]["data"][TOPOLOGY_KEY])
    assert topo.auth is None and topo.tls is None


def test_render_names_secrets_only(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: chroma.operator.dev/v1alpha1\nkind: ChromaCluster\n"
        "metadata: {name: c}\nspec: {auth: {secretName: toks}, tls: {secretName: cert}}\n"
    )
    result = CliRunner().invoke(app, ["render", str(path)])
    assert result.exit_code == 0, result.output
    assert "secretName: toks" in result.output and "kind: NetworkPolicy" in result.output
    assert "stringData" not in result.output and "kind: Secret\n" not in result.output
