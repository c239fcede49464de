"""The SLO machinery reads the metrics the router really exports (runs once the router is in)."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from chroma_operator.api.models import Objective
from chroma_operator.slo.sli import PANEL_METRICS, QUERY_ROUTE, SLI_METRICS
from chroma_operator.slo.window import SloEvaluator

router_metrics = pytest.importorskip("chroma_operator.router.metrics")


def test_router_exports_what_the_slis_read() -> None:
    metrics = router_metrics.RouterMetrics([50, 1000, 33.3])
    names = {m.name for m in metrics.registry.collect()}
    # prometheus_client names a counter family without `_total`
    assert SLI_METRICS.requests_total.removesuffix("_total") in names
    assert SLI_METRICS.duration_histogram in names
    assert PANEL_METRICS.shard_duration_histogram in names
    assert PANEL_METRICS.cache_hits_total.removesuffix("_total") in names
    assert PANEL_METRICS.cache_misses_total.removesuffix("_total") in names


def test_evaluator_on_the_routers_own_metrics() -> None:
    metrics = router_metrics.RouterMetrics([50])
    objective = Objective(name="q", type="latency", threshold_ms=50, target=0.99)
    ev = SloEvaluator([objective, Objective(name="a", type="availability", target=0.999)])
    ev.observe("r", generate_latest(metrics.registry).decode(), 0.0)
    for seconds, status in ((0.01, "200"), (0.05, "200"), (0.2, "200"), (0.01, "500")):
        metrics.requests.labels(QUERY_ROUTE, "POST", status).inc()
        metrics.latency.labels(QUERY_ROUTE, "POST", status).observe(seconds)
    metrics.requests.labels("/metrics", "GET", "200").inc()
    ev.observe("r", generate_latest(metrics.registry).decode(), 30.0)
    q, a = ev.evaluate(30.0).objectives
    assert not q.problems
    assert (q.windows["5m"].events, q.windows["5m"].bad_events) == (4, 1)
    assert (a.windows["5m"].events, a.windows["5m"].bad_events) == (4, 1)


def test_query_route_template_is_the_routers() -> None:
    state = pytest.importorskip("chroma_operator.router.state")
    assert state.COLL + "/query" == QUERY_ROUTE
    for operational in ("/metrics", "/healthz", "/readyz", "/internal/invalidate"):
        assert SLI_METRICS.is_excluded_route(operational)
    assert not SLI_METRICS.is_excluded_route(QUERY_ROUTE)
