"""Collection routes: create, get, list, count, modify, delete.

A collection exists on every replica of every shard, each with its own id; the id the
client sees is the primary's (shard 0, first replica). Creates and deletes start on the
primary, then go everywhere else; a retry after a partial failure converges.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.router import validate as v
from chroma_operator.router.collections import (
    ResolvedCollection,
    check_scope,
    db_path,
    max_dimension,
    reply_error,
)
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import deserialize_error
from chroma_operator.router.fanout import gather, require_all, require_ok
from chroma_operator.router.shards import Reply
from chroma_operator.router.state import (
    COLL,
    DB,
    State,
    auth_headers,
    json_response,
    passthrough,
    shard_path,
)

DEFAULT_EF_SPACE = "l2"  # DefaultEmbeddingFunction.default_space() in chromadb 1.5.9


def with_defaults(st: State, body: dict[str, Any]) -> dict[str, Any]:
    """The cluster's HNSW defaults under the client's, and the encoder as embedder.

    The stock client sends Chroma's `default` embedding function when its user named
    none; with the encoder enabled that becomes `huggingface_server` at the encoder,
    which the client then uses to embed documents and query texts.
    """
    if body.get("schema") is not None:
        return body
    config = dict(body.get("configuration") or {})
    ef = config.get("embedding_function")
    default_ef = (
        isinstance(ef, dict) and ef.get("type") == "known" and (ef.get("name") == "default")
    )
    if config.get("spann") is None:
        cluster = st.topology.hnsw.as_collection_configuration()["hnsw"]
        assert isinstance(cluster, dict)
        client_hnsw = dict(config.get("hnsw") or {})
        if default_ef and client_hnsw == {"space": DEFAULT_EF_SPACE}:
            # The stock client fills in its default embedder's space when its user gave
            # no HNSW settings at all: that is not a choice, the cluster's wins.
            client_hnsw = {}
        config["hnsw"] = {**cluster, **client_hnsw}
    encoder = st.topology.encoder
    if encoder is not None and (ef is None or default_ef):
        config["embedding_function"] = {
            "type": "known",
            "name": "huggingface_server",
            "config": {"api_key_env_var": None, "url": encoder.url.rstrip("/") + "/embed"},
        }
    return {**body, "configuration": config}


class CollectionRoutes:
    def __init__(self, core: RouterCore) -> None:
        self.core = core

    async def _everywhere_but_primary(
        self, st: State, method: str, path: str, content: bytes | None, headers: dict[str, str]
    ) -> dict[str, Reply]:
        """The same call to every replica except the primary; replies by endpoint."""
        primary = st.pool.primary
        calls = {
            ep: st.pool.call(s, ep, method, path, content=content, headers=headers)
            for s, ep in st.pool.all_endpoints()
            if ep != primary
        }
        replies, failed = await gather(calls)
        require_all(failed)
        return replies

    async def create_collection(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        body = v.parse_object(await request.body())
        if not isinstance(body.get("name"), str):
            raise deserialize_error("missing field `name`")
        body = with_defaults(st, body)
        headers = auth_headers(request)
        path = f"{db_path(tenant, database)}/collections"
        first = await st.pool.call(
            0, st.pool.primary, "POST", path, content=orjson.dumps(body), headers=headers
        )
        if not first.ok and first.status != 409:
            return passthrough(first)
        # The rest with get_or_create, so a retry after a partial failure converges.
        rest = orjson.dumps({**body, "get_or_create": True})
        replies = await self._everywhere_but_primary(st, "POST", path, rest, headers)
        require_ok(replies.values())
        if not first.ok:
            return passthrough(first)
        model = first.json()
        models = {ep: r.json() for ep, r in replies.items()}
        models[st.pool.primary] = model
        st.collections.learn(tenant, database, str(model["name"]), models)
        await self.core.tenants.registered(tenant)  # a backup started after this covers it
        if model.get("dimension") is None:
            model["dimension"] = max_dimension(models.values())
        return json_response(model)

    async def _fill_dimension(
        self,
        st: State,
        tenant: str,
        database: str,
        model: dict[str, Any],
        headers: Mapping[str, str],
    ) -> dict[str, Any]:
        """Shard 0 may hold no record yet; the collection's dimension is any shard's."""
        if model.get("dimension") is None:
            coll = await st.collections.resolve(
                tenant, database, str(model["id"]), headers, need_dimension=True
            )
            model["dimension"] = coll.dimension
        return model

    async def get_collection(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        headers = auth_headers(request)
        reply = await st.pool.call(0, st.pool.primary, "GET", shard_path(request), headers=headers)
        if not reply.ok:
            return passthrough(reply)
        check_scope(reply.json(), tenant, database, request.path_params["collection_id"])
        model = await self._fill_dimension(st, tenant, database, reply.json(), headers)
        return json_response(model)

    async def list_collections(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        headers = auth_headers(request)
        reply = await st.pool.call(
            0,
            st.pool.primary,
            "GET",
            shard_path(request),
            params=dict(request.query_params),
            headers=headers,
        )
        if not reply.ok:
            return passthrough(reply)
        models = await asyncio.gather(
            *(self._fill_dimension(st, tenant, database, m, headers) for m in reply.json())
        )
        return json_response(list(models))

    async def collections_count(self, request: Request, st: State) -> Response:
        reply = await st.pool.call(
            0, st.pool.primary, "GET", shard_path(request), headers=auth_headers(request)
        )
        return passthrough(reply)

    async def modify_collection(self, request: Request, st: State) -> Response:
        coll = await self._resolve(request, st)
        raw = await request.body()
        body = v.parse_object(raw)
        headers = auth_headers(request)
        calls = {
            s: st.pool.write(
                s,
                "PUT",
                lambda ep: coll.path(ep),
                content=raw,
                headers=headers,
                where=(coll.tenant, coll.database, coll.name, ""),
            )
            for s in range(st.pool.num_shards)
        }
        try:
            results, failed = await gather(calls)
        finally:
            await self.core.invalidate(st, coll)
        require_all(failed)
        replies = [reply for s in sorted(results) for reply in results[s]]
        for reply in replies:
            if not reply.ok:
                raise reply_error(reply, f"shard {reply.shard}: " if reply.shard else "")
        if isinstance(body.get("new_name"), str):
            coll.name = body["new_name"]
        return passthrough(replies[0])

    async def _resolve(self, request: Request, st: State) -> ResolvedCollection:
        p = request.path_params
        client_id = v.check_collection_id(p["collection_id"])
        return await st.collections.resolve(
            p["tenant"], p["database"], client_id, auth_headers(request)
        )

    async def delete_collection(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        name = request.path_params["collection_id"]
        path = shard_path(request)
        headers = auth_headers(request)
        primary = st.pool.primary
        model_reply = await st.pool.call(0, primary, "GET", path, headers=headers)
        first = await st.pool.call(0, primary, "DELETE", path, headers=headers)
        if not first.ok:
            return passthrough(first)
        calls = {
            ep: st.pool.call(s, ep, "DELETE", path, headers=headers)
            for s, ep in st.pool.all_endpoints()
            if ep != primary
        }
        replies, failed = await gather(calls)
        if model_reply.ok:
            gone = ResolvedCollection(str(model_reply.json()["id"]), tenant, database, name)
            await self.core.invalidate(st, gone, forget=True)
        st.collections.forget_name(tenant, database, name)
        require_all(failed)
        require_ok(replies.values(), allowed=frozenset({404}))
        return passthrough(first)

    def routes(self) -> list[Route]:
        r = self.core.route
        return [
            r(DB + "/collections", self.list_collections, ["GET"]),
            r(DB + "/collections", self.create_collection, ["POST"]),
            r(DB + "/collections_count", self.collections_count, ["GET"]),
            r(DB + "/collections/by-id/{collection_id}", self.get_collection, ["GET"]),
            r(COLL, self.get_collection, ["GET"]),
            r(COLL, self.modify_collection, ["PUT"]),
            r(COLL, self.delete_collection, ["DELETE"]),
        ]
