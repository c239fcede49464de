"""Monitoring manifests: PromQL that parses, CRD-valid Prometheus Operator objects,
Kubernetes-valid ConfigMaps and a dashboard Grafana's own models read back losslessly."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Owner, build_all
from chroma_operator.build.meta import Manifest
from chroma_operator.build.monitoring import (
    DASHBOARD_LABEL,
    build_monitoring,
    dashboard,
    required_crd,
)
from chroma_operator.slo.sli import PANEL_METRICS, SLI_METRICS
from manifests import (
    PROMETHEUS_RULE_SCHEMA,
    SCHEMAS,
    SERVICE_MONITOR_SCHEMA,
    check_schema,
    validate_metadata,
)

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
OWNER = Owner(name="search", namespace="prod", uid="0f6a3c1e-1111-4c2b-9a55-5b0c9d1f0a01")
ALL_ON = {"prometheusRule": True, "serviceMonitor": True, "dashboard": True}


def _spec(**groups: Any) -> ChromaClusterSpec:
    return ChromaClusterSpec.model_validate({"monitoring": ALL_ON, **groups})


SPECS = {
    "defaults": _spec(),
    "encoder": _spec(encoder={"enabled": True}),
    "replicas": _spec(replicas=3),
    "7d-and-odd-threshold": _spec(
        slo={
            "objectives": [
                {
                    "name": "fast",
                    "type": "latency",
                    "thresholdMs": 33.3,
                    "target": 0.995,
                    "window": "7d",
                },
                {
                    "name": "slow",
                    "type": "latency",
                    "thresholdMs": 1000,
                    "target": 0.9999,
                    "window": "4w",
                },
                {"name": "up", "type": "availability", "target": 0.9, "window": "1d"},
            ]
        },
        monitoring={**ALL_ON, "labels": {"release": "prometheus"}},
    ),
}


def _manifests() -> Iterator[tuple[str, Manifest]]:
    for name, spec in SPECS.items():
        for m in build_monitoring(
            OWNER, spec, {"team": "search", "app.kubernetes.io/part-of": "rag"}
        ):
            yield name, m


def test_every_kind_is_built_when_asked() -> None:
    kinds = [(m["kind"], m["metadata"]["name"]) for m in build_monitoring(OWNER, SPECS["encoder"])]
    assert kinds == [
        ("PrometheusRule", "search-slo"),
        ("ServiceMonitor", "search"),
        ("ServiceMonitor", "search-encoder"),
        ("ConfigMap", "search-dashboard"),
    ]
    assert build_monitoring(OWNER, ChromaClusterSpec()) == []
    only_dash = ChromaClusterSpec.model_validate({"monitoring": {"dashboard": True}})
    assert [m["kind"] for m in build_monitoring(OWNER, only_dash)] == ["ConfigMap"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate(version: str) -> None:
    seen = set()
    for _, m in _manifests():
        seen.add(m["kind"])
        if m["kind"] in SCHEMAS:
            assert m["apiVersion"] == "monitoring.coreos.com/v1"
            check_schema(m, SCHEMAS[m["kind"]])
            validate_metadata(m, version)
            assert required_crd(m) == f"{m['kind'].lower()}s.monitoring.coreos.com"
        else:
            kubernetes_validate.validate(m, version, strict=True)
            assert required_crd(m) is None
    assert seen == {"PrometheusRule", "ServiceMonitor", "ConfigMap"}


def test_schemas_catch_mistakes() -> None:
    """The vendored schemas are not vacuous: typical mistakes fail."""
    rule = build_monitoring(OWNER, SPECS["defaults"])[0]
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][0]["rules"][0]["recrod"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        check_schema(bad, PROMETHEUS_RULE_SCHEMA)
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][1]["interval"] = "2 minutes"
    with pytest.raises(jsonschema.ValidationError):
        check_schema(bad, PROMETHEUS_RULE_SCHEMA)
    sm = build_monitoring(OWNER, SPECS["defaults"])[1]
    bad = copy.deepcopy(sm)
    del bad["spec"]["selector"]
    with pytest.raises(jsonschema.ValidationError):
        check_schema(bad, SERVICE_MONITOR_SCHEMA)
    bad = copy.deepcopy(sm)
    bad["spec"]["endpoints"][0]["scheme"] = "tcp"
    with pytest.raises(jsonschema.ValidationError):
        check_schema(bad, SERVICE_MONITOR_SCHEMA)


# --- rules -----------------------------------------------------------------------------


def _rules(spec: ChromaClusterSpec) -> list[dict[str, Any]]:
    rule = build_monitoring(OWNER, spec, {"team": "search"})[0]
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


@pytest.mark.parametrize("name", list(SPECS))
def test_every_rule_expression_parses(name: str) -> None:
    rules = _rules(SPECS[name])
    assert rules
    for r in rules:
        promql_parser.parse(r["expr"])


def test_replica_alerts_come_with_replicas() -> None:
    """With two or more replicas per shard: alerts on a replica that needs a repair, one
    stale for 30 minutes, and one that writes keep giving up on; scoped to the cluster's
    routers and labelled like the SLO alerts."""
    assert not [
        r for r in _rules(SPECS["defaults"]) if r.get("alert", "").startswith("ChromaReplica")
    ]
    alerts = {r["alert"]: r for r in _rules(SPECS["replicas"]) if "alert" in r}
    replica_alerts = {k: v for k, v in alerts.items() if k.startswith("ChromaReplica")}
    assert set(replica_alerts) == {
        "ChromaReplicaNeedsRepair",
        "ChromaReplicaStale",
        "ChromaReplicaWriteStragglers",
    }
    scope = 'namespace="prod", service="search"'
    repair = replica_alerts["ChromaReplicaNeedsRepair"]
    assert repair["expr"] == f'max(chroma_router_replicas{{{scope}, state="repairing"}}) > 0'
    assert (
        repair["for"] == "10m"
        and "chroma.operator.dev/repair" in (repair["annotations"]["description"])
    )
    assert replica_alerts["ChromaReplicaStale"]["for"] == "30m"
    stragglers = replica_alerts["ChromaReplicaWriteStragglers"]["expr"]
    assert f"chroma_router_write_stragglers_total{{{scope}}}[15m]" in stragglers
    for rule in replica_alerts.values():
        assert rule["labels"]["chroma_cluster"] == "search" and rule["labels"]["team"] == "search"
        assert rule["labels"]["severity"] == "ticket"


def test_the_repair_alert_names_the_cronjob_only_when_there_is_one() -> None:
    def description(spec: ChromaClusterSpec) -> str:
        rule = next(r for r in _rules(spec) if r.get("alert") == "ChromaReplicaNeedsRepair")
        return str(rule["annotations"]["description"])

    scheduled = description(_spec(replicas=2, repair={"enabled": True}))
    assert "The search-repair CronJob repairs it" in scheduled
    unscheduled = description(_spec(replicas=2))
    assert "search-repair" not in unscheduled and "Scheduled repair is off" in unscheduled
    for text in (scheduled, unscheduled):
        assert "kubectl annotate chroma search chroma.operator.dev/repair=" in text


def test_group_names_unique_and_windows_recorded() -> None:
    rule = build_monitoring(OWNER, SPECS["7d-and-odd-threshold"])[0]
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert len(names) == len(set(names))
    records: dict[str, set[str]] = {}
    for r in (r for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r):
        records.setdefault(r["labels"]["slo"], set()).add(r["record"].rsplit("rate", 1)[1])
    base = {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
    assert records == {"fast": base | {"7d"}, "slow": base | {"4w"}, "up": base}


def test_latency_sli_uses_the_threshold_bucket_exactly() -> None:
    rules = _rules(SPECS["7d-and-odd-threshold"])
    by_slo = {
        r["labels"]["slo"]: r["expr"] for r in rules if r.get("record", "").endswith("rate5m")
    }
    assert 'le=~"0\\\\.033299999999999996"' in by_slo["fast"]
    # a whole number of seconds: prometheus_client writes 1.0, Prometheus 3 stores 1
    assert 'le=~"1|1\\\\.0"' in by_slo["slow"]
    assert "le" not in by_slo["up"]
    assert 'status=~"5.."' in by_slo["up"]
    query = f'route="{SLI_METRICS.query_route}"'
    assert query in by_slo["fast"]
    assert SLI_METRICS.duration_histogram + "_count" in by_slo["fast"]
    assert SLI_METRICS.requests_total in by_slo["up"]


def test_rule_metric_names_are_ones_the_router_exports() -> None:
    exported = {
        SLI_METRICS.requests_total,
        SLI_METRICS.duration_bucket,
        SLI_METRICS.duration_count,
    }
    for r in _rules(SPECS["defaults"]):
        names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", r["expr"]))
        if "record" in r:
            assert names <= exported, names
        else:
            assert all(n.startswith("chroma_slo:sli_error:ratio_rate") for n in names)


def test_alerts() -> None:
    rules = [r for r in _rules(SPECS["defaults"]) if "alert" in r]
    assert [(r["labels"]["slo"], r["labels"]["severity"]) for r in rules] == [
        ("query-latency", "page"),
        ("query-latency", "ticket"),
        ("availability", "page"),
        ("availability", "ticket"),
    ]
    page = rules[2]
    assert page["labels"]["chroma_cluster"] == "search"
    assert page["labels"]["namespace"] == "prod"
    assert page["labels"]["team"] == "search"
    assert "{{ $value | humanize }}x" in page["annotations"]["description"]
    assert "99.9%" in page["annotations"]["description"]
    assert "search" in page["annotations"]["summary"]
    # multi-window: each pair ANDs its long and short window, pairs are ORed
    expr = page["expr"]
    assert expr.count("\nand\n") == 2 and expr.count("\nor\n") == 1
    assert (
        'chroma_slo:sli_error:ratio_rate1h{namespace="prod", service="search", slo="availability"} / 0.001 >= 14.4'
        in expr
    )
    assert "ratio_rate5m" in expr and "ratio_rate6h" in expr and "ratio_rate30m" in expr
    ticket = rules[3]["expr"]
    assert ">= 3.0" in ticket and ">= 1.0" in ticket


def test_kubernetes_label_keys_become_prometheus_label_names() -> None:
    rule = build_monitoring(
        OWNER, SPECS["defaults"], {"app.kubernetes.io/part-of": "rag", "9x": "y"}
    )[0]
    labels = rule["spec"]["groups"][0]["rules"][0]["labels"]
    assert labels["app_kubernetes_io_part_of"] == "rag"
    assert labels["_9x"] == "y"
    for key in labels:
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key)


def test_seven_day_alerts_use_scaled_factors() -> None:
    rules = [
        r
        for r in _rules(SPECS["7d-and-odd-threshold"])
        if "alert" in r and r["labels"]["slo"] == "fast"
    ]
    page = rules[0]["expr"]
    assert f">= {14.4 * 7 / 30!r}" in page
    assert f">= {6.0 * 7 / 30!r}" in page
    # 1-day objective: the 3d/6h ticket pair is dropped
    up = [
        r
        for r in _rules(SPECS["7d-and-odd-threshold"])
        if "alert" in r and r["labels"]["slo"] == "up"
    ]
    assert "ratio_rate3d" not in up[1]["expr"]


# --- ServiceMonitors ---------------------------------------------------------------------


def test_service_monitors_select_exactly_the_services_with_their_ports() -> None:
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "search", "namespace": "prod"},
        "spec": {"shards": 3, "encoder": {"enabled": True}, "monitoring": ALL_ON},
    }
    cluster = parse_cluster(doc)
    services = [m for m in build_all(cluster, OWNER) if m["kind"] == "Service"]
    monitors = [m for m in build_monitoring(OWNER, cluster.spec) if m["kind"] == "ServiceMonitor"]
    for sm in monitors:
        want = sm["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services if want.items() <= s["metadata"]["labels"].items()]
        assert len(chosen) == 1, sm["metadata"]["name"]
        (svc,) = chosen
        assert svc["metadata"]["name"] == sm["metadata"]["name"]
        port_names = {p["name"] for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in port_names
            assert ep["path"] == "/metrics"
            assert ep["interval"] == "30s"
        assert sm["spec"]["namespaceSelector"] == {"matchNames": ["prod"]}
    assert {sm["metadata"]["name"] for sm in monitors} == {"search", "search-encoder"}


def test_monitoring_labels_and_owner() -> None:
    for _, m in _manifests():
        meta = m["metadata"]
        assert meta["namespace"] == "prod"
        assert meta["ownerReferences"][0]["name"] == "search"
        assert meta["labels"]["app.kubernetes.io/instance"] == "search"
    spec = SPECS["7d-and-odd-threshold"]
    for m in build_monitoring(OWNER, spec):
        assert m["metadata"]["labels"]["release"] == "prometheus"


# --- dashboard ---------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "${__rate_interval}": "1m"}


def _grafana_expr(expr: str) -> str:
    """What Grafana sends to Prometheus: its interval variables interpolated."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def _dashboard_json(spec: ChromaClusterSpec) -> dict[str, Any]:
    (cm,) = [m for m in build_monitoring(OWNER, spec) if m["kind"] == "ConfigMap"]
    assert DASHBOARD_LABEL.items() <= cm["metadata"]["labels"].items()
    (body,) = cm["data"].values()
    loaded: dict[str, Any] = json.loads(body)
    return loaded


