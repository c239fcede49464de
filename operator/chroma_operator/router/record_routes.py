"""Record routes: add, upsert, update, delete, get, count (query: `query_routes`).

Writes go to the shard that owns each id (jump hash) -- during a move, to its owner under
both placements; reads without ids fan out to every shard of the read placement, drop
copies a shard does not own, and merge as one node would answer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.router import validate as v
from chroma_operator.router.collections import ResolvedCollection, reply_error
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import ChromaHTTPError, shard_unavailable
from chroma_operator.router.fanout import gather
from chroma_operator.router.merge import (
    keep_get_rows,
    keep_query_rows,
    merge_get,
)
from chroma_operator.router.placement import Routing, pick
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
    routing: Routing, base: dict[str, Any], ids: list[str] | None
) -> dict[int, dict[str, Any]]:
    """A read's body per shard: by ids, only the owners (with their ids); else all.

    A shard that may hold copies it does not own is asked without a limit, so that after
    its copies are dropped it still contributes every row the merge could need.
    """
    if ids is None:
        unlimited = {**base, "limit": None} if "limit" in base else base
        return {s: unlimited if s in routing.polluted else base for s in range(routing.read_shards)}
    return {s: {**base, "ids": pick(ids, pos)} for s, pos in routing.read_partition(ids).items()}


def owned_get(routing: Routing, shard: int, resp: dict[str, Any]) -> dict[str, Any]:
    keep = routing.owned(shard, resp["ids"])
    return resp if keep is None else keep_get_rows(resp, keep)


def owned_query(routing: Routing, shard: int, resp: dict[str, Any]) -> dict[str, Any]:
    if shard not in routing.polluted:
        return resp
    keep = [routing.owned(shard, ids) or [] for ids in resp["ids"]]
    return keep_query_rows(resp, keep)


def deleted_count(routing: Routing, results: dict[int, list[Reply]], ids: list[str] | None) -> int:
    """Records deleted as a client counts them: once each, by their read owner.

    During a move a delete reaches a record's copy too; shards outside the read
    placement are not counted, and a shard that also held copies counts at most the ids
    it owns.
    """
    total = 0
    owned = routing.read_partition(ids) if ids is not None else {}
    for s, replies in results.items():
        if not replies or s >= routing.read_shards:
            continue
        n = int((replies[0].json() or {}).get("deleted", 0))
        if s in routing.polluted and ids is not None:
            n = min(n, len(owned.get(s, [])))
        total += n
    return total


class RecordRoutes:
    def __init__(self, core: RouterCore) -> None:
        self.core = core

    async def resolve(
        self,
        request: Request,
        st: State,
        need_dimension: bool = False,
        headers: dict[str, str] | None = None,
    ) -> ResolvedCollection:
        p = request.path_params
        client_id = v.check_collection_id(p["collection_id"])
        if headers is None:
            headers = auth_headers(request)
        return await st.collections.resolve(
            p["tenant"], p["database"], client_id, headers, need_dimension
        )

    async def _write_parts(
        self,
        st: State,
        coll: ResolvedCollection,
        suffix: str,
        parts: dict[int, bytes],
        headers: dict[str, str],
        ids: dict[int, list[str]] | None,
    ) -> dict[int, list[Reply]]:
        """Each owning shard takes its part (`ids`: the records of each part, None when a
        filter picks them); the cache forgets the collection either way."""
        sends: dict[int, Awaitable[list[Reply]]] = {
            s: st.pool.write(
                s,
                "POST",
                lambda ep: coll.path(ep, suffix),
                content=content,
                headers=headers,
                where=(coll.tenant, coll.database, coll.name, suffix),
                ids=None if ids is None else ids[s],
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
        raw = await request.body()
        body = v.parse_object(raw)
        headers = auth_headers(request)
        checks = await self.core.preflight(st, headers)
        batch = v.record_batch(body, kind, int(checks.get("max_batch_size", -1)))
        coll = await self.resolve(request, st, need_dimension=batch.dim is not None)
        v.check_dimension(coll.dimension, batch.dim)
        owners = st.routing.write_partition(batch.ids)
        parts: dict[int, bytes] = {}
        part_ids: dict[int, list[str]] = {}
        if len(owners) == 1:
            # One shard owns the whole batch (always so with one shard): the checked body
            # goes on as the client sent it, not decoded and encoded again.
            shard = next(iter(owners))
            parts[shard], part_ids[shard] = raw, batch.ids
        for shard, positions in owners.items() if len(owners) > 1 else ():
            part_ids[shard] = pick(batch.ids, positions)
            part: dict[str, Any] = {"ids": part_ids[shard]}
            for col, values in batch.columns.items():
                part[col] = pick(values, positions)
            parts[shard] = orjson.dumps(part)
        await self._write_parts(st, coll, "/" + kind, parts, headers, part_ids)
        if batch.dim is not None and coll.dimension is None:
            coll.dimension = batch.dim
        return json_response({}, 201 if kind == "add" else 200)

    async def delete_records(self, request: Request, st: State) -> Response:
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        ids = v.delete_ids(body)
        coll = await self.resolve(request, st)
        headers = auth_headers(request)
        limit = body.get("limit")
        if ids is None and isinstance(limit, int) and st.pool.num_shards > 1:
            # A limit is global, as on one node: pick the first `limit` matches in the
            # cluster's read order, then delete exactly those ids.
            ids = await self._matching_ids(st, coll, body, limit, headers)
            body = {"ids": ids}
        part_ids: dict[int, list[str]] | None = None
        if ids is not None:
            part_ids = {s: pick(ids, pos) for s, pos in st.routing.write_partition(ids).items()}
            parts = {s: {**body, "ids": part} for s, part in part_ids.items()}
        else:
            parts = {s: body for s in range(st.pool.num_shards)}  # every shard that exists
        results = await self._write_parts(
            st, coll, "/delete", encode_parts(parts), headers, part_ids
        )
        deleted = deleted_count(st.routing, results, ids)
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
        parts = shard_bodies(st.routing, base, None)
        replies, _ = await self.post_each(st, coll, "/get", parts, headers, partial=False)
        answers = [owned_get(st.routing, s, replies[s].json()) for s in sorted(replies)]
        merged = merge_get(answers, 0, limit, [])
        return [str(i) for i in merged["ids"]]

    async def count_records(self, request: Request, st: State) -> Response:
        coll = await self.resolve(request, st)
        headers = auth_headers(request)
        params = dict(request.query_params)
        routing = st.routing
        # A shard holding copies it does not own is counted by ids (exact during a move).
        by_ids = orjson.dumps({"include": []})
        calls = {
            s: st.pool.read(
                s, "POST", lambda ep: coll.path(ep, "/get"), content=by_ids, headers=headers
            )
            if s in routing.polluted
            else st.pool.read(
                s, "GET", lambda ep: coll.path(ep, "/count"), params=params, headers=headers
            )
            for s in range(routing.read_shards)
        }
        replies, failed = await self.core.read_shards(st, calls)
        total = 0
        for s, r in replies.items():
            if s in routing.polluted:
                total += len(routing.owned(s, r.json()["ids"]) or [])
            else:
                total += int(r.json())
        return json_response(total, headers=partial_headers(failed))

    async def post_each(
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
        coll = await self.resolve(request, st)
        base = {
            **body,
            "offset": 0,
            "include": req.include,
            "limit": None if req.limit is None else req.offset + req.limit,
        }
        parts = shard_bodies(st.routing, base, req.ids)
        replies, failed = await self.post_each(st, coll, "/get", parts, auth_headers(request))
        merged = merge_get(
            [owned_get(st.routing, s, replies[s].json()) for s in sorted(replies)],
            req.offset,
            req.limit,
            req.include,
        )
        return json_response(merged, headers=partial_headers(failed))

    def routes(self) -> list[Route]:
        r = self.core.route
        return [
            r(COLL + "/get", self.get_records, ["POST"]),
            r(COLL + "/add", self.write_records, ["POST"]),
            r(COLL + "/upsert", self.write_records, ["POST"]),
            r(COLL + "/update", self.write_records, ["POST"]),
            r(COLL + "/delete", self.delete_records, ["POST"]),
            r(COLL + "/count", self.count_records, ["GET"]),
        ]
