"""The evaluator driven the way the operator's timer drives it: async scrapes over real HTTP.

Time is given to `observe`/`evaluate` explicitly (an hour cannot pass in a test), but
every scrape is a real GET of a real exposition served from a real prometheus_client
registry on 127.0.0.1, and alerts go to a real HTTP endpoint.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chroma_operator.api.models import Objective
from chroma_operator.slo.alertmanager import AlertmanagerNotifier
from chroma_operator.slo.status import iso, slo_update
from chroma_operator.slo.window import SloEvaluator

T0 = 1_750_000_000.0
LATENCY = Objective(name="query-latency", type="latency", threshold_ms=50, target=0.99)


async def _tick(ev: SloEvaluator, client: httpx.AsyncClient, urls: list[str], now: float) -> None:
    """One timer run: scrape every router, skip one that does not answer."""
    for url in urls:
        try:
            response = await client.get(url, timeout=2.0)
            response.raise_for_status()
        except httpx.HTTPError:
            continue
        ev.observe(url, response.text, now)


async def test_scrape_loop_fires_and_recovers(metrics_server: Any, alertmanager: Any) -> None:
    ev = SloEvaluator([LATENCY])
    notifier = AlertmanagerNotifier(
        alertmanager.url, cluster="search", namespace="prod", cluster_labels={"team": "rag"}
    )
    status: dict[str, Any] = {}
    events: list[tuple[float, str, str]] = []
    async with httpx.AsyncClient() as client:

        async def run(minutes: int, n: int, slow: int, t: float) -> float:
            nonlocal status
            for _ in range(minutes):
                t += 30
                metrics_server.metrics.queries(n, slow)
                await _tick(ev, client, [metrics_server.url, "http://127.0.0.1:9/metrics"], t)
                evaluation = ev.evaluate(t)
                update = slo_update(evaluation, status)
                events.extend((t, e.type, e.reason) for e in update.events)
                status = {"slo": update.status, "conditions": [update.condition]}
                await notifier.notify(evaluation, client)
            return t

        t = await run(1, 0, 0, T0)
        assert status["conditions"][0]["status"] == "Unknown"
        assert status["conditions"][0]["reason"] == "NoTraffic"

        t = await run(20, 200, 0, t)
        assert status["conditions"][0]["status"] == "True"
        assert status["slo"]["objectives"][0]["sli"] == 1.0
        assert status["slo"]["routers"] == 1

        # a burst of slow queries: 2000 slow in one tick. 5m window: 2000 bad of
        # 9 x 200 + 2000 (52.6x the 1 % budget); 1h: 2000 of 6000 (33x) -> page at once
        t = await run(1, 2000, 2000, t)
        cond = status["conditions"][0]
        assert (cond["status"], cond["reason"]) == ("False", "BurnRateHigh")
        assert events[-1][1:] == ("Warning", "SLOBurnRateHigh")
        assert status["slo"]["paging"] == ["query-latency"]
        burn = status["slo"]["objectives"][0]["burnRates"]
        assert burn["5m"] == pytest.approx(2000 / 3800 / 0.01, rel=1e-5)
        assert burn["1h"] == pytest.approx(2000 / 6000 / 0.01, rel=1e-5)
        assert len(alertmanager.posts) == 1
        sent = {a["labels"]["severity"]: a for a in alertmanager.posts[0]}
        assert sorted(sent) == ["page", "ticket"]
        page = sent["page"]
        assert page["labels"]["alertname"] == "ChromaSLOBurnRateHigh"
        assert page["labels"]["slo"] == "query-latency"
        assert page["labels"]["team"] == "rag"
        assert page["labels"]["chroma_cluster"] == "search"
        assert page["labels"]["namespace"] == "prod"
        assert "33.3x" in page["annotations"]["description"]
        assert page["endsAt"] > page["startsAt"]

        # the router restarts while slow queries go on: the reset must not hide them
        metrics_server.restart()
        t = await run(2, 2000, 2000, t)
        assert status["conditions"][0]["reason"] == "BurnRateHigh"
        objective = status["slo"]["objectives"][0]
        assert (objective["events"], objective["badEvents"]) == (10_000, 6000)
        assert [e[1:] for e in events] == [("Warning", "SLOBurnRateHigh")]

        # fast again: the page lasts until the last slow tick leaves the 30m window
        # (60 ticks of 30 s), then one Normal event and a resolved page alert
        last_slow = t
        posts_before = len(alertmanager.posts)
        t = await run(120, 200, 0, t)
        assert [e[1:] for e in events] == [
            ("Warning", "SLOBurnRateHigh"),
            ("Normal", "SLOBurnRateRecovered"),
        ]
        recovered_at = events[-1][0]
        assert recovered_at == last_slow + 60 * 30
        assert status["slo"]["paging"] == []
        pages = [
            a
            for post in alertmanager.posts[posts_before:]
            for a in post
            if a["labels"]["severity"] == "page"
        ]
        assert pages[-1]["endsAt"] == iso(recovered_at)  # resolved, sent once
        assert len(pages) == 59 + 1  # re-sent on each of the 59 firing ticks, then resolved
        # the ticket pair (1d/2h) still fires: SLOMet stays False
        assert status["conditions"][0]["status"] == "False"
        assert status["slo"]["objectives"][0]["firing"] == ["ticket"]
    assert metrics_server.scrapes == 1 + 20 + 1 + 2 + 120


async def test_alertmanager_error_rolls_back(metrics_server: Any, alertmanager: Any) -> None:
    ev = SloEvaluator([LATENCY])
    notifier = AlertmanagerNotifier(alertmanager.url, cluster="c", namespace="ns")
    async with httpx.AsyncClient() as client:
        await _tick(ev, client, [metrics_server.url], T0)
        metrics_server.metrics.queries(100, 100)
        await _tick(ev, client, [metrics_server.url], T0 + 30)
        evaluation = ev.evaluate(T0 + 30)
        assert evaluation.firing("page")
        alertmanager.fail_with = 503
        with pytest.raises(httpx.HTTPStatusError):
            await notifier.notify(evaluation, client)
        alertmanager.fail_with = None
        assert await notifier.notify(evaluation, client) == 2  # page and ticket
        severities = sorted(a["labels"]["severity"] for a in alertmanager.posts[-1])
        assert severities == ["page", "ticket"]
