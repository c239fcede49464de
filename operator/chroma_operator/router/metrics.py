"""Prometheus metrics, one registry per app (tests run several apps in one process).

Latency buckets always contain every SLO threshold as an exact bound, so
`histogram_quantile`-free SLO math (`le="0.05"` over `+Inf`) is exact, not interpolated.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DEFAULT_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

RECALL_BUCKETS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.99, 1.0)


def latency_buckets(slo_thresholds_ms: Iterable[float]) -> tuple[float, ...]:
    """Default bounds plus each SLO threshold (ms -> s), sorted, no duplicates."""
    bounds = set(DEFAULT_BUCKETS_S)
    bounds.update(float(t) / 1000.0 for t in slo_thresholds_ms)
    return tuple(sorted(bounds))


class RouterMetrics:
    def __init__(self, slo_thresholds_ms: Iterable[float] = ()) -> None:
        self.registry = CollectorRegistry()
        buckets = latency_buckets(slo_thresholds_ms)
        self.requests = Counter(
            "chroma_router_requests_total",
            "Requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chroma_router_request_duration_seconds",
            "Request latency by route template, method and status",
            ["route", "method", "status"],
            buckets=buckets,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "chroma_router_requests_in_flight", "Requests being served", registry=self.registry
        )
        self.shard_latency = Histogram(
            "chroma_router_shard_request_duration_seconds",
            "Latency of calls to shard replicas",
            ["shard"],
            buckets=buckets,
            registry=self.registry,
        )
        self.shard_errors = Counter(
            "chroma_router_shard_errors_total",
            "Failed calls to shard replicas (connection, timeout, 5xx)",
            ["shard", "kind"],
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "chroma_router_cache_hits_total",
            "Query answers served from cache",
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "chroma_router_cache_misses_total",
            "Cacheable queries not in cache",
            registry=self.registry,
        )
        self.cache_invalidations = Counter(
            "chroma_router_cache_invalidations_total",
            "Collection generations bumped by writes (local or from peers)",
            ["source"],
            registry=self.registry,
        )
        self.recall_relevant = Counter(
            "chroma_router_recall_relevant_total",
            "Exact top-k results of sampled queries (the recall SLI's events)",
            ["collection"],
            registry=self.registry,
        )
        self.recall_missed = Counter(
            "chroma_router_recall_missed_total",
            "Exact top-k results the client's answer lacked (the recall SLI's bad events)",
            ["collection"],
            registry=self.registry,
        )
        self.recall = Histogram(
            "chroma_router_recall",
            "Recall@k of sampled queries, one observation per query embedding",
            ["collection"],
            buckets=RECALL_BUCKETS,
            registry=self.registry,
        )
        self.recall_skipped = Counter(
            "chroma_router_recall_samples_skipped_total",
            "Sampled queries not re-run exactly (rate_limited, too_large, error, write_churn)",
            ["reason"],
            registry=self.registry,
        )
        self.search_modes = Counter(
            "chroma_router_search_mode_total",
            "Queries by search mode (approximate, exact, candidates)",
            ["mode"],
            registry=self.registry,
        )
        self.topology_reloads = Counter(
            "chroma_router_topology_reloads_total",
            "Topology file reloads",
            ["result"],
            registry=self.registry,
        )
        self.token_reloads = Counter(
            "chroma_router_token_reloads_total",
            "Tokens file reloads (auth)",
            ["result"],
            registry=self.registry,
        )
        self.hints_pending = Gauge(
            "chroma_router_hints_pending",
            "Writes waiting in this router's hint log, per replica",
            ["replica"],
            registry=self.registry,
        )
        self.hints_written = Counter(
            "chroma_router_hints_written_total",
            "Writes a replica missed and that went to its hint log",
            ["replica"],
            registry=self.registry,
        )
        self.hints_replayed = Counter(
            "chroma_router_hints_replayed_total",
            "Hinted writes replayed to their replica",
            ["replica"],
            registry=self.registry,
        )
        self.hints_replayed_records = Counter(
            "chroma_router_hints_replayed_records_total",
            "Records carried by the replayed hints (the replay rate)",
            ["replica"],
            registry=self.registry,
        )
        self.replicas_by_state = Gauge(
            "chroma_router_replicas",
            "Replicas by state as this router sees them (in-sync, stale, repairing, fenced)",
            ["state"],
            registry=self.registry,
        )
        self.hedges = Counter(
            "chroma_router_hedged_reads_total",
            "Read sub-requests also sent to a second replica, by which answered first",
            ["shard", "winner"],
            registry=self.registry,
        )
        self.read_subrequests = Counter(
            "chroma_router_read_subrequests_total",
            "Read sub-requests (the base of the hedge budget)",
            registry=self.registry,
        )
        self.replay_reconciled = Counter(
            "chroma_router_replay_reconciled_records_total",
            "Replayed records found different from an in-sync sibling and copied from it "
            "(writes of one record through two routers, replayed out of order)",
            ["replica"],
            registry=self.registry,
        )
        self.write_stragglers = Counter(
            "chroma_router_write_stragglers_total",
            "Live writes to a replica given up after the grace period (its siblings took them)",
            ["replica"],
            registry=self.registry,
        )
