"""The floor of the router's stack: uvicorn, httptools and the router's own shard client,
forwarding every request to one Chroma node as it came, and nothing else.

`bench/router.py --floor` runs it beside the router: the router's latency over one node
then splits into what this stack costs anyway (an extra HTTP hop through Python) and what
the router's own work adds (routing, checks, cache, metrics, replica states).

`--raw` is the floor of any Python hop: no ASGI server and no client library, two
asyncio protocols on uvloop that find where each message ends (httptools) and write its
bytes on, one upstream connection per client connection. It spends about a quarter of the
CPU of the default mode; if its latency is no better, the cost is the hop itself (two
more processes woken per query), not the Python work.

    python bench/passthrough_proxy.py --topology topology.json --port 8100 [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httptools
import uvicorn
import uvloop
from starlette.types import Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from chroma_operator.router.shard_http import ShardHttp
from chroma_operator.topology import Topology


class PassThrough:
    """ASGI: each request to the topology's first shard, its answer back, byte for byte."""

    def __init__(self, shard: str) -> None:
        self.shard = shard
        self.http: ShardHttp | None = None  # made inside the serving loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            await self._answer(send, 200, b"ok")
            return
        if self.http is None:
            self.http = ShardHttp(30.0, 64, 60.0, headers={"content-type": "application/json"})
        chunks = []
        message: Message = {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            chunks.append(message.get("body", b""))
        query = scope["query_string"].decode("latin-1")
        answer = await self.http.request(
            self.shard,
            scope["method"],
            scope["path"] + (f"?{query}" if query else ""),
            content=b"".join(chunks) if scope["method"] != "GET" else None,
        )
        await self._answer(send, answer.status, answer.body)

    @staticmethod
    async def _answer(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _Upstream(asyncio.Protocol):
    """The shard side of one client connection: each whole answer goes back as it came."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.client.write(b"".join(self.chunks))
        self.chunks = []

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class RawPassThrough(asyncio.Protocol):
    """The client side: each whole request goes to the shard as it came."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.parser = httptools.HttpRequestParser(self)
        self.chunks: list[bytes] = []
        self.url = b""
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.pending: list[bytes] = []  # requests that came before the shard connection
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def on_url(self, url: bytes) -> None:
        self.url += url

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        request, url = b"".join(self.chunks), self.url
        self.chunks, self.url = [], b""
        assert self.transport is not None
        if url == b"/healthz":
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        elif self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(request)
        else:
            self.pending.append(request)
            if self.connecting is None:
                self.connecting = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        client = self.transport
        _, self.upstream = await loop.create_connection(
            lambda: _Upstream(client), self.host, self.port
        )
        assert self.upstream.transport is not None
        self.upstream.transport.write(b"".join(self.pending))
        self.pending = []

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


def serve_raw(shard: str, host: str, port: int) -> None:
    url = urlsplit(shard)
    assert url.hostname is not None and url.port is not None
    shard_host, shard_port = url.hostname, url.port

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: RawPassThrough(shard_host, shard_port), host, port
        )
        await server.serve_forever()

    uvloop.run(serve())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--topology", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--raw", action="store_true", help="asyncio protocols, no ASGI server")
    args = ap.parse_args()
    shard = Topology.from_json(args.topology.read_text()).shards[0].endpoints[0]
    if args.raw:
        serve_raw(shard, args.host, args.port)
        return
    uvicorn.run(
        PassThrough(shard),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
