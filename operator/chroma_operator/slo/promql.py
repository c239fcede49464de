"""PromQL for the SLIs: the share of bad events over a window, from the routers' metrics.

Both SLIs are "bad / all" error ratios, so burn rate = ratio / budget for either type:
- latency: queries slower than the threshold = (count - bucket{le=threshold}) / count.
  The bucket is the router's exact bound for the threshold, so nothing is interpolated.
- availability: requests answered with a 5xx / all client requests.
- recall: exact top-k results the sampled queries missed / exact top-k results checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chroma_operator.api.models import Objective
from chroma_operator.slo.sli import SLI_METRICS, SliMetrics, le_value

RECORD_PREFIX = "chroma_slo"
GROUP_BY = ("namespace", "service")
"""Labels the ServiceMonitor's targets carry that identify one cluster's routers."""


def quote(value: str) -> str:
    """A PromQL string literal (double quotes, backslashes and quotes escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_escape(value: str) -> str:
    """RE2-escape a literal so `=~` matches it exactly."""
    out = []
    for ch in value:
        out.append("\\" + ch if ch in r".^$*+?()[]{}|\\" else ch)
    return "".join(out)


@dataclass(frozen=True)
class Scope:
    """The series of one cluster: the label values Prometheus attaches to its routers."""

    namespace: str
    service: str

    def matchers(self) -> dict[str, str]:
        return {"namespace": self.namespace, "service": self.service}


def selector(
    metric: str,
    equal: Mapping[str, str],
    *,
    regex: Mapping[str, str] | None = None,
    not_regex: Mapping[str, str] | None = None,
) -> str:
    """`metric{a="x", b=~"y", c!~"z"}` with labels in a stable order."""
    parts = [f"{k}={quote(v)}" for k, v in sorted(equal.items())]
    parts += [f"{k}=~{quote(v)}" for k, v in sorted((regex or {}).items())]
    parts += [f"{k}!~{quote(v)}" for k, v in sorted((not_regex or {}).items())]
    return f"{metric}{{{', '.join(parts)}}}"


def le_regex(threshold_ms: float) -> str:
    """Match the bucket bound however the scraper spells it.

    prometheus_client writes `1.0` for a whole number of seconds; Prometheus 3 normalises
    it to `1` on ingestion. Non-integral bounds are spelt the same by both.
    """
    value = le_value(threshold_ms)
    if value.endswith(".0"):
        return f"{regex_escape(value[:-2])}|{regex_escape(value)}"
    return regex_escape(value)


def _sum_rate(series: str, window: str) -> str:
    return f"sum by ({', '.join(GROUP_BY)}) (rate({series}[{window}]))"


def latency_error_ratio(
    threshold_ms: float, window: str, scope: Scope, metrics: SliMetrics = SLI_METRICS
) -> str:
    """Share of queries slower than `threshold_ms` over `window`."""
    match = {**scope.matchers(), metrics.route_label: metrics.query_route}
    total = _sum_rate(selector(metrics.duration_count, match), window)
    fast = _sum_rate(
        selector(metrics.duration_bucket, match, regex={"le": le_regex(threshold_ms)}), window
    )
    return f"({total} - {fast})\n/\n{total}"


def availability_error_ratio(window: str, scope: Scope, metrics: SliMetrics = SLI_METRICS) -> str:
    """Share of client requests answered with a server error over `window`.

    With no 5xx series yet the numerator would be empty (and the ratio "no data"), so
    it falls back to 0 x the request rate: a real 0 whenever there were requests.
    """
    base = scope.matchers()
    requests = selector(
        metrics.requests_total, base, not_regex={metrics.route_label: metrics.excluded_routes_regex}
    )
    errors = selector(
        metrics.requests_total,
        base,
        regex={metrics.status_label: metrics.server_error_regex},
        not_regex={metrics.route_label: metrics.excluded_routes_regex},
    )
    total = _sum_rate(requests, window)
    bad = _sum_rate(errors, window)
    return f"(\n  {bad}\n  or\n  0 * {total}\n)\n/\n{total}"


def recall_error_ratio(window: str, scope: Scope, metrics: SliMetrics = SLI_METRICS) -> str:
    """Share of the exact top-k that sampled queries missed over `window` (1 - recall@k)."""
    base = scope.matchers()
    relevant = _sum_rate(selector(metrics.recall_relevant_total, base), window)
    missed = _sum_rate(selector(metrics.recall_missed_total, base), window)
    return f"{missed}\n/\n{relevant}"


def error_ratio(
    objective: Objective, window: str, scope: Scope, metrics: SliMetrics = SLI_METRICS
) -> str:
    """The objective's SLI error ratio over `window`, straight from the raw metrics."""
    if objective.type == "latency":
        if objective.threshold_ms is None:
            raise ValueError(f"latency objective {objective.name} has no thresholdMs")
        return latency_error_ratio(objective.threshold_ms, window, scope, metrics)
    if objective.type == "recall":
        return recall_error_ratio(window, scope, metrics)
    return availability_error_ratio(window, scope, metrics)


def record_name(window: str) -> str:
    """Recording-rule name of the error ratio over `window` (Prometheus naming: level:metric:ops)."""
    return f"{RECORD_PREFIX}:sli_error:ratio_rate{window}"


def recorded(objective: Objective, window: str, scope: Scope) -> str:
    """The recorded series of one objective's error ratio over `window`."""
    return selector(record_name(window), {**scope.matchers(), "slo": objective.name})
