"""Real loopback HTTP servers for the SLO tests: a router-like /metrics and an Alertmanager."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

QUERY_ROUTE = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/query"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class RouterMetrics:
    """The router's request metrics (names, labels, buckets) in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chroma_router_requests_total",
            "Requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chroma_router_request_duration_seconds",
            "Latency",
            ["route", "method", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def queries(self, n: int, slow: int, status: int = 200) -> None:
        for i in range(n):
            self.requests.labels(QUERY_ROUTE, "POST", str(status)).inc()
            self.latency.labels(QUERY_ROUTE, "POST", str(status)).observe(0.2 if i < slow else 0.01)


@dataclass
class MetricsServer:
    """Serves `/metrics` from `metrics`; swap `metrics` to simulate a process restart."""

    metrics: RouterMetrics = field(default_factory=RouterMetrics)
    url: str = ""
    scrapes: int = 0

    def restart(self) -> None:
        """The process behind the URL restarts: every counter starts from zero."""
        self.metrics = RouterMetrics()


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    state = MetricsServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = generate_latest(state.metrics.registry)
            state.scrapes += 1
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server, thread = _serve(Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/metrics"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class FakeAlertmanagerState:
    """What a real HTTP endpoint received; `fail_with` makes it answer an error."""

    url: str = ""
    posts: list[list[dict[str, Any]]] = field(default_factory=list)
    fail_with: int | None = None


@pytest.fixture
def alertmanager() -> Iterator[FakeAlertmanagerState]:
    state = FakeAlertmanagerState()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            if (
                self.path != "/api/v2/alerts"
                or self.headers.get("Content-Type") != "application/json"
            ):
                self.send_error(404)
                return
            if state.fail_with:
                self.send_error(state.fail_with)
                return
            state.posts.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server, thread = _serve(Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)
