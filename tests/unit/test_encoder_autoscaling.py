"""The encoder's autoscaler (HPA or KEDA ScaledObject), validated against the Kubernetes
schema and KEDA's published CRD; the Deployment leaves `replicas` to it."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Manifest, build_all, owner_of, required_crd
from chroma_operator.build.autoscaling import QUEUE_METRIC, prometheus_adapter_rules
from chroma_operator.build.encoder import (
    DRAIN_DELAY_SECONDS,
    SHUTDOWN_TIMEOUT_SECONDS,
    TERMINATION_GRACE_SECONDS,
)
from chroma_operator.encoder.metrics import EncoderMetrics
from chroma_operator.install.chart_files import chart_files
from chroma_operator.reconcile.rbac import operator_rules
from manifests import SCALED_OBJECT_SCHEMA, check_schema, validate_manifest

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
UID = "0f6a3c1e-1111-4c2b-9a55-5b0c9d1f0a01"


def _build(autoscaling: dict[str, Any] | None, **encoder: Any) -> dict[str, Manifest]:
    enc: dict[str, Any] = {"enabled": True, "replicas": 3, **encoder}
    if autoscaling is not None:
        enc["autoscaling"] = autoscaling
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"encoder": enc},
    }
    cluster = parse_cluster(doc)
    return {m["kind"]: m for m in build_all(cluster, owner_of(cluster, "default", UID))}


HPA = {"enabled": True, "minReplicas": 2, "maxReplicas": 10, "targetQueuePerReplica": 128}
KEDA = {**HPA, "provider": "keda", "prometheusUrl": "http://prom.monitoring.svc:9090"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_hpa_is_a_valid_autoscaling_v2_object(version: str) -> None:
    built = _build(HPA)
    hpa = built["HorizontalPodAutoscaler"]
    validate_manifest(hpa, version)
    validate_manifest(built["Deployment"], version)
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": built["Deployment"]["metadata"]["name"],
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": QUEUE_METRIC},
                "target": {"type": "AverageValue", "averageValue": "128"},
            },
        }
    ]
    assert "ScaledObject" not in built and required_crd(hpa) is None


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_scaled_object_is_valid_against_kedas_crd(version: str) -> None:
    built = _build(KEDA)
    so = built["ScaledObject"]
    validate_manifest(so, version)  # the vendored openAPIV3Schema, closed, plus metadata
    assert required_crd(so) == "scaledobjects.keda.sh"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 10)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["serverAddress"] == "http://prom.monitoring.svc:9090"
    assert trigger["metadata"]["threshold"] == "128"
    assert trigger["metadata"]["query"] == (
        f'sum({QUEUE_METRIC}{{namespace="ns", service="c-encoder"}})'
    )
    assert "HorizontalPodAutoscaler" not in built


def test_the_keda_schema_refuses_what_keda_would_not_take() -> None:
    so = _build(KEDA)["ScaledObject"]
    for path, value in (
        (("spec", "minReplicaCount"), "two"),
        (("spec", "triggers", 0, "metadata", "threshold"), 128),
        (("spec", "scaleTargetRef", "nmae"), "x"),
    ):
        bad = copy.deepcopy(so)
        node: Any = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            check_schema(bad, SCALED_OBJECT_SCHEMA)
    missing = copy.deepcopy(so)
    del missing["spec"]["triggers"]
    with pytest.raises(jsonschema.ValidationError, match="triggers"):
        check_schema(missing, SCALED_OBJECT_SCHEMA)


@pytest.mark.parametrize("autoscaling", [HPA, KEDA], ids=["hpa", "keda"])
def test_autoscaled_deployment_has_no_replicas(autoscaling: dict[str, Any]) -> None:
    deployment = _build(autoscaling)["Deployment"]
    assert "replicas" not in deployment["spec"]
    # Any other change (a new batch size) still leaves replicas out of what is applied.
    changed = _build(autoscaling, batching={"maxBatchSize": 128})["Deployment"]
    assert "replicas" not in changed["spec"]
    assert changed["metadata"]["annotations"] != deployment["metadata"]["annotations"]


def test_without_autoscaling_the_spec_sets_replicas() -> None:
    built = _build(None)
    assert built["Deployment"]["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler" not in built and "ScaledObject" not in built
    off = _build({**HPA, "enabled": False})
    assert off["Deployment"]["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler" not in off


def test_no_autoscaler_without_an_encoder() -> None:
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "c"},
        "spec": {"encoder": {"enabled": False, "autoscaling": HPA}},
    }
    cluster = parse_cluster(doc)
    kinds = {m["kind"] for m in build_all(cluster, owner_of(cluster))}
    assert not kinds & {"HorizontalPodAutoscaler", "ScaledObject", "Deployment"}


def test_readiness_uses_ready_and_grace_covers_the_drain() -> None:
    deployment = _build(HPA)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    args = container["args"]
    assert args[args.index("--drain-delay-seconds") + 1] == str(DRAIN_DELAY_SECONDS)
    assert args[args.index("--shutdown-timeout-seconds") + 1] == str(SHUTDOWN_TIMEOUT_SECONDS)
    assert pod["terminationGracePeriodSeconds"] == TERMINATION_GRACE_SECONDS
    assert TERMINATION_GRACE_SECONDS > DRAIN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS


def test_rbac_lets_the_operator_manage_both_autoscalers() -> None:
    rules = operator_rules()
    for group, plural in (
        ("autoscaling", "horizontalpodautoscalers"),
        ("keda.sh", "scaledobjects"),
    ):
        granted = [r for r in rules if group in r["apiGroups"] and plural in r["resources"]]
        assert granted, (group, plural)
        for verb in ("get", "list", "create", "patch", "delete"):
            assert any(verb in r["verbs"] for r in granted), (plural, verb)
    committed = yaml.safe_load(chart_files()["files/rbac-rules.yaml"])
    assert committed["operator"] == rules


def test_the_adapter_rule_serves_the_metric_the_encoder_exports() -> None:
    exported = {m.name for m in EncoderMetrics().registry.collect()}
    assert QUEUE_METRIC in exported
    assert {
        "chroma_encoder_inflight_texts",
        "chroma_encoder_inference_duration_seconds",
    } <= exported
    (rule,) = prometheus_adapter_rules()["rules"]
    assert rule["seriesQuery"].startswith(QUEUE_METRIC + "{")
    assert rule["name"]["as"] == QUEUE_METRIC
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    in_chart = yaml.safe_load(chart_files()["files/prometheus-adapter-rules.yaml"])
    assert in_chart == prometheus_adapter_rules()
