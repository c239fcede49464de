"""The floor of the router's stack: uvicorn, httptools and the router's own shard client,
forwarding every request to one Chroma node as it came, and nothing else.

`bench/router.py --floor` runs it beside the router: the router's latency over one node
then splits into what this stack costs anyway (an extra HTTP hop through Python) and what
the router's own work adds (routing, checks, cache, metrics, replica states).

    python bench/passthrough_proxy.py --topology topology.json --port 8100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--topology", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args()
    shard = Topology.from_json(args.topology.read_text()).shards[0].endpoints[0]
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
