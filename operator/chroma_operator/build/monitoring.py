"""Monitoring objects: the SLO PrometheusRule, ServiceMonitors and a Grafana dashboard.

Each exists only when `spec.monitoring` asks for it. The PrometheusRule and
ServiceMonitors are Prometheus Operator kinds: `required_crd()` names the CRD each needs,
so reconcile can skip them (and say so) in a cluster without that operator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chroma_operator.api.models import ChromaClusterSpec, Objective
from chroma_operator.build import naming
from chroma_operator.build.encoder import COMPONENT as ENCODER_COMPONENT
from chroma_operator.build.meta import Manifest, Owner, content_hash, metadata, selector_labels
from chroma_operator.build.repair import repair_hint
from chroma_operator.slo import promql
from chroma_operator.slo.objectives import error_budget
from chroma_operator.slo.promql import Scope, selector
from chroma_operator.slo.replica_alerts import replica_alert_group
from chroma_operator.slo.rules import alert_labels, rule_groups
from chroma_operator.slo.sli import PANEL_METRICS, SLI_METRICS

MONITORING_GROUP = "monitoring.coreos.com"
MONITORING_API = f"{MONITORING_GROUP}/v1"
COMPONENT = "monitoring"
ROUTER_COMPONENT = "router"
"""The component label of the front Service `X`, whose `metrics` port serves the routers."""
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
"""What the Grafana sidecar (kiwigrid k8s-sidecar, as in kube-prometheus-stack) looks for."""
GRAFANA_SCHEMA_VERSION = 39
RATE = "$__rate_interval"

_CRDS = {
    "PrometheusRule": f"prometheusrules.{MONITORING_GROUP}",
    "ServiceMonitor": f"servicemonitors.{MONITORING_GROUP}",
}


def required_crd(manifest: Manifest) -> str | None:
    """The CRD a manifest needs beyond core Kubernetes (None for a ConfigMap)."""
    if manifest.get("apiVersion") != MONITORING_API:
        return None
    return _CRDS.get(manifest["kind"])


def router_scope(owner: Owner) -> Scope:
    """How Prometheus labels the routers' series: the front Service's namespace and name."""
    return Scope(namespace=owner.namespace, service=naming.front_service(owner.name))


def encoder_scope(owner: Owner) -> Scope:
    return Scope(namespace=owner.namespace, service=naming.encoder(owner.name))


def _meta(
    owner: Owner, spec: ChromaClusterSpec, name: str, extra: Mapping[str, str] | None = None
) -> Manifest:
    return metadata(
        owner, name, COMPONENT, extra_labels={**spec.monitoring.labels, **(extra or {})}
    )


# --- PrometheusRule ------------------------------------------------------------------------


def prometheus_rule_name(cluster: str) -> str:
    return f"{cluster}-slo"


def build_prometheus_rule(
    owner: Owner, spec: ChromaClusterSpec, cluster_labels: Mapping[str, str] | None = None
) -> Manifest:
    """Recording rules and burn-rate alerts for every objective, and with two or more
    replicas per shard the replica-health alerts; alerts carry the cluster's labels."""
    labels = alert_labels(owner.name, owner.namespace, cluster_labels)
    scope = router_scope(owner)
    groups = rule_groups(spec.slo.objectives, scope, labels)
    if spec.replicas >= 2:
        hint = repair_hint(owner.name, spec)
        groups.append(replica_alert_group(owner.name, scope, labels, hint))
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": _meta(owner, spec, prometheus_rule_name(owner.name)),
        "spec": {"groups": groups},
    }


# --- ServiceMonitors -----------------------------------------------------------------------


def _service_monitor(
    owner: Owner,
    spec: ChromaClusterSpec,
    name: str,
    component: str,
    port: str,
    tls: dict[str, Any] | None = None,
) -> Manifest:
    endpoint: dict[str, Any] = {
        "port": port,
        "path": "/metrics",
        "scheme": "https" if tls else "http",
        "interval": spec.monitoring.scrape_interval,
    }
    if tls:
        endpoint["tlsConfig"] = tls
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": _meta(owner, spec, name),
        "spec": {
            "selector": {"matchLabels": selector_labels(owner, component)},
            "namespaceSelector": {"matchNames": [owner.namespace]},
            "endpoints": [endpoint],
        },
    }


