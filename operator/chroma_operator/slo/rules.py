"""Prometheus rule groups for a cluster's objectives: recording rules and burn-rate alerts.

Plain dicts in the shape of a rule file's `groups:` (and so of PrometheusRule `spec.groups`).
Every window's error ratio is recorded once per objective; the alerts then compare
recorded series, which keeps each alert cheap to evaluate every 30 seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from chroma_operator.api.models import Objective
from chroma_operator.slo.objectives import (
    RELATIVE_TOLERANCE,
    BurnRateAlert,
    Severity,
    burn_rate_alerts,
    error_budget,
    seconds,
    windows_for,
)
from chroma_operator.slo.promql import Scope, error_ratio, record_name, recorded
from chroma_operator.slo.sli import SLI_METRICS, SliMetrics

Rule = dict[str, Any]
Group = dict[str, Any]

ALERT_NAME = "ChromaSLOBurnRateHigh"
LONG_WINDOW_INTERVAL = "2m"
"""Windows of a day or more barely move in 30 s; evaluate them less often."""

_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_label_name(key: str) -> str:
    """A Kubernetes label key as a Prometheus label name (`app.kubernetes.io/x` -> `app_kubernetes_io_x`)."""
    name = _LABEL_NAME.sub("_", key)
    return name if not name[:1].isdigit() else f"_{name}"


def alert_labels(
    cluster: str, namespace: str, cluster_labels: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Labels every alert of the cluster carries: who it is, plus its own labels."""
    out = {prometheus_label_name(k): v for k, v in sorted((cluster_labels or {}).items())}
    out.update({"chroma_cluster": cluster, "namespace": namespace})
    return out


def _fmt(x: float) -> str:
    """For people: 6 significant digits."""
    return f"{x:g}"


def _num(x: float) -> str:
    """For PromQL: the exact float (repr round-trips)."""
    return repr(float(x))


def _objective_text(o: Objective) -> str:
    if o.type == "latency":
        return f"{_fmt(o.target * 100)}% of queries faster than {_fmt(o.threshold_ms or 0)} ms over {o.window}"
    if o.type == "recall":
        return f"recall@{o.k} of sampled queries at least {_fmt(o.target)} over {o.window}"
    return f"{_fmt(o.target * 100)}% of requests without a server error over {o.window}"


RECALL_HINT = (
    " Recall below target usually means efSearch is too low for the data: run tuning "
    "(kubectl annotate chroma {cluster} chroma.operator.dev/tune=$(date +%s) --overwrite), "
    "which measures recall and applies the efSearch that meets tuning.targetRecall."
)


def recording_rules(
    objective: Objective, scope: Scope, labels: Mapping[str, str], metrics: SliMetrics = SLI_METRICS
) -> tuple[list[Rule], list[Rule]]:
    """(short-window rules, day-or-longer rules) recording the error ratio of every window."""
    short: list[Rule] = []
    long: list[Rule] = []
    for window in windows_for([objective.window]):
        rule = {
            "record": record_name(window),
            "expr": error_ratio(objective, window, scope, metrics),
            "labels": {**labels, "slo": objective.name, "slo_type": objective.type},
        }
        (long if seconds(window) >= seconds("1d") else short).append(rule)
    return short, long


def alert_expr(objective: Objective, pairs: Sequence[BurnRateAlert], scope: Scope) -> str:
    """`(long burn >= f and short burn >= f) or ...`; the value is the long window's burn rate."""
    budget = error_budget(objective.target)
    clauses = []
    for pair in pairs:
        # factor x (1 - tolerance): a ratio of exactly factor x budget fires (see objectives)
        limit = f"{_num(pair.factor)} * {_num(1.0 - RELATIVE_TOLERANCE)}"
        long = f"{recorded(objective, pair.long_window, scope)} / {_num(budget)} >= {limit}"
        short = f"{recorded(objective, pair.short_window, scope)} / {_num(budget)} >= {limit}"
        clauses.append(f"(\n  {long}\nand\n  {short}\n)")
    return "\nor\n".join(clauses)


def alert_rules(objective: Objective, scope: Scope, labels: Mapping[str, str]) -> list[Rule]:
    """One alert per severity, each the OR of its window pairs."""
    pairs = burn_rate_alerts(objective.window)
    out: list[Rule] = []
    severities: tuple[Severity, ...] = ("page", "ticket")
    for severity in severities:
        mine = [p for p in pairs if p.severity == severity]
        if not mine:
            continue
        how = " or ".join(
            f"{_fmt(p.factor)}x over {p.long_window} and {p.short_window}" for p in mine
        )
        out.append(
            {
                "alert": ALERT_NAME,
                "expr": alert_expr(objective, mine, scope),
                "labels": {
                    **labels,
                    "severity": severity,
                    "slo": objective.name,
                    "slo_type": objective.type,
                },
                "annotations": {
                    "summary": f"ChromaCluster {scope.namespace}/{scope.service}: SLO "
                    f"{objective.name} is burning its error budget too fast ({severity})",
                    "description": (
                        f"Objective: {_objective_text(objective)}. The error budget "
                        f"({_fmt(error_budget(objective.target) * 100)}% of events) is being "
                        "spent {{ $value | humanize }}x faster than sustainable over the "
                        f"long window (threshold: {how})."
                        + (
                            RECALL_HINT.format(cluster=scope.service)
                            if objective.type == "recall"
                            else ""
                        )
                    ),
                    "burn_rate": "{{ $value | humanize }}",
                },
            }
        )
    return out


def rule_groups(
    objectives: Sequence[Objective],
    scope: Scope,
    labels: Mapping[str, str],
    metrics: SliMetrics = SLI_METRICS,
) -> list[Group]:
    """Recording groups (short and long windows) and one alert group per objective."""
    groups: list[Group] = []
    for objective in objectives:
        short, long = recording_rules(objective, scope, labels, metrics)
        base = f"chroma-slo.{scope.namespace}.{scope.service}.{objective.name}"
        groups.append({"name": f"{base}.sli", "rules": short})
        if long:
            groups.append(
                {"name": f"{base}.sli-long", "interval": LONG_WINDOW_INTERVAL, "rules": long}
            )
        groups.append({"name": f"{base}.alerts", "rules": alert_rules(objective, scope, labels)})
    return groups
