"""Trace ids through the router: the stock client's `ChromaError.trace_id`, and the log."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from chromadb.errors import ChromaError, NotFoundError

from chroma_operator.local.chroma_server import ChromaServer, free_port
from router_harness import RouterProcess, http_client, make_topology
from slow_proxy import DelayProxy

pytestmark = pytest.mark.slow

HEX32 = re.compile(r"^[0-9a-f]{32}$")
DB = "/api/v2/tenants/default_tenant/databases/default_database"


@pytest.fixture(scope="module")
def logging_router(shards: list[ChromaServer]) -> Iterator[RouterProcess]:
    """A router that logs every request (at info level), so its log lines can be read."""
    topology = make_topology([[s.url] for s in shards])
    proc = RouterProcess(topology, args=["--log-level", "info", "--access-log"]).start()
    try:
        yield proc
    finally:
        proc.stop()


def wait_for_log(router: RouterProcess, text: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        tail = router.log_tail()
        if text in tail:
            return tail
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the router log: {router.log_tail()}")


def test_client_error_carries_a_trace_id_that_the_router_logged(
    logging_router: RouterProcess,
) -> None:
    client = http_client(logging_router.port)
    with pytest.raises(NotFoundError) as caught:
        client.get_collection("no-such-collection")
    trace_id = caught.value.trace_id
    assert trace_id is not None and HEX32.match(trace_id)
    tail = wait_for_log(logging_router, f"trace={trace_id}")
    line = next(x for x in tail.splitlines() if f"trace={trace_id}" in x)
    assert " GET /api/v2/tenants/default_tenant/databases/default_database/collections/" in line
    assert " 404 " in line


def test_every_answer_has_its_own_trace_id(router: RouterProcess) -> None:
    ids = set()
    for path in ("/api/v2/heartbeat", "/api/v2/heartbeat", "/api/v2/nope", "/healthz"):
        r = httpx.get(router.url + path)
        trace_id = r.headers["chroma-trace-id"]
        assert HEX32.match(trace_id), r.headers
        assert r.headers["server-timing"].startswith("router;dur=")
        ids.add(trace_id)
    assert len(ids) == 4


def test_a_rejected_write_is_logged_with_the_clients_trace_id(
    logging_router: RouterProcess, name: str
) -> None:
    client = http_client(logging_router.port)
    coll = client.create_collection(name)
    coll.add(ids=["a"], embeddings=[[1.0, 2.0]])
    with pytest.raises(ChromaError) as caught:
        coll.add(ids=["b"], embeddings=[[1.0, 2.0, 3.0]])  # the wrong dimension
    trace_id = caught.value.trace_id
    assert trace_id is not None
    tail = wait_for_log(logging_router, f"trace={trace_id}")
    assert any(" 400 " in x for x in tail.splitlines() if f"trace={trace_id}" in x)


@pytest.fixture(scope="module")
def traced_shard() -> Iterator[tuple[DelayProxy, RouterProcess]]:
    """A router over one shard that sends real trace ids, behind a proxy that records
    the shard's answers.

    Chroma 1.5.9 puts a real id on its error answers only with OpenTelemetry configured
    (the exporter's endpoint need not answer); without it the id is all zeros, which
    the router replaces with its own.
    """
    otel = {"service_name": "traced-shard", "endpoint": f"http://127.0.0.1:{free_port()}"}
    server = ChromaServer(settings={"open_telemetry": otel}).start()
    proxy = DelayProxy(server.port).start()
    router = RouterProcess(
        make_topology([[proxy.url]]), args=["--log-level", "info", "--access-log"]
    ).start()
    try:
        yield proxy, router
    finally:
        router.stop()
        proxy.stop()
        server.stop()


def test_a_shard_error_reaches_the_client_with_the_shards_trace_id(
    traced_shard: tuple[DelayProxy, RouterProcess], name: str
) -> None:
    """The one-shard query path: the shard's own answer, and its own trace id, in the
    client's error and in the router's log line (the router does not check `where`)."""
    proxy, router = traced_shard
    coll = http_client(router.port).create_collection(name)
    coll.add(ids=["a"], embeddings=[[1.0, 0.0]])
    seen = len(proxy.server_bytes)
    r = httpx.post(
        f"{router.url}{DB}/collections/{coll.id}/query",
        json={"query_embeddings": [[1.0, 0.0]], "n_results": 1, "where": {"$bogus": 1}},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "InvalidArgumentError"
    from_shard = re.findall(
        rb"chroma-trace-id: *([0-9a-f]{32})", bytes(proxy.server_bytes[seen:]), re.IGNORECASE
    )
    assert len(from_shard) == 1 and from_shard[0] != b"0" * 32, proxy.server_bytes[seen:]
    trace_id = from_shard[0].decode()
    assert r.headers["chroma-trace-id"] == trace_id
    tail = wait_for_log(router, f"trace={trace_id}")
    assert any(" 400 " in x for x in tail.splitlines() if f"trace={trace_id}" in x)
