"""Queries over HTTP/1.1 as a client meets them, through the router's own protocol.

Raw sockets check the framing a client library hides: pipelining, `Connection: close`,
`Expect: 100-continue`, HTTP/1.0, a body that arrives apart from its head or is larger
than uvicorn's 64 KiB read buffer, and the error shape and metrics of a bad query.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

import httpx
import orjson
import pytest

from chroma_operator.router.query_routes import QUERY_ROUTE
from kubectl import eventually
from router_harness import RouterProcess, metric_samples

pytestmark = pytest.mark.slow

DB = "/api/v2/tenants/default_tenant/databases/default_database"
VECTORS = [[float(i), float(i % 5), 1.0] for i in range(30)]


@pytest.fixture(scope="module")
def collection_id(router: RouterProcess) -> str:
    col = router.client().create_collection("http-framing", embedding_function=None)
    col.add(ids=[f"id{i}" for i in range(len(VECTORS))], embeddings=VECTORS)
    return str(col.id)


def query_request(cid: str, k: int, *, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    body = orjson.dumps({"query_embeddings": [[3.0, 3.0, 1.0]], "n_results": k})
    return (
        b"POST %s/collections/%s/query HTTP/%s\r\nhost: test\r\ncontent-type: application/json"
        b"\r\ncontent-length: %d\r\n%s\r\n%s"
        % (DB.encode(), cid.encode(), version, len(body), extra, body)
    )


def read_answer(stream: BinaryIO) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP answer from a buffered socket stream: status line, headers, body."""
    status = stream.readline().rstrip(b"\r\n")
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return status, headers, body


@pytest.fixture
def conn(router: RouterProcess) -> Iterator[tuple[socket.socket, BinaryIO]]:
    sock = socket.create_connection(("127.0.0.1", router.port), timeout=10)
    stream = sock.makefile("rb")
    try:
        yield sock, stream
    finally:
        stream.close()
        sock.close()


def test_a_query_answer_carries_what_uvicorn_and_the_route_write(
    router: RouterProcess, collection_id: str, conn: tuple[socket.socket, BinaryIO]
) -> None:
    sock, stream = conn
    sock.sendall(query_request(collection_id, 3))
    status, headers, body = read_answer(stream)
    assert status == b"HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["server"] == "uvicorn" and headers["date"]
    assert len(headers["chroma-trace-id"]) == 32
    assert headers["server-timing"].startswith("router;dur=")
    expected = (
        router.client()
        .get_collection("http-framing")
        .query(query_embeddings=[[3.0, 3.0, 1.0]], n_results=3)
    )
    assert orjson.loads(body)["ids"] == expected["ids"]


def test_pipelined_queries_are_answered_in_order_on_one_connection(
    collection_id: str, conn: tuple[socket.socket, BinaryIO]
) -> None:
    sock, stream = conn
    sock.sendall(b"".join(query_request(collection_id, k) for k in (1, 4, 2)))
    sizes = []
    for _ in range(3):
        status, _, body = read_answer(stream)
        assert status == b"HTTP/1.1 200 OK"
        sizes.append(len(orjson.loads(body)["ids"][0]))
    assert sizes == [1, 4, 2]
    sock.sendall(query_request(collection_id, 5))  # and the connection is still good
    assert len(orjson.loads(read_answer(stream)[2])["ids"][0]) == 5


@pytest.mark.parametrize(("extra", "version"), [(b"connection: close\r\n", b"1.1"), (b"", b"1.0")])
def test_an_answer_that_ends_the_connection_says_so_and_closes_it(
    collection_id: str, conn: tuple[socket.socket, BinaryIO], extra: bytes, version: bytes
) -> None:
    sock, stream = conn
    sock.sendall(query_request(collection_id, 2, extra=extra, version=version))
    status, headers, body = read_answer(stream)
    assert status.endswith(b" 200 OK")
    assert headers["connection"] == "close"
    assert len(orjson.loads(body)["ids"][0]) == 2
    assert stream.read() == b""  # closed by the router


def test_expect_100_continue_gets_its_interim_answer_before_the_body(
    collection_id: str, conn: tuple[socket.socket, BinaryIO]
) -> None:
    sock, stream = conn
    request = query_request(collection_id, 2, extra=b"expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    sock.sendall(head + b"\r\n\r\n")
    assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert stream.readline() == b"\r\n"
    sock.sendall(body)
    status, _, answer = read_answer(stream)
    assert status == b"HTTP/1.1 200 OK"
    assert len(orjson.loads(answer)["ids"][0]) == 2


def test_a_body_that_comes_apart_from_its_head_is_waited_for(
    collection_id: str, conn: tuple[socket.socket, BinaryIO]
) -> None:
    """A client that writes the head, then the body in pieces, then the next request
    with the body's last piece, gets both answers."""
    sock, stream = conn
    request = query_request(collection_id, 3)
    head, body = request.split(b"\r\n\r\n", 1)
    for piece in (head + b"\r\n\r\n", body[:10], body[10:] + query_request(collection_id, 1)):
        sock.sendall(piece)
        time.sleep(0.05)
    assert len(orjson.loads(read_answer(stream)[2])["ids"][0]) == 3
    assert len(orjson.loads(read_answer(stream)[2])["ids"][0]) == 1


def test_a_body_larger_than_uvicorns_read_buffer_is_read_whole(
    router: RouterProcess, collection_id: str
) -> None:
    """uvicorn stops reading past 64 KiB until the app asks for more: a query body
    several times that size still arrives whole."""
    queries = [[i / 7, (i % 3) / 3, 1.0] for i in range(5000)]
    body = orjson.dumps({"query_embeddings": queries, "n_results": 1, "include": []})
    assert len(body) > 2 * 65536
    reply = httpx.post(f"{router.url}{DB}/collections/{collection_id}/query", content=body)
    assert reply.status_code == 200
    assert len(reply.json()["ids"]) == len(queries)


async def test_a_bad_query_gets_chromas_error_shape_and_the_query_is_counted(
    router: RouterProcess, collection_id: str
) -> None:
    async with httpx.AsyncClient(base_url=router.url) as http:

        async def counted() -> float:
            """The query route's count of 422 answers (counted once each is sent)."""
            text = (await http.get("/metrics")).text
            return sum(
                value
                for labels, value in metric_samples(text, "chroma_router_requests_total")
                if labels.get("route") == QUERY_ROUTE and labels.get("status") == "422"
            )

        before = await counted()
        reply = await http.post(
            f"{DB}/collections/{collection_id}/query",
            content=b'{"query_embeddings": "no", "n_results": 2}',
        )
        assert reply.status_code == 422  # what Chroma answers a body of the wrong shape
        assert set(reply.json()) >= {"error", "message"}
        assert len(reply.headers["chroma-trace-id"]) == 32
        assert await eventually(counted, lambda n: n == before + 1, timeout=5) == before + 1
