"""scrape_routers against real loopback endpoints: one good, one down, one not metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from chroma_operator.api.models import Objective
from chroma_operator.slo.scrape import metrics_urls, scrape_routers
from chroma_operator.slo.window import SloEvaluator
from chroma_operator.topology import ShardTopology, Topology

T0 = 1_750_000_000.0


@pytest.fixture
def not_metrics() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>this is not { the exposition format\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_scrape_routers(metrics_server: Any, not_metrics: str) -> None:
    ev = SloEvaluator([Objective(name="q", type="latency", threshold_ms=50, target=0.99)])
    down = "http://127.0.0.1:9/metrics"
    urls = [metrics_server.url, down, not_metrics]
    async with httpx.AsyncClient() as client:
        first = await scrape_routers(ev, client, urls, T0)
        metrics_server.metrics.queries(100, 7)
        second = await scrape_routers(ev, client, urls, T0 + 30)
    for result in (first, second):
        assert result.scraped == (metrics_server.url,)
        assert set(result.failed) == {down, not_metrics}
        assert "ConnectError" in result.failed[down]
        assert result.failed[not_metrics].startswith("unparsable metrics")
    evaluation = ev.evaluate(T0 + 30)
    assert evaluation.routers == (metrics_server.url,)
    w = evaluation.objectives[0].windows["5m"]
    assert (w.events, w.bad_events) == (100, 7)


def test_metrics_urls_are_the_router_peers() -> None:
    topology = Topology(
        cluster="c",
        namespace="ns",
        shards=[ShardTopology(index=0, endpoints=["http://s0:8000"])],
        router={
            "peers": ["http://c-shard-0-0.c-shard-0.ns.svc.cluster.local:8080/", "http://r1:8080"]
        },
    )
    assert metrics_urls(topology) == [
        "http://c-shard-0-0.c-shard-0.ns.svc.cluster.local:8080/metrics",
        "http://r1:8080/metrics",
    ]
