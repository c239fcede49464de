"""The metric and label names the SLO machinery reads: one place, matched to the exporters.

They mirror `chroma_operator.router.metrics.RouterMetrics` (and the router's route
templates) and `chroma_operator.encoder.metrics.EncoderMetrics`. A test that runs when
those modules are present checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

QUERY_ROUTE = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/query"


@dataclass(frozen=True)
class SliMetrics:
    """Router metrics behind the SLIs.

    Latency SLI: queries (`route` = the query route template, any method and status) whose
    duration fell in the histogram bucket `le` = threshold. Availability SLI: requests on
    every route but the operational ones, bad when `status` is a 5xx code.
    """

    requests_total: str = "chroma_router_requests_total"
    duration_histogram: str = "chroma_router_request_duration_seconds"
    route_label: str = "route"
    query_route: str = QUERY_ROUTE
    status_label: str = "status"
    server_error_regex: str = "5.."
    excluded_routes_regex: str = "/metrics|/healthz|/readyz|/internal/.*"
    """Scrapes, probes and peer invalidations are not client requests."""
    recall_relevant_total: str = "chroma_router_recall_relevant_total"
    """Recall SLI events: the exact top-k results of sampled queries."""
    recall_missed_total: str = "chroma_router_recall_missed_total"
    """Recall SLI bad events: exact top-k results the client's answer lacked."""

    @property
    def duration_bucket(self) -> str:
        return f"{self.duration_histogram}_bucket"

    @property
    def duration_count(self) -> str:
        return f"{self.duration_histogram}_count"

    def is_server_error(self, status: str) -> bool:
        return re.fullmatch(self.server_error_regex, status) is not None

    def is_excluded_route(self, route: str) -> bool:
        return re.fullmatch(self.excluded_routes_regex, route) is not None


@dataclass(frozen=True)
class PanelMetrics:
    """Further router and encoder metrics the dashboard plots."""

    shard_duration_histogram: str = "chroma_router_shard_request_duration_seconds"
    shard_label: str = "shard"
    cache_hits_total: str = "chroma_router_cache_hits_total"
    cache_misses_total: str = "chroma_router_cache_misses_total"
    shard_errors_total: str = "chroma_router_shard_errors_total"
    encoder_queue_depth: str = "chroma_encoder_queue_depth"
    encoder_batch_size_histogram: str = "chroma_encoder_batch_size"
    encoder_requests_total: str = "chroma_encoder_requests_total"
    encoder_duration_histogram: str = "chroma_encoder_request_duration_seconds"


SLI_METRICS = SliMetrics()
PANEL_METRICS = PanelMetrics()


def threshold_seconds(threshold_ms: float) -> float:
    """The bucket bound the router adds for a threshold (the same float arithmetic)."""
    return float(threshold_ms) / 1000.0


def le_value(threshold_ms: float) -> str:
    """The `le` label value prometheus_client writes for the threshold's bucket."""
    value: str = floatToGoString(threshold_seconds(threshold_ms))  # type: ignore[no-untyped-call]
    return value
