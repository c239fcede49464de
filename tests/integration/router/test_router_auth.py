"""Credentials reach the shards unchanged.

Chroma 1.x servers delegate auth to a gateway in front of them (Envoy in its docs), so
each shard here sits behind a small real token gate that refuses requests without the
right `X-Chroma-Token`; the stock client talks to the router with the token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import chromadb
import httpx
import pytest
import uvicorn
from chromadb.errors import ChromaAuthError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chroma_operator.local.chroma_server import ChromaServer, free_port
from router_harness import RouterProcess, make_topology

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token"


def token_gate(upstream: str) -> Starlette:
    client = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def forward(request: Request) -> Response:
        if request.headers.get("x-chroma-token") != TOKEN:
            return JSONResponse({"error": "AuthError", "message": "bad token"}, 401)
        resp = await client.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers={"content-type": "application/json"},
        )
        return Response(resp.content, resp.status_code, media_type="application/json")

    return Starlette(
        routes=[Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE"])]
    )


@pytest.fixture(scope="module")
def gates(shards: list[ChromaServer]) -> Iterator[list[str]]:
    servers, threads, urls = [], [], []
    for shard in shards:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(token_gate(shard.url), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        urls.append(f"http://127.0.0.1:{port}")
    for server in servers:
        while not server.started:
            time.sleep(0.02)
    yield urls
    for server in servers:
        server.should_exit = True
    for thread in threads:
        thread.join(10)


def test_token_is_passed_to_every_shard(gates: list[str], name: str) -> None:
    proc = RouterProcess(make_topology([[u] for u in gates])).start()
    try:
        client = chromadb.HttpClient(
            host="127.0.0.1", port=proc.port, headers={"X-Chroma-Token": TOKEN}
        )
        col = client.create_collection(name)
        col.add(ids=[f"a{i}" for i in range(30)], embeddings=[[float(i), 1.0] for i in range(30)])
        assert col.count() == 30
        got: Any = col.query(query_embeddings=[[3.0, 1.0]], n_results=3)
        assert got["ids"][0][0] == "a3"
        with pytest.raises(ChromaAuthError):
            chromadb.HttpClient(host="127.0.0.1", port=proc.port)
        # A cached answer is not served to a caller without the token.
        url = (
            f"{proc.url}/api/v2/tenants/default_tenant/databases/default_database/"
            f"collections/{col.id}/query"
        )
        body = {"query_embeddings": [[3.0, 1.0]], "n_results": 3}
        assert httpx.post(url, json=body, headers={"X-Chroma-Token": TOKEN}).status_code == 200
        assert (
            httpx.post(url, json=body, headers={"X-Chroma-Token": TOKEN}).headers.get(
                "X-Chroma-Cache"
            )
            == "hit"
        )
        assert httpx.post(url, json=body).status_code == 401
    finally:
        proc.stop()
