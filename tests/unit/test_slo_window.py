"""The operator's own evaluator on real exposition text from real prometheus_client metrics.

Each "router" below is a prometheus_client registry with the router's metric names,
labels and buckets (as `chroma_operator.router.metrics` declares them); requests are
observed with known latencies and statuses, the text `generate_latest` writes is fed to
the evaluator, and the SLIs and burn rates are checked against hand computations.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from chroma_operator.api.models import Objective
from chroma_operator.slo.sli import QUERY_ROUTE
from chroma_operator.slo.status import slo_update
from chroma_operator.slo.window import SloEvaluator

T0 = 1_700_000_000.0
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WRITE_ROUTE = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/add"

LATENCY = Objective(name="query-latency", type="latency", threshold_ms=50, target=0.99)
AVAILABILITY = Objective(name="availability", type="availability", target=0.999)


class Exporter:
    """A router's metrics: the same names, labels and bucket bounds."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chroma_router_requests_total",
            "Requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chroma_router_request_duration_seconds",
            "Request latency",
            ["route", "method", "status"],
            buckets=buckets,
            registry=self.registry,
        )

    def serve(self, n: int, seconds: float, *, route: str = QUERY_ROUTE, status: int = 200) -> None:
        method = "GET" if route == "/metrics" else "POST"
        for _ in range(n):
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route, method, str(status)).observe(seconds)

    def queries(self, n: int, slow: int) -> None:
        """`n` queries of which `slow` take 80 ms (> 50 ms) and the rest 20 ms."""
        self.serve(n - slow, 0.020)
        self.serve(slow, 0.080)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def test_latency_sli_from_exact_bucket() -> None:
    ev = SloEvaluator([LATENCY])
    r = Exporter()
    ev.observe("http://r0:8080", r.text(), T0)
    r.queries(1000, 37)
    r.serve(5, 0.050)  # exactly the threshold: within the bucket le=0.05, so fast
    ev.observe("http://r0:8080", r.text(), T0 + 30)
    res = ev.evaluate(T0 + 30).objectives[0]
    w = res.windows["5m"]
    assert (w.events, w.bad_events) == (1005, 37)
    assert w.error_ratio == pytest.approx(37 / 1005)
    assert w.burn_rate == pytest.approx(37 / 1005 / 0.01)
    assert w.covered_seconds == 30
    assert res.sli == pytest.approx(1 - 37 / 1005)
    assert res.budget_remaining == pytest.approx(1 - 37 / 1005 / 0.01)


def test_first_scrape_is_a_baseline() -> None:
    """Counts from before the operator first saw a router have no time: not counted."""
    ev = SloEvaluator([LATENCY])
    r = Exporter()
    r.queries(1000, 500)
    ev.observe("r0", r.text(), T0)
    res = ev.evaluate(T0).objectives[0]
    assert res.windows["1h"].events == 0
    assert res.windows["1h"].error_ratio is None
    assert not res.firing()


def _step(ev: SloEvaluator, routers: list[Exporter], t: float, n: int, slow: int) -> None:
    """Split `n` queries (`slow` of them slow) over the routers, then scrape each."""
    for i, r in enumerate(routers):
        share, share_slow = n // len(routers), slow // len(routers)
        if i == 0:
            share += n % len(routers)
            share_slow += slow % len(routers)
        r.queries(share, share_slow)
        ev.observe(f"http://router-{i}:8080/metrics", r.text(), t)