def build_router_service_monitor(owner: Owner, spec: ChromaClusterSpec) -> Manifest:
    """Scrapes every router through the front Service's `metrics` port."""
    tls = None
    if spec.tls.secret_name:
        # Verified with the TLS Secret's CA, under the front Service's name.
        tls = {
            "ca": {"secret": {"name": spec.tls.secret_name, "key": naming.TLS_CA_KEY}},
            "serverName": naming.service_host(naming.front_service(owner.name), owner.namespace),
        }
    return _service_monitor(
        owner, spec, naming.front_service(owner.name), ROUTER_COMPONENT, "metrics", tls
    )


def build_encoder_service_monitor(owner: Owner, spec: ChromaClusterSpec) -> Manifest:
    return _service_monitor(owner, spec, naming.encoder(owner.name), ENCODER_COMPONENT, "http")


# --- Grafana dashboard ---------------------------------------------------------------------


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {
        "refId": ref,
        "expr": expr,
        "legendFormat": legend,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
    }


class _Layout:
    """Hands out panel ids and a two-column grid position."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._slot = 0
        self._y = 0

    def row(self, title: str) -> None:
        if self._slot % 2:
            self._slot += 1
            self._y += 8
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def add(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str,
        kind: str = "timeseries",
        description: str = "",
    ) -> None:
        x = 12 * (self._slot % 2)
        refs = "ABCDEFGHIJ"
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": x, "y": self._y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
                "targets": [_target(e, legend, refs[i]) for i, (e, legend) in enumerate(targets)],
            }
        )
        self._slot += 1
        if self._slot % 2 == 0:
            self._y += 8


def _budget_exprs(o: Objective, scope: Scope, recorded: bool) -> tuple[str, str, str]:
    """(budget remaining over the SLO window, burn rate 1h, burn rate 5m)."""
    budget = f"{error_budget(o.target):g}"

    def ratio(window: str) -> str:
        if recorded:
            return promql.recorded(o, window, scope)
        return promql.error_ratio(o, window, scope)

    return (
        f"1 - (\n{ratio(o.window)}\n) / {budget}",
        f"(\n{ratio('1h')}\n) / {budget}",
        f"(\n{ratio('5m')}\n) / {budget}",
    )


def dashboard(owner: Owner, spec: ChromaClusterSpec) -> dict[str, Any]:
    """The Grafana dashboard model (JSON-able dict) of one cluster."""
    m, p = SLI_METRICS, PANEL_METRICS
    r = router_scope(owner).matchers()
    query = {**r, m.route_label: m.query_route}
    clients = {m.route_label: m.excluded_routes_regex}
    lay = _Layout()

    lay.row("Queries")
    lay.add(
        "Query rate",
        [
            (
                f"sum by ({m.status_label}) (rate({selector(m.requests_total, query)}[{RATE}]))",
                f"queries {{{{{m.status_label}}}}}",
            ),
            (
                f"sum(rate({selector(m.requests_total, r, not_regex=clients)}[{RATE}]))",
                "all requests",
            ),
        ],
        unit="reqps",
    )
    lay.add(
        "Query latency percentiles",
        [
            (
                f"histogram_quantile({q}, sum by (le) "
                f"(rate({selector(m.duration_bucket, query)}[{RATE}])))",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        unit="s",
    )
    lay.add(
        "Per-shard latency",
        [
            (
                f"histogram_quantile({q}, sum by (le, {p.shard_label}) "
                f"(rate({selector(p.shard_duration_histogram + '_bucket', r)}[{RATE}])))",
                f"shard {{{{{p.shard_label}}}}} p{round(q * 100)}",
            )
            for q in (0.5, 0.99)
        ],
        unit="s",
        description="Latency of the routers' calls to each shard",
    )
    hits = f"sum(rate({selector(p.cache_hits_total, r)}[{RATE}]))"
    misses = f"sum(rate({selector(p.cache_misses_total, r)}[{RATE}]))"
    lay.add(
        "Cache hit ratio",
        [(f"{hits}\n/\n({hits} + {misses})", "hit ratio")],
        unit="percentunit",
    )
    relevant = f"rate({selector(m.recall_relevant_total, r)}[{RATE}])"
    missed = f"rate({selector(m.recall_missed_total, r)}[{RATE}])"
    lay.add(
        "Recall@k of sampled queries",
        [
            (
                f"1 - sum by (collection) ({missed})\n/\nsum by (collection) ({relevant})",
                "{{collection}}",
            )
        ],
        unit="percentunit",
        description="Each router re-runs a share of live queries exactly (slo.recallSampleRate) "
        "and counts how much of the exact top-k the client got",
    )

    if spec.encoder.enabled:
        e = encoder_scope(owner).matchers()
        batch = p.encoder_batch_size_histogram
        lay.row("Encoder")
        lay.add(
            "Encoder queue",
            [(f"sum({selector(p.encoder_queue_depth, e)})", "texts waiting")],
            unit="short",
        )
        lay.add(
            "Encoder batch size",
            [
                (
                    f"sum(rate({selector(batch + '_sum', e)}[{RATE}]))\n/\n"
                    f"sum(rate({selector(batch + '_count', e)}[{RATE}]))",
                    "mean",
                ),
                (
                    f"histogram_quantile(0.9, sum by (le) "
                    f"(rate({selector(batch + '_bucket', e)}[{RATE}])))",
                    "p90",
                ),
            ],
            unit="short",
        )

    lay.row("Error budget")
    scope = router_scope(owner)
    for o in spec.slo.objectives:
        remaining, burn_1h, burn_5m = _budget_exprs(o, scope, spec.monitoring.prometheus_rule)
        lay.add(
            f"Error budget remaining: {o.name}",
            [(remaining, o.name)],
            unit="percentunit",
            kind="stat",
            description=f"Share of the {o.window} error budget ({error_budget(o.target):g}) left",
        )
        lay.add(
            f"Burn rate: {o.name}",
            [(burn_1h, "1h"), (burn_5m, "5m")],
            unit="short",
            description="1 = spending the budget exactly over the SLO window; "
            "the fast page fires above 14.4 (scaled for windows other than 30d)",
        )

    key = f"{owner.namespace}/{owner.name}"
    return {
        "uid": f"chroma-{content_hash(key)}",
        "title": f"Chroma cluster {key}",
        "description": "Generated by chroma-operator; edits are overwritten",
        "tags": ["chroma", "chroma-operator"],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": GRAFANA_SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": lay.panels,
    }


def dashboard_name(cluster: str) -> str:
    return f"{cluster}-dashboard"


def build_dashboard_config_map(owner: Owner, spec: ChromaClusterSpec) -> Manifest:
    """The dashboard as a ConfigMap the Grafana sidecar picks up by its label."""
    body = json.dumps(dashboard(owner, spec), indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(owner, spec, dashboard_name(owner.name), DASHBOARD_LABEL),
        "data": {f"chroma-{owner.namespace}-{owner.name}.json": body},
    }


# --- entry point ---------------------------------------------------------------------------


def build_monitoring(
    owner: Owner, spec: ChromaClusterSpec, cluster_labels: Mapping[str, str] | None = None
) -> list[Manifest]:
    """Every monitoring object `spec.monitoring` asks for.

    `cluster_labels` (the ChromaCluster's own metadata labels) are copied onto the alerts.
    """
    mon = spec.monitoring
    out: list[Manifest] = []
    if mon.prometheus_rule and spec.slo.objectives:
        out.append(build_prometheus_rule(owner, spec, cluster_labels))
    if mon.service_monitor:
        out.append(build_router_service_monitor(owner, spec))
        if spec.encoder.enabled:
            out.append(build_encoder_service_monitor(owner, spec))
    if mon.dashboard:
        out.append(build_dashboard_config_map(owner, spec))
    return out