@pytest.mark.parametrize("name", list(SPECS))
def test_dashboard_is_valid_grafana_json(name: str) -> None:
    d = _dashboard_json(SPECS[name])
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36
    assert d["uid"] and len(d["uid"]) <= 40
    assert d["title"]
    assert d["templating"]["list"][0]["type"] == "datasource"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y"))
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"panel {p['id']} overlaps another"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["targets"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            promql_parser.parse(_grafana_expr(t["expr"]))


def test_dashboard_has_the_promised_panels() -> None:
    titles = [p["title"] for p in _dashboard_json(SPECS["encoder"])["panels"]]
    for want in (
        "Query rate",
        "Query latency percentiles",
        "Per-shard latency",
        "Cache hit ratio",
        "Encoder queue",
        "Encoder batch size",
        "Error budget remaining: query-latency",
        "Error budget remaining: availability",
        "Burn rate: query-latency",
    ):
        assert want in titles
    plain = [p["title"] for p in _dashboard_json(SPECS["defaults"])["panels"]]
    assert "Encoder queue" not in plain
    exprs = json.dumps(_dashboard_json(SPECS["encoder"]))
    for metric in (
        PANEL_METRICS.shard_duration_histogram,
        PANEL_METRICS.cache_hits_total,
        PANEL_METRICS.encoder_queue_depth,
        PANEL_METRICS.encoder_batch_size_histogram,
    ):
        assert metric in exprs


def test_budget_panels_use_recording_rules_only_when_they_exist() -> None:
    with_rules = json.dumps(_dashboard_json(SPECS["defaults"]))
    assert "chroma_slo:sli_error:ratio_rate30d" in with_rules
    no_rules = ChromaClusterSpec.model_validate({"monitoring": {"dashboard": True}})
    body = json.dumps(dashboard(OWNER, no_rules))
    assert "chroma_slo:" not in body
    assert "[30d]" in body


def _lost_keys(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict):
        lost = [f"{path}/{k}" for k in a if k not in b]
        return lost + [x for k in a if k in b for x in _lost_keys(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list):
        return [
            x
            for i, (p, q) in enumerate(zip(a, b, strict=True))
            for x in _lost_keys(p, q, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path} ({a!r} -> {b!r})"]


def _grafana_round_trip(d: dict[str, Any]) -> dict[str, Any]:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard
    from grafana_foundation_sdk.models.prometheus import Dataquery

    plugins.register_default_plugins()
    model = Dashboard.from_json(d)
    for panel in model.panels or []:
        for target in getattr(panel, "targets", None) or []:
            assert isinstance(target, Dataquery)
    back: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return back


@pytest.mark.parametrize("name", list(SPECS))
def test_dashboard_reads_back_through_grafanas_models(name: str) -> None:
    """Every field we write is one Grafana's typed dashboard model knows."""
    pytest.importorskip("grafana_foundation_sdk")
    d = _dashboard_json(SPECS[name])
    assert _lost_keys(d, _grafana_round_trip(d)) == []


def test_round_trip_check_notices_a_misspelt_field() -> None:
    pytest.importorskip("grafana_foundation_sdk")
    d = _dashboard_json(SPECS["defaults"])
    d["panels"][1]["gridpos"] = d["panels"][1].pop("gridPos")
    assert _lost_keys(d, _grafana_round_trip(d)) == ["/panels[1]/gridpos"]
