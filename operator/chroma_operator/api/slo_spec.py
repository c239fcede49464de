"""Service-level objectives and the monitoring objects made from them (spec.slo,
spec.monitoring)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chroma_operator.api.base import DURATION_PATTERN, Model


class Objective(Model):
    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Objective name"
    )
    type: Literal["latency", "availability", "recall"] = Field(
        description="latency: share of queries faster than thresholdMs; availability: share "
        "of requests without a server error; recall: share of the exact top-k that sampled "
        "live queries returned (recall@k)"
    )
    threshold_ms: float | None = Field(
        default=None, gt=0, le=600_000, description="Latency threshold (latency objectives)"
    )
    target: float = Field(
        ge=0, le=1, description="Target share, strictly between 0 and 1, e.g. 0.99"
    )
    k: int = Field(
        default=10, ge=1, le=1000, description="Recall objectives: recall is measured at k"
    )
    window: str = Field(default="30d", pattern=DURATION_PATTERN, description="SLO window, e.g. 30d")


def _default_objectives() -> list[Objective]:
    return [
        Objective(name="query-latency", type="latency", threshold_ms=50, target=0.99),
        Objective(name="availability", type="availability", target=0.999),
    ]


class Slo(Model):
    objectives: list[Objective] = Field(
        default_factory=_default_objectives, max_length=32, description="Service-level objectives"
    )
    recall_sample_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Share of live queries each router re-runs exactly (off the request "
        "path, rate-limited) to measure recall; 0 turns the recall SLI off",
    )
    evaluation_interval_seconds: int = Field(
        default=30, ge=5, le=3600, description="How often the operator scrapes the routers"
    )
    alertmanager_url: str | None = Field(
        default=None, pattern=r"^https?://", description="Also post alerts to this Alertmanager"
    )


class Monitoring(Model):
    service_monitor: bool = Field(
        default=False, description="Create ServiceMonitors (Prometheus Operator)"
    )
    prometheus_rule: bool = Field(default=False, description="Create the SLO PrometheusRule")
    dashboard: bool = Field(default=False, description="Create a Grafana dashboard ConfigMap")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on monitoring objects (e.g. release: prometheus)",
    )
    scrape_interval: str = Field(
        default="30s", pattern=r"^[1-9][0-9]*(s|m)$", description="Scrape interval"
    )