def test_pages_fire_when_both_windows_burn_then_recover() -> None:
    """An hour of clean traffic, then 30 % slow queries (30x a 1 % budget), then clean again.

    1000 queries a minute. After n slow minutes (hand-computed):
    - 1h/5m (14.4x): 5m burns 6n x (30x from n = 5); 1h burns 300n / 60 000 / 1 % = n/2 x,
      so the pair fires at n = 29 (14.5x), not at n = 28 (14.0x);
    - 6h/30m (6x): 30m burns n x; the 6h window has seen all 60 + n minutes:
      300n / (60 000 + 1000n) >= 6 % from n = 15, so the page starts at minute 15.
    One Warning at minute 15, none when 1h/5m joins at 29.
    """
    ev = SloEvaluator([LATENCY])
    routers = [Exporter(), Exporter()]
    t = T0
    _step(ev, routers, t, 0, 0)
    for _ in range(60):
        t += 60
        _step(ev, routers, t, 1000, 0)
    update = slo_update(ev.evaluate(t), {})
    assert update.condition["status"] == "True"
    assert update.condition["reason"] == "ObjectivesMet"
    assert update.events == ()
    previous: dict[str, object] = {"slo": update.status, "conditions": [update.condition]}

    events: dict[int, list[tuple[str, str]]] = {}
    first_fire: dict[str, int] = {}
    for n in range(1, 40):
        t += 60
        _step(ev, routers, t, 1000, 300)
        res = ev.evaluate(t)
        obj = res.objectives[0]
        fast, slow = obj.pairs[0], obj.pairs[1]
        assert (fast.alert.name, slow.alert.name) == ("1h/5m", "6h/30m")
        assert fast.short_burn_rate == pytest.approx(6.0 * min(n, 5))
        assert fast.long_burn_rate == pytest.approx(n / 2)
        assert slow.short_burn_rate == pytest.approx(float(min(n, 30)))
        assert slow.long_burn_rate == pytest.approx(300 * n / (60_000 + 1000 * n) / 0.01)
        for pair in (fast, slow):
            if pair.firing:
                first_fire.setdefault(pair.alert.name, n)
        update = slo_update(res, previous)
        if update.events:
            events[n] = [(e.type, e.reason) for e in update.events]
        previous = {"slo": update.status, "conditions": [update.condition]}
    assert first_fire == {"6h/30m": 15, "1h/5m": 29}
    assert events == {15: [("Warning", "SLOBurnRateHigh")]}
    assert update.condition["status"] == "False"
    assert update.condition["reason"] == "BurnRateHigh"
    assert "1h/5m" in update.condition["message"]
    assert update.status["paging"] == ["query-latency"]
    assert len(ev.evaluate(t).routers) == 2

    # Clean again: 1h/5m stops when the 5m window burns under 14.4x (m = 3); 6h/30m once its 30m
    # window holds (30 - m) x 300 bad of 30 000 < 6 %, i.e. at m = 25: then a Normal event.
    for m in range(1, 60):
        t += 60
        _step(ev, routers, t, 1000, 0)
        res = ev.evaluate(t)
        update = slo_update(res, previous)
        assert res.objectives[0].pairs[0].firing == (m < 3)  # 5m: (5 - m) x 6 >= 14.4
        if update.events:
            events[100 + m] = [(e.type, e.reason) for e in update.events]
        previous = {"slo": update.status, "conditions": [update.condition]}
        if not res.firing("page"):
            break
    assert m == 25
    assert events[125] == [("Normal", "SLOBurnRateRecovered")]
    assert update.status["paging"] == []
    # The 1d/2h ticket pair still fires: SLOMet stays False though the page has cleared.
    assert res.firing("ticket")
    assert update.condition["status"] == "False"


def test_availability_counts_5xx_and_ignores_operational_routes() -> None:
    ev = SloEvaluator([AVAILABILITY])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    r.queries(900, 0)
    r.serve(97, 0.01, route=WRITE_ROUTE, status=201)
    r.serve(2, 0.01, route=WRITE_ROUTE, status=503)
    r.serve(1, 0.01, status=500)
    r.serve(3, 0.01, status=404)  # client errors are not the service's fault
    r.serve(500, 0.001, route="/metrics")
    r.serve(500, 0.001, route="/healthz", status=503)
    ev.observe("r0", r.text(), T0 + 30)
    w = ev.evaluate(T0 + 30).objectives[0].windows["5m"]
    assert (w.events, w.bad_events) == (1003, 3)
    assert w.burn_rate == pytest.approx(3 / 1003 / 0.001)


