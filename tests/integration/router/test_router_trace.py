"""Trace ids through the router: the stock client's `ChromaError.trace_id`, and the log."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from chromadb.errors import ChromaError, NotFoundError

from chroma_operator.local.chroma_server import ChromaServer
from router_harness import RouterProcess, http_client, make_topology

pytestmark = pytest.mark.slow

HEX32 = re.compile(r"^[0-9a-f]{32}$")


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
