"""The query route: nearest neighbours across shards, cached, in any search mode.

Over one shard (outside a move) the client's bytes go to the shard as they came and its
bytes come back: its answer is already the merged answer. Otherwise every shard of the
read placement is asked for its top k (more with `candidates=N`), copies a shard does not
own are dropped, and the answers are merged by distance. `exact` is brute force
(`query_modes`). The cache is keyed by collection, its write generation and the request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.router import validate as v
from chroma_operator.router.cache import CacheKey
from chroma_operator.router.collections import ResolvedCollection, reply_error
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import ChromaHTTPError
from chroma_operator.router.merge import empty_query, merge_query
from chroma_operator.router.query_modes import exact_query
from chroma_operator.router.record_routes import RecordRoutes, owned_query, shard_bodies
from chroma_operator.router.search_mode import HEADER as SEARCH_HEADER
from chroma_operator.router.search_mode import SearchMode, parse_search_mode
from chroma_operator.router.shards import ShardCallError
from chroma_operator.router.state import (
    COLL,
    State,
    auth_headers,
    json_response,
    partial_headers,
    passthrough,
)

QUERY_ROUTE = COLL + "/query"


class QueryCheck:
    """A query body's checks, run as a plain callback while its shard call is out."""

    def __init__(self, raw: bytes, dimension: int | None) -> None:
        self.raw = raw
        self.dimension = dimension
        self._checked: tuple[dict[str, Any], v.QueryRequest] | None = None
        self._error: ChromaHTTPError | None = None

    def run(self) -> None:
        if self._checked is not None or self._error is not None:
            return
        try:
            body = v.parse_object(self.raw)
            req = v.query_request(body)
            v.check_dimension(self.dimension, req.dim)
        except ChromaHTTPError as exc:
            self._error = exc
        else:
            self._checked = body, req

    def result(self) -> tuple[dict[str, Any], v.QueryRequest]:
        """The parsed body and request (checked now if the callback has not run yet)."""
        self.run()
        if self._error is not None:
            raise self._error
        assert self._checked is not None
        return self._checked