def test_counter_reset_keeps_counting() -> None:
    """A router restarts: its counters drop to the new process's counts, which all count."""
    ev = SloEvaluator([LATENCY])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    r.queries(1000, 10)
    ev.observe("r0", r.text(), T0 + 30)
    restarted = Exporter()
    restarted.queries(100, 50)
    ev.observe("r0", restarted.text(), T0 + 60)
    restarted.queries(100, 0)
    ev.observe("r0", restarted.text(), T0 + 90)
    w = ev.evaluate(T0 + 90).objectives[0].windows["5m"]
    assert (w.events, w.bad_events) == (1200, 60)


def test_reset_detected_by_created_time_when_new_counts_are_higher() -> None:
    """A restarted router may already exceed the old count by the next scrape."""
    ev = SloEvaluator([LATENCY])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    r.queries(50, 0)
    ev.observe("r0", r.text(), T0 + 30)
    restarted = Exporter()
    # prometheus_client stamps `_created` with the wall clock: make it differ
    text = restarted.text()
    restarted.queries(80, 8)
    text = restarted.text()
    old_created = [ln for ln in r.text().splitlines() if "_created{" in ln]
    new_created = [ln for ln in text.splitlines() if "_created{" in ln]
    if old_created and new_created and old_created[0].split()[-1] == new_created[0].split()[-1]:
        pytest.skip("both registries were created within the clock's resolution")
    ev.observe("r0", text, T0 + 60)
    w = ev.evaluate(T0 + 60).objectives[0].windows["5m"]
    assert (w.events, w.bad_events) == (130, 8)


def test_routers_are_summed_and_a_new_router_starts_from_baseline() -> None:
    ev = SloEvaluator([LATENCY])
    a, b = Exporter(), Exporter()
    ev.observe("a", a.text(), T0)
    a.queries(100, 1)
    ev.observe("a", a.text(), T0 + 30)
    b.queries(999, 999)  # history before the operator saw b
    ev.observe("b", b.text(), T0 + 30)
    b.queries(100, 3)
    a.queries(100, 0)
    ev.observe("a", a.text(), T0 + 60)
    ev.observe("b", b.text(), T0 + 60)
    w = ev.evaluate(T0 + 60).objectives[0].windows["5m"]
    assert (w.events, w.bad_events) == (300, 4)


def test_windows_slide() -> None:
    """Bad minutes older than the window stop counting in it."""
    ev = SloEvaluator([LATENCY])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    t = T0
    for slow in (100, 0, 0, 0, 0, 0, 0):  # minute 1 bad, then clean
        t += 60
        r.queries(1000, slow)
        ev.observe("r0", r.text(), t)
    res = ev.evaluate(t).objectives[0]
    assert res.windows["5m"].bad_events == 0
    assert res.windows["5m"].events == 5000
    assert res.windows["30m"].bad_events == 100
    assert res.windows["30m"].covered_seconds == 7 * 60


def test_threshold_missing_from_buckets_is_a_problem_not_a_guess() -> None:
    ev = SloEvaluator([Objective(name="p", type="latency", threshold_ms=42, target=0.99)])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    r.queries(100, 5)
    ev.observe("r0", r.text(), T0 + 30)
    res = ev.evaluate(T0 + 30).objectives[0]
    assert res.windows["5m"].events == 0
    assert len(res.problems) == 1
    assert "le=0.042" in res.problems[0]
    update = slo_update(ev.evaluate(T0 + 30), None)
    assert update.status["objectives"][0]["problems"] == list(res.problems)
    assert update.condition["status"] == "Unknown"
    assert "cannot be measured" in update.condition["message"]
    assert "le=0.042" in update.condition["message"]


