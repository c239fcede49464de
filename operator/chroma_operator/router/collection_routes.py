"""Collection routes: create, get, list, count, modify, delete.

A collection exists on every replica of every shard, each with its own id; the id the
client sees is the primary's (shard 0, first replica). Creates and deletes start on the
primary, then go everywhere else; a retry after a partial failure converges. Reads of
collections (get, list, count) go to the primary, and while it is away to an in-sync
sibling, whose ids are swapped for the client ids written down (`collection_ids.py`).
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
from chroma_operator.router.collection_ids import client_id_of
from chroma_operator.router.collections import (
    ResolvedCollection,
    check_scope,
    db_path,
    max_dimension,
    reply_error,
)
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import deserialize_error, shard_unavailable
from chroma_operator.router.fanout import gather, require_all, require_ok
from chroma_operator.router.shard_zero import primary_first, sibling_call
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
        await self.core.ids.recorded(str(model["id"]), (tenant, database, str(model["name"])))
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

    async def _primary_or_sibling(
        self,
        st: State,
        request: Request,
        params: Mapping[str, str] | None = None,
    ) -> tuple[Reply, bool]:
        """The request's GET answered by the primary, or while it is away (or held for a
        repair) by an in-sync sibling of shard 0; and whether the primary answered."""
        pool, headers, path = st.pool, auth_headers(request), shard_path(request)

        async def ask_primary() -> Reply:
            return await pool.call(0, pool.primary, "GET", path, params=params, headers=headers)

        async def ask_sibling() -> Any:
            return await sibling_call(pool, "GET", path, params, headers)

        reply: Reply
        reply, direct = await primary_first(ask_primary, ask_sibling, pool)
        return reply, direct

    async def _client_id(self, st: State, tenant: str, database: str, name: str) -> str:
        """A collection's client id while the primary is away: known, or written down."""
        client_id = st.collections.known_id(tenant, database, name)
        if client_id is None:
            client_id = await client_id_of(st.pool, tenant, database, name)
        if client_id is None:  # never answer with a sibling's own id
            raise shard_unavailable(0, st.pool.primary, f"collection {name} has no id entry")
        return client_id

    async def get_collection(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        asked = request.path_params["collection_id"]
        headers = auth_headers(request)
        if request.url.path.endswith(f"/by-id/{asked}"):
            model, _ = await st.collections.model_by_id(tenant, database, asked, headers)
        else:
            reply, direct = await self._primary_or_sibling(st, request)
            if not reply.ok:
                return passthrough(reply)
            model = reply.json()
            if not direct:
                model["id"] = await self._client_id(st, tenant, database, str(model["name"]))
        check_scope(model, tenant, database, asked)
        model = await self._fill_dimension(st, tenant, database, model, headers)
        return json_response(model)

    async def list_collections(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        headers = auth_headers(request)
        reply, direct = await self._primary_or_sibling(st, request, dict(request.query_params))
        if not reply.ok:
            return passthrough(reply)
        listed: list[dict[str, Any]] = reply.json()
        if not direct:
            ids = await asyncio.gather(
                *(self._client_id(st, tenant, database, str(m["name"])) for m in listed)
            )
            listed = [{**m, "id": i} for m, i in zip(listed, ids, strict=True)]
        models = await asyncio.gather(
            *(self._fill_dimension(st, tenant, database, m, headers) for m in listed)
        )
        return json_response(list(models))

    async def collections_count(self, request: Request, st: State) -> Response:
        reply, _ = await self._primary_or_sibling(st, request)
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
        if isinstance(body.get("new_name"), str) and body["new_name"] != coll.name:
            old = (coll.tenant, coll.database, coll.name)
            coll.name = body["new_name"]
            await self.core.ids.renamed(coll.client_id, old, (*old[:2], coll.name))
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
        gone_id = str(model_reply.json()["id"]) if model_reply.ok else None
        if gone_id is not None:
            gone = ResolvedCollection(gone_id, tenant, database, name)
            await self.core.invalidate(st, gone, forget=True)
        st.collections.forget_name(tenant, database, name)
        await self.core.ids.dropped(gone_id, (tenant, database, name))
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