class QueryRoutes:
    def __init__(self, core: RouterCore, records: RecordRoutes) -> None:
        self.core = core
        self.records = records  # collection lookup and per-shard posts, shared
        self._mode_counters: dict[str, Any] = {}

    def _mode_counter(self, mode: SearchMode) -> Any:
        """The search-mode counter's child for `mode`, looked up once."""
        found = self._mode_counters.get(mode.kind)
        if found is None:
            found = self._mode_counters[mode.kind] = self.core.metrics.search_modes.labels(
                mode.kind
            )
        return found

    def _cache_key(
        self,
        request: Request,
        st: State,
        client_id: str,
        raw: bytes,
        mode: SearchMode,
        generation: int,
    ) -> CacheKey | None:
        """The request's bytes as the client sent them, hashed with where and who asked,
        under the collection's write generation when the request came in.

        Not a canonical re-encoding: the same query from one client is the same bytes,
        and a different key order only costs a miss, not a wrong answer.
        """
        if not st.cache.enabled:
            return None
        p = request.path_params
        # Credentials are part of the key: a cached answer is never served to a caller
        # the shards would have refused. So is the search mode.
        h = hashlib.blake2b(digest_size=16)
        h.update(orjson.dumps([p["tenant"], p["database"], auth_headers(request), mode.cache_tag]))
        h.update(raw)
        return st.cache.key(client_id, h.digest(), generation)

    async def query_records(self, request: Request, st: State) -> Response:
        client_id = v.check_collection_id(request.path_params["collection_id"])
        mode = parse_search_mode(request.headers.get(SEARCH_HEADER))
        raw = await request.body()
        generation = st.cache.generation(client_id)
        self._mode_counter(mode).inc()

        @functools.cache
        def cache_key() -> CacheKey | None:
            """Made once, when first needed: at the lookup, or only when the answer is stored."""
            return self._cache_key(request, st, client_id, raw, mode, generation)

        if st.cache.enabled and "no-cache" not in request.headers.get("cache-control", "").lower():
            key = cache_key()
            hit = st.cache.get(key) if key is not None else None
            if hit is not None:
                self.core.metrics.cache_hits.inc()
                return Response(hit, 200, {"X-Chroma-Cache": "hit"}, "application/json")
            self.core.metrics.cache_misses.inc()
        headers = auth_headers(request)
        coll = await self.records.resolve(request, st, headers=headers)
        routing = st.routing
        if routing.read_shards == 1 and not routing.polluted and mode.kind == "approximate":
            return await self._forward_query(st, coll, raw, cache_key, headers)
        body = v.parse_object(raw)
        req = v.query_request(body)
        v.check_dimension(coll.dimension, req.dim)
        if req.n_results == 0 or not req.embeddings:
            return json_response(empty_query(len(req.embeddings), req.include))

        async def sample_exact() -> dict[str, Any]:
            return await self._sample_exact(st, coll, body, req, headers)

        if mode.kind == "exact":
            payload = orjson.dumps(await exact_query(self.core, st, coll, body, req, headers))
            if (key := cache_key()) is not None:
                st.cache.put(key, payload)
            return Response(payload, 200, media_type="application/json")
        shard_include = sorted(set(req.include) | {"distances"})
        base = {**body, "n_results": mode.shard_k(req.n_results), "include": shard_include}
        parts = shard_bodies(routing, base, req.ids)
        if not parts:
            return json_response(empty_query(len(req.embeddings), req.include))
        replies, failed = await self.records.post_each(st, coll, "/query", parts, headers)
        merged = merge_query(
            [owned_query(routing, s, replies[s].json()) for s in sorted(replies)],
            len(req.embeddings),
            req.n_results,
            req.include,
        )
        payload = orjson.dumps(merged)
        if not failed:
            if (key := cache_key()) is not None:
                st.cache.put(key, payload)
            st.recall.maybe_sample(coll.name, req.n_results, lambda: merged["ids"], sample_exact)
        return Response(payload, 200, partial_headers(failed), "application/json")

    async def _sample_exact(
        self,
        st: State,
        coll: ResolvedCollection,
        body: dict[str, Any],
        req: v.QueryRequest,
        headers: dict[str, str],
    ) -> dict[str, Any]:
        """A recall sample's exact answer: ids only, so the cached vectors can answer it."""
        ids_only = dataclasses.replace(req, include=[])
        return await exact_query(self.core, st, coll, body, ids_only, headers, sample=True)

    async def _forward_query(
        self,
        st: State,
        coll: ResolvedCollection,
        raw: bytes,
        cache_key: Callable[[], CacheKey | None],
        headers: dict[str, str],
    ) -> Response:
        """One shard: its answer is already the merged answer, so the client's bytes go
        to it as they came and its bytes come back.

        The request is on its way before the router parses and checks it: the shard
        searches while the router works, instead of after. A request the checks refuse
        gets the same error as ever (whatever the shard made of it: a query changes
        nothing). The cache fill (its key made then, when the request did not look the
        cache up) and the recall sample run once the answer is sent.
        """
        check = QueryCheck(raw, coll.dimension)
        asyncio.get_running_loop().call_soon(check.run)  # runs once the request is out
        try:
            reply = await st.pool.read(
                0, "POST", lambda ep: coll.path(ep, "/query"), content=raw, headers=headers
            )
        except ShardCallError:
            check.result()  # a malformed request gets its own error, not the shard's
            raise
        body, req = check.result()
        if req.n_results == 0 or not req.embeddings:
            return json_response(empty_query(len(req.embeddings), req.include))
        if not reply.ok:
            raise reply_error(reply)

        async def sample_exact() -> dict[str, Any]:
            return await self._sample_exact(st, coll, body, req, headers)

        async def after() -> None:
            if (key := cache_key()) is not None:
                st.cache.put(key, reply.body)
            st.recall.maybe_sample(
                coll.name, req.n_results, lambda: orjson.loads(reply.body)["ids"], sample_exact
            )

        response = passthrough(reply)  # the shard's bytes and its trace id
        response.background = BackgroundTask(after)
        return response

    def routes(self) -> list[Route]:
        return [self.core.route(QUERY_ROUTE, self.query_records, ["POST"])]
