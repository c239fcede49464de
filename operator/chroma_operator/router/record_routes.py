"""Record routes: add, upsert, update, delete, get, count, query.

Writes go to the shard that owns each id (jump hash); reads without ids fan out to every
shard and merge as one node would answer. The query cache lives here too: it is keyed
by collection, its write generation and the canonical request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.router import validate as v
from chroma_operator.router.cache import CacheKey
from chroma_operator.router.collections import ResolvedCollection, reply_error
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import ChromaHTTPError, shard_unavailable
from chroma_operator.router.fanout import gather
from chroma_operator.router.merge import empty_query, merge_get, merge_query
from chroma_operator.router.placement import partition, pick
from chroma_operator.router.shards import Reply
from chroma_operator.router.state import COLL, State, auth_headers, json_response, partial_headers


def encode_parts(parts: dict[int, dict[str, Any]]) -> dict[int, bytes]:
    """JSON per shard, encoding a body shared by several shards only once."""
    done: dict[int, bytes] = {}
    out: dict[int, bytes] = {}
    for shard, part in parts.items():
        if id(part) not in done:
            done[id(part)] = orjson.dumps(part)
        out[shard] = done[id(part)]
    return out


def shard_bodies(
    num_shards: int, base: dict[str, Any], ids: list[str] | None
) -> dict[int, dict[str, Any]]:
    """A request's body per shard: by ids, only the owners (with their ids); else all."""
    if ids is None:
        return {s: base for s in range(num_shards)}
    return {s: {**base, "ids": pick(ids, pos)} for s, pos in partition(ids, num_shards).items()}


