"""The chart renders, lints strict-clean and yields valid objects in every mode."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from chart_values import CHART_DIR, SCENARIOS, Render, production_values
from chroma_operator.build.network import operator_peer
from chroma_operator.install.chart_files import stale_files
from chroma_operator.install.peering import peering_crds
from chroma_operator.reconcile.rbac import cluster_scoped_rules, operator_rules
from manifests import validate_manifest, validate_metadata

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
KEEP = "helm.sh/resource-policy"


def _peering_schema(kind: str) -> dict[str, Any]:
    crd = next(c for c in peering_crds() if c["spec"]["names"]["kind"] == kind)
    schema: dict[str, Any] = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    schema["properties"].update(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
        }
    )
    schema["additionalProperties"] = False
    return schema


def validate_any(obj: dict[str, Any], version: str) -> None:
    """kopf's peering objects against their own CRD; everything else as the builders' output."""
    if obj["apiVersion"].startswith("kopf.dev/"):
        jsonschema.Draft4Validator(_peering_schema(obj["kind"])).validate(obj)
        validate_metadata(obj, version)
    else:
        validate_manifest(obj, version)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_strict_is_clean(scenario: str) -> None:
    for kube in ("v1.30.0", "v1.33.0"):
        report = helm.lint(CHART_DIR, SCENARIOS[scenario], strict=True, kube_version=kube)
        assert report["errors"] == [] and report["messages"] == [], report


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_object_is_valid(render: Render, scenario: str, version: str) -> None:
    docs = render(SCENARIOS[scenario])
    assert docs
    for doc in docs:
        validate_any(doc, version)


def test_default_install(render: Render) -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ClusterKopfPeering",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount",
        ]
    )
    (deploy,) = by_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/chroma-operator/chroma-operator:0.1.0"
    assert "--all-namespaces" in container["args"]
    assert "--standalone" not in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"][0]["containerPort"] == 8080
    for crd in by_kind(docs, "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"] == {KEEP: "keep"}


def test_rbac_comes_from_the_operator_code(render: Render) -> None:
    docs = render()
    (role,) = by_kind(docs, "ClusterRole")
    assert role["rules"] == operator_rules() + cluster_scoped_rules()
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "chroma-operator", "namespace": "chroma-operator"}
    ]


def test_namespaced_mode_uses_roles_only(render: Render) -> None:
    docs = render({"watchNamespaces": ["search", "team-a"]})
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["search", "team-a"]
    assert all(r["rules"] == operator_rules() for r in roles)
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["search", "team-a"]
    (deploy,) = by_kind(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert args[1:5] == ["--namespace", "search", "--namespace", "team-a"]
    peerings = by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["search", "team-a"]
    assert not by_kind(docs, "ClusterKopfPeering")


def test_production_values(render: Render) -> None:
    docs = render(production_values())
    assert not by_kind(docs, "Deployment")
    (sts,) = by_kind(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 2
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/chroma-operator/chroma-operator@sha256:")
    # Equal kopf priorities pause every replica: each takes its pod index.
    args = container["args"]
    assert args[args.index("--priority") + 1] == "$(POD_INDEX)"
    pod_index = next(e for e in container["env"] if e["name"] == "POD_INDEX")
    assert pod_index["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["affinity"]
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"] == sts["spec"]["selector"]
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"  # the operator's own metrics


def test_crds_switches(render: Render) -> None:
    assert not by_kind(render({"crds": {"install": False}}), "CustomResourceDefinition")
    for crd in by_kind(render({"crds": {"keep": False}}), "CustomResourceDefinition"):
        assert KEEP not in crd["metadata"].get("annotations", {})


def test_peering_object_is_a_post_install_hook(render: Render) -> None:
    (peering,) = by_kind(render(), "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "chroma-operator"
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"


def test_chart_crd_equals_the_committed_crd(render: Render, repo_root: Path) -> None:
    committed = yaml.safe_load((repo_root / "crds" / "chromacluster.yaml").read_text())
    backup = yaml.safe_load((repo_root / "crds" / "chromabackup.yaml").read_text())
    crd, backup_crd = [
        d
        for d in render({"crds": {"keep": False}})
        if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "chroma.operator.dev"
    ]
    assert crd == committed
    assert backup_crd == backup
    (kept,) = [
        d
        for d in by_kind(render(), "CustomResourceDefinition")
        if d["metadata"]["name"] == committed["metadata"]["name"]
    ]
    assert kept["metadata"].pop("annotations") == {KEEP: "keep"}
    assert kept == committed


def test_committed_chart_files_match_the_code() -> None:
    assert stale_files(CHART_DIR) == [], (
        "charts/chroma-operator/files drifted: run `chroma-operator install chart-files`"
    )


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"crds": {"install": "yes"}}, "/crds/install"),
        ({"watchNamespaces": "search"}, "/watchNamespaces"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"metrics": {"service": {"port": "http"}}}, "/metrics/service/port"),
        ({"resources": {"limits": {"memory": []}}}, "/resources/limits/memory"),
        ({"tolerations": {"key": "x"}}, "/tolerations"),
        ({"logFormat": "xml"}, "/logFormat"),
        ({"replicas": 2}, "additional properties 'replicas'"),
    ],
)
def test_schema_rejects_wrong_values(render: Render, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match="schema") as info:
        render(values)
    assert where in str(info.value)


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of values.yaml, down to leaves and free-form maps."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out += _paths(value, (*prefix, key))
    return out


def test_schema_covers_every_value() -> None:
    schema = yaml.safe_load((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    defs = schema["definitions"]
    for path in _paths(values):
        node = schema
        for key in path:
            if "$ref" in node:
                node = defs[node["$ref"].rsplit("/", 1)[-1]]
            props = node.get("properties", {})
            assert key in props or node.get("additionalProperties") not in (None, False), path
            node = props.get(key) or node["additionalProperties"]
        assert "type" in node or "$ref" in node, path
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(values)
    jsonschema.Draft7Validator(schema).validate(production_values())


def test_notes_point_to_the_quickstart(notes: Any) -> None:
    text = notes({})
    assert "examples/quickstart.yaml" in text
    assert "every namespace" in text
    assert "search, team-a" in notes({"watchNamespaces": ["search", "team-a"]})


def test_other_release_names_stay_consistent(render: Render) -> None:
    docs = render(name="search", namespace="ops")
    (deploy,) = by_kind(docs, "Deployment")
    assert deploy["metadata"]["name"] == "search-chroma-operator"
    (account,) = by_kind(docs, "ServiceAccount")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": "ops",
    }
    (service,) = by_kind(docs, "Service")
    assert service["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]


def test_chart_version_matches_the_package() -> None:
    from chroma_operator import __version__
    from chroma_operator.api.models import DEFAULT_OPERATOR_IMAGE

    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert meta["appVersion"] == __version__
    assert f"{values['image']['repository']}:{meta['appVersion']}" == DEFAULT_OPERATOR_IMAGE


@pytest.mark.parametrize("version", VERSIONS)
def test_prometheus_adapter_rule_is_an_optional_configmap(render: Render, version: str) -> None:
    from chroma_operator.build.autoscaling import prometheus_adapter_rules

    assert not [d for d in by_kind(render(), "ConfigMap") if "adapter" in d["metadata"]["name"]]
    values = {"prometheusAdapter": {"rules": {"enabled": True, "namespace": "monitoring"}}}
    (cm,) = [d for d in by_kind(render(values), "ConfigMap") if "adapter" in d["metadata"]["name"]]
    validate_manifest(cm, version)
    assert cm["metadata"]["name"] == "chroma-operator-prometheus-adapter"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert yaml.safe_load(cm["data"]["config.yaml"]) == prometheus_adapter_rules()
    (default_ns,) = by_kind(
        render({"prometheusAdapter": {"rules": {"enabled": True}}}), "ConfigMap"
    )
    assert default_ns["metadata"]["namespace"] == "chroma-operator"


def test_the_operator_knows_itself_for_the_clusters_network_policies(render: Render) -> None:
    """The env the Deployment sets, resolved as the kubelet would, names exactly the
    operator's pods: the clusters' policies then let it reach shards and routers."""
    docs = render(name="search", namespace="ops", values={"nameOverride": "vectors-op"})
    (deploy,) = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]

    def resolve(path: str) -> str:
        if path == "metadata.namespace":
            return "ops"
        key = path.removeprefix("metadata.labels['").removesuffix("']")
        return str(labels[key])

    env = {e["name"]: resolve(e["valueFrom"]["fieldRef"]["fieldPath"]) for e in container["env"]}
    peer = operator_peer(env)
    assert peer is not None
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}
    selector = peer["podSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/name"] == "vectors-op"
    assert selector.items() <= labels.items()
    assert selector == deploy["spec"]["selector"]["matchLabels"]