def test_odd_thresholds_match_the_bucket_prometheus_client_writes() -> None:
    """33.3 ms is 0.033299999999999996 s: the bound is found by value, not by spelling."""
    obj = Objective(name="odd", type="latency", threshold_ms=33.3, target=0.9)
    ev = SloEvaluator([obj])
    r = Exporter(buckets=tuple(sorted((*BUCKETS, 33.3 / 1000))))
    ev.observe("r0", r.text(), T0)
    r.serve(9, 0.030)
    r.serve(1, 0.040)
    ev.observe("r0", r.text(), T0 + 30)
    res = ev.evaluate(T0 + 30).objectives[0]
    assert not res.problems
    assert res.windows["5m"].error_ratio == pytest.approx(0.1)


def test_stale_router_leaves_the_live_list_but_its_errors_count() -> None:
    ev = SloEvaluator([LATENCY], stale_after_s=120)
    a, b = Exporter(), Exporter()
    ev.observe("a", a.text(), T0)
    ev.observe("b", b.text(), T0)
    a.queries(100, 50)
    ev.observe("a", a.text(), T0 + 60)
    t = T0 + 60
    for _ in range(5):
        t += 60
        b.queries(100, 0)
        ev.observe("b", b.text(), t)
    res = ev.evaluate(t)
    assert res.routers == ("b",)
    assert res.objectives[0].windows["1h"].bad_events == 50
    ev.forget("a")
    assert ev.evaluate(t).objectives[0].windows["1h"].bad_events == 0


def test_changed_objective_starts_afresh() -> None:
    ev = SloEvaluator([LATENCY])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    r.queries(100, 10)
    ev.observe("r0", r.text(), T0 + 30)
    ev.configure([LATENCY.model_copy(update={"threshold_ms": 100.0})])
    assert ev.evaluate(T0 + 30).objectives[0].windows["5m"].events == 0
    r.serve(10, 0.080)  # fast for 100 ms
    r.serve(10, 0.200)
    ev.observe("r0", r.text(), T0 + 60)
    w = ev.evaluate(T0 + 60).objectives[0].windows["5m"]
    assert (w.events, w.bad_events) == (20, 10)


def test_month_of_samples_stays_small_and_exact() -> None:
    """31 days scraped every 10 minutes: samples are thinned, window sums stay right."""
    obj = Objective(name="month", type="availability", target=0.99, window="30d")
    ev = SloEvaluator([obj])
    r = Exporter()
    ev.observe("r0", r.text(), T0)
    t = T0
    steps = 31 * 24 * 6
    for i in range(steps):
        t += 600
        r.requests.labels(WRITE_ROUTE, "POST", "201").inc(100)
        if i % 6 == 0:  # one bad request an hour
            r.requests.labels(WRITE_ROUTE, "POST", "500").inc()
        ev.observe("r0", r.text(), t)
    samples = ev._routers["r0"].samples["month"]
    # hourly beyond 3 days, every 10-minute sample younger than that, plus compaction slack
    assert len(samples) < 28 * 24 + 3 * 24 * 6 + 64
    assert len(samples) < steps / 3
    res = ev.evaluate(t).objectives[0]
    month = res.windows["30d"]
    # Window edges fall on hourly samples once old: within an hour of 30 days exactly.
    assert month.covered_seconds == pytest.approx(30 * 86_400, abs=3600)
    assert month.events == pytest.approx(30 * 24 * 6 * 100 + 30 * 24, rel=0.002)
    assert month.error_ratio == pytest.approx(1 / 601, rel=0.002)
    day = res.windows["1d"]
    assert (day.events, day.bad_events) == (24 * 6 * 100 + 24, 24)


def test_garbage_is_refused() -> None:
    ev = SloEvaluator([LATENCY])
    with pytest.raises(ValueError):
        ev.observe("r0", "chroma_router_requests_total{route= 1 2 3 garbage", T0)