class RecordRoutes:
    def __init__(self, core: RouterCore) -> None:
        self.core = core

    async def _resolve(
        self, request: Request, st: State, need_dimension: bool = False
    ) -> ResolvedCollection:
        p = request.path_params
        client_id = v.check_collection_id(p["collection_id"])
        return await st.collections.resolve(
            p["tenant"], p["database"], client_id, auth_headers(request), need_dimension
        )

    async def _write_parts(
        self,
        st: State,
        coll: ResolvedCollection,
        suffix: str,
        parts: dict[int, bytes],
        headers: dict[str, str],
    ) -> dict[int, list[Reply]]:
        """Each owning shard takes its part; the cache forgets the collection either way."""
        sends: dict[int, Awaitable[list[Reply]]] = {
            s: st.pool.write(
                s,
                "POST",
                lambda ep: coll.path(ep, suffix),
                content=content,
                headers=headers,
                where=(coll.tenant, coll.database, coll.name, suffix),
            )
            for s, content in parts.items()
        }
        try:
            results, failed = await gather(sends)
        finally:
            if sends:
                await self.core.invalidate(st, coll)
        failures: list[ChromaHTTPError] = [
            shard_unavailable(e.shard, e.endpoint, e.reason) for _, e in sorted(failed.items())
        ]
        for shard in sorted(results):
            failures.extend(reply_error(x, f"shard {shard}: ") for x in results[shard] if not x.ok)
        if failures:
            err = failures[0]
            if len(failures) < len(sends):
                err.message += (
                    "; the other shards accepted their part, and retrying the same "
                    "request converges"
                )
            raise err
        return results

    async def write_records(self, request: Request, st: State) -> Response:
        kind = request.url.path.rsplit("/", 1)[1]
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        headers = auth_headers(request)
        checks = await self.core.preflight(st, headers)
        batch = v.record_batch(body, kind, int(checks.get("max_batch_size", -1)))
        coll = await self._resolve(request, st, need_dimension=batch.dim is not None)
        v.check_dimension(coll.dimension, batch.dim)
        parts: dict[int, bytes] = {}
        for shard, positions in partition(batch.ids, st.pool.num_shards).items():
            part: dict[str, Any] = {"ids": pick(batch.ids, positions)}
            for col, values in batch.columns.items():
                part[col] = pick(values, positions)
            parts[shard] = orjson.dumps(part)
        await self._write_parts(st, coll, "/" + kind, parts, headers)
        if batch.dim is not None and coll.dimension is None:
            coll.dimension = batch.dim
        return json_response({}, 201 if kind == "add" else 200)

    async def delete_records(self, request: Request, st: State) -> Response:
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        ids = v.delete_ids(body)
        coll = await self._resolve(request, st)
        headers = auth_headers(request)
        limit = body.get("limit")
        if ids is None and isinstance(limit, int) and st.pool.num_shards > 1:
            # A limit is global, as on one node: pick the first `limit` matches in the
            # cluster's read order, then delete exactly those ids.
            ids = await self._matching_ids(st, coll, body, limit, headers)
            body = {"ids": ids}
        if ids is not None:
            parts = {
                s: {**body, "ids": pick(ids, pos)}
                for s, pos in partition(ids, st.pool.num_shards).items()
            }
        else:
            parts = {s: body for s in range(st.pool.num_shards)}
        results = await self._write_parts(st, coll, "/delete", encode_parts(parts), headers)
        deleted = sum(int((r[0].json() or {}).get("deleted", 0)) for r in results.values() if r)
        return json_response({"deleted": deleted})

    async def _matching_ids(
        self,
        st: State,
        coll: ResolvedCollection,
        body: dict[str, Any],
        limit: int,
        headers: dict[str, str],
    ) -> list[str]:
        query = {k: body[k] for k in ("where", "where_document") if body.get(k) is not None}
        base = {**query, "limit": limit, "offset": 0, "include": []}
        parts = shard_bodies(st.pool.num_shards, base, None)
        replies, _ = await self._post_each(st, coll, "/get", parts, headers, partial=False)
        merged = merge_get([replies[s].json() for s in sorted(replies)], 0, limit, [])
        return [str(i) for i in merged["ids"]]

    async def count_records(self, request: Request, st: State) -> Response:
        coll = await self._resolve(request, st)
        headers = auth_headers(request)
        params = dict(request.query_params)
        calls = {
            s: st.pool.read(
                s, "GET", lambda ep: coll.path(ep, "/count"), params=params, headers=headers
            )
            for s in range(st.pool.num_shards)
        }
        replies, failed = await self.core.read_shards(st, calls)
        total = sum(int(r.json()) for r in replies.values())
        return json_response(total, headers=partial_headers(failed))

    async def _post_each(
        self,
        st: State,
        coll: ResolvedCollection,
        suffix: str,
        parts: dict[int, dict[str, Any]],
        headers: dict[str, str],
        partial: bool | None = None,
    ) -> tuple[dict[int, Reply], list[int]]:
        """POST each shard its body at the collection's `suffix`, in parallel (a read)."""
        calls = {
            s: st.pool.read(
                s, "POST", lambda ep: coll.path(ep, suffix), content=content, headers=headers
            )
            for s, content in encode_parts(parts).items()
        }
        return await self.core.read_shards(st, calls, partial)

    async def get_records(self, request: Request, st: State) -> Response:
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        req = v.get_request(body)
        coll = await self._resolve(request, st)
        base = {
            **body,
            "offset": 0,
            "include": req.include,
            "limit": None if req.limit is None else req.offset + req.limit,
        }
        parts = shard_bodies(st.pool.num_shards, base, req.ids)
        replies, failed = await self._post_each(st, coll, "/get", parts, auth_headers(request))
        merged = merge_get(
            [replies[s].json() for s in sorted(replies)], req.offset, req.limit, req.include
        )
        return json_response(merged, headers=partial_headers(failed))

    def _cache_key(
        self, request: Request, st: State, client_id: str, body: dict[str, Any]
    ) -> CacheKey | None:
        if not st.cache.enabled:
            return None
        p = request.path_params
        # Credentials are part of the key: a cached answer is never served to a caller
        # the shards would have refused.
        canonical = orjson.dumps(
            [p["tenant"], p["database"], auth_headers(request), body],
            option=orjson.OPT_SORT_KEYS,
        )
        digest = hashlib.blake2b(canonical, digest_size=16).digest()
        return st.cache.key(client_id, digest)

    async def query_records(self, request: Request, st: State) -> Response:
        client_id = v.check_collection_id(request.path_params["collection_id"])
        raw = await request.body()
        body = v.parse_object(raw)
        req = v.query_request(body)
        key = self._cache_key(request, st, client_id, body)
        if key is not None and "no-cache" not in request.headers.get("cache-control", "").lower():
            hit = st.cache.get(key)
            if hit is not None:
                self.core.metrics.cache_hits.inc()
                return Response(hit, 200, {"X-Chroma-Cache": "hit"}, "application/json")
            self.core.metrics.cache_misses.inc()
        coll = await self._resolve(request, st)
        v.check_dimension(coll.dimension, req.dim)
        if req.n_results == 0 or not req.embeddings:
            return json_response(empty_query(len(req.embeddings), req.include))
        headers = auth_headers(request)
        if st.pool.num_shards == 1 and req.ids is None:
            # One shard: its answer is already the merged answer; forward the bytes.
            reply = await st.pool.read(
                0, "POST", lambda ep: coll.path(ep, "/query"), content=raw, headers=headers
            )
            if not reply.ok:
                raise reply_error(reply)
            if key is not None:
                st.cache.put(key, reply.body)
            return Response(reply.body, 200, media_type="application/json")
        shard_include = sorted(set(req.include) | {"distances"})
        base = {**body, "n_results": req.n_results, "include": shard_include}
        parts = shard_bodies(st.pool.num_shards, base, req.ids)
        if not parts:
            return json_response(empty_query(len(req.embeddings), req.include))
        replies, failed = await self._post_each(st, coll, "/query", parts, headers)
        merged = merge_query(
            [replies[s].json() for s in sorted(replies)],
            len(req.embeddings),
            req.n_results,
            req.include,
        )
        payload = orjson.dumps(merged)
        if key is not None and not failed:
            st.cache.put(key, payload)
        return Response(payload, 200, partial_headers(failed), "application/json")

    def routes(self) -> list[Route]:
        r = self.core.route
        return [
            r(COLL + "/query", self.query_records, ["POST"]),
            r(COLL + "/get", self.get_records, ["POST"]),
            r(COLL + "/add", self.write_records, ["POST"]),
            r(COLL + "/upsert", self.write_records, ["POST"]),
            r(COLL + "/update", self.write_records, ["POST"]),
            r(COLL + "/delete", self.delete_records, ["POST"]),
            r(COLL + "/count", self.count_records, ["GET"]),
        ]
