"""The router's shard client against a real Chroma server and a raw TCP peer that
misbehaves on purpose (chunked answers, early close, silence)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import orjson
import pytest

from chroma_operator.local.chroma_server import ChromaServer, free_port
from chroma_operator.router.shard_http import ShardHttp, ShardHttpError

API = "/api/v2"


@pytest.fixture(scope="module")
def chroma() -> Iterator[str]:
    server = ChromaServer().start()
    try:
        yield server.url
    finally:
        server.close()


def client(timeout: float = 5.0, per_endpoint: int = 4) -> ShardHttp:
    return ShardHttp(timeout, per_endpoint, 60.0, headers={"content-type": "application/json"})


Answerer = Callable[[int], bytes | None]  # request number -> raw answer, None: silence


class RawPeer:
    """A TCP server that answers every request with `answer(request_number)`."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.requests += 1
                out = self.answer(self.requests)
                if out is None:  # stay silent
                    await asyncio.sleep(30)
                    return
                writer.write(out)
                await writer.drain()
                if b"connection: close" in out.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


StartPeer = Callable[[Answerer], Awaitable[tuple[str, RawPeer]]]


@pytest.fixture
async def raw() -> AsyncIterator[StartPeer]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answerer) -> tuple[str, RawPeer]:
        peer = RawPeer(answer)
        server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}", peer

    yield start
    for server in servers:
        server.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_talks_to_chroma_and_reuses_one_connection(chroma: str) -> None:
    http = client()
    try:
        beat = await http.request(chroma, "GET", API + "/heartbeat")
        assert beat.status == 200 and "nanosecond heartbeat" in orjson.loads(beat.body)
        assert beat.headers["content-type"] == "application/json"  # names come lower-case
        db = API + "/tenants/default_tenant/databases/default_database"
        made = await http.request(
            chroma, "POST", db + "/collections", content=orjson.dumps({"name": "pool-test"})
        )
        assert made.status == 200, made.body
        cid = orjson.loads(made.body)["id"]
        add = {"ids": ["a", "b"], "embeddings": [[1.0, 0.0], [0.0, 1.0]]}
        added = await http.request(
            chroma, "POST", f"{db}/collections/{cid}/add", content=orjson.dumps(add)
        )
        assert added.status in (200, 201), added.body
        count = await http.request(chroma, "GET", f"{db}/collections/{cid}/count")
        assert orjson.loads(count.body) == 2
        listed = await http.request(chroma, "GET", db + "/collections", params={"limit": "1"})
        assert len(orjson.loads(listed.body)) == 1
        missing = await http.request(
            chroma, "GET", f"{db}/collections/{'0' * 8}-0000-0000-0000-{'0' * 12}"
        )
        assert missing.status == 404 and b"error" in missing.body
        assert len(http._endpoints[chroma].idle) == 1  # every call above used one connection
    finally:
        await http.aclose()


async def test_chunked_answers_and_connection_close(raw: StartPeer) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n"
    )
    url, peer = await raw(lambda n: chunked if n == 1 else ok(b"[]", b"connection: close\r\n"))
    http = client()
    try:
        assert (await http.request(url, "POST", "/x", content=b"{}")).body == b"[1,2]"
        assert (await http.request(url, "POST", "/x", content=b"{}")).body == b"[]"
        assert (await http.request(url, "POST", "/x", content=b"{}")).body == b"[]"
        assert peer.connections == 2  # the server's close was honoured: a new connection
    finally:
        await http.aclose()


async def test_early_close_refusal_and_silence_are_errors_not_hangs(raw: StartPeer) -> None:
    half = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n[1,2"
    url, _ = await raw(lambda n: half)
    http = client(timeout=1.0)
    try:
        with pytest.raises(ShardHttpError, match="closed"):
            await http.request(url, "POST", "/x", content=b"{}")
        with pytest.raises(ShardHttpError, match="cannot connect"):
            await http.request(f"http://127.0.0.1:{free_port()}", "GET", "/x")
        silent, _ = await raw(lambda n: None)
        with pytest.raises(TimeoutError):
            await http.request(silent, "GET", "/x")
        assert http._endpoints[silent].idle == []  # a timed-out connection is not reused
        with pytest.raises(ShardHttpError, match="not a plain http"):
            await http.request("https://example.invalid", "GET", "/x")
    finally:
        await http.aclose()


async def test_a_cancelled_call_never_hands_its_answer_to_the_next(raw: StartPeer) -> None:
    answers = {1: None}
    url, peer = await raw(lambda n: answers.get(n, ok(b'"second"')))
    http = client()
    try:
        task = asyncio.ensure_future(http.request(url, "GET", "/slow"))
        await asyncio.sleep(0.2)
        task.cancel()  # as a losing hedge is
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await http.request(url, "GET", "/fast")).body == b'"second"'
        assert peer.connections == 2
    finally:
        await http.aclose()


async def test_calls_beyond_the_per_endpoint_cap_wait_their_turn(raw: StartPeer) -> None:
    url, peer = await raw(lambda n: ok(b"%d" % n))
    http = client(per_endpoint=2)
    try:
        answers = await asyncio.gather(*(http.request(url, "GET", "/x") for _ in range(10)))
        assert sorted(int(a.body) for a in answers) == list(range(1, 11))
        assert peer.connections <= 2
    finally:
        await http.aclose()
