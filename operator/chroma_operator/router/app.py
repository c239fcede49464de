"""The router's ASGI app: Chroma's HTTP API v2 over N shards.

`create_app(topology_or_path)` builds a Starlette app. Each request takes one snapshot of
the router state (topology, shard pool, collection map, cache), so a topology reload in
the middle of a request never mixes two shard sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.router import validate as v
from chroma_operator.router.cache import QueryCache
from chroma_operator.router.collections import (
    CollectionMap,
    ResolvedCollection,
    db_path,
    max_dimension,
    reply_error,
)
from chroma_operator.router.errors import (
    ChromaHTTPError,
    deserialize_error,
    error_response,
    shard_unavailable,
)
from chroma_operator.router.merge import empty_query, merge_get, merge_query
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.placement import partition, pick
from chroma_operator.router.shards import Reply, ShardCallError, ShardPool
from chroma_operator.router.topology_source import TopologySource
from chroma_operator.topology import Topology

log = logging.getLogger("chroma_operator.router")

API = "/api/v2"
DB = API + "/tenants/{tenant}/databases/{database}"
COLL = DB + "/collections/{collection_id}"
PARTIAL_HEADER = "X-Chroma-Partial-Shards"
PASS_HEADERS = ("authorization", "x-chroma-token")
OLD_POOL_GRACE_S = 30.0
DEFAULT_EF_SPACE = "l2"  # DefaultEmbeddingFunction.default_space() in chromadb 1.5.9

Handler = Callable[[Request, "State"], Awaitable[Response]]


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(obj), status, dict(headers or {}), "application/json")


def passthrough(reply: Reply) -> Response:
    return Response(reply.body, reply.status, media_type="application/json")


def auth_headers(request: Request) -> dict[str, str]:
    """Credentials travel to the shards unchanged: the shards do the auth."""
    return {h: request.headers[h] for h in PASS_HEADERS if h in request.headers}


@dataclass
class State:
    """Everything that depends on one topology."""

    topology: Topology
    pool: ShardPool
    collections: CollectionMap
    cache: QueryCache
    preflight: dict[str, Any] | None = None

    @property
    def partial_ok(self) -> bool:
        return self.topology.router.partial_results


class Router:
    """The handlers, the shared metrics and the topology watcher of one router process."""

    def __init__(self, source: TopologySource, reload_interval: float = 1.0) -> None:
        self.source = source
        self.reload_interval = reload_interval
        self.metrics = RouterMetrics(source.current.slo.latency_thresholds_ms)
        self.state = self._make_state(source.current)
        # Short: a write waits for its peers' invalidations, and a vanished peer must not
        # stall every write (its cache is bounded by the TTL anyway).
        self.peer_client = httpx.AsyncClient(timeout=httpx.Timeout(1.0, connect=0.5))
        self._old_pools: list[ShardPool] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _make_state(self, topology: Topology) -> State:
        pool = ShardPool(topology, self.metrics)
        c = topology.router.cache
        cache = QueryCache(c.max_entries, c.ttl_seconds, c.enabled)
        return State(topology, pool, CollectionMap(pool), cache)

    # --- lifecycle -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self._watch()) if self.source.path is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.state.pool.aclose()
            for pool in self._old_pools:
                await pool.aclose()
            await self.peer_client.aclose()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                topology = self.source.poll()
            except Exception as exc:
                self.metrics.topology_reloads.labels("error").inc()
                log.warning("topology reload failed, keeping the last good one: %s", exc)
                continue
            if topology is None:
                continue
            old = self.state.pool
            self.state = self._make_state(topology)
            self.metrics.topology_reloads.labels("ok").inc()
            log.info("topology reloaded: %d shards", len(topology.shards))
            self._old_pools.append(old)
            task = asyncio.create_task(self._retire(old))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _retire(self, pool: ShardPool) -> None:
        """Close a replaced pool once the requests that started on it are done."""
        await asyncio.sleep(OLD_POOL_GRACE_S)
        if pool in self._old_pools:
            self._old_pools.remove(pool)
            await pool.aclose()

    # --- plumbing -------------------------------------------------------------------

    def route(self, template: str, handler: Handler, methods: list[str]) -> Route:
        """A route whose handler is timed and counted under its template, errors shaped."""

        async def endpoint(request: Request) -> Response:
            st = self.state
            self.metrics.in_flight.inc()
            start = time.perf_counter()
            try:
                response = await handler(request, st)
            except ChromaHTTPError as exc:
                response = exc.response()
            except ShardCallError as exc:
                response = shard_unavailable(exc.shard, exc.endpoint, exc.reason).response()
            except Exception as exc:  # the client still gets Chroma's shape
                log.exception("unhandled error on %s", template)
                response = error_response(500, "InternalError", f"{type(exc).__name__}: {exc}")
            finally:
                self.metrics.in_flight.dec()
            status = str(response.status_code)
            elapsed = time.perf_counter() - start
            response.headers["Server-Timing"] = f"router;dur={elapsed * 1000:.3f}"
            self.metrics.requests.labels(template, request.method, status).inc()
            self.metrics.latency.labels(template, request.method, status).observe(elapsed)
            return response

        return Route(template, endpoint, methods=methods)

    async def fan_out(
        self, st: State, calls: Mapping[int, Awaitable[Reply]], partial: bool | None = None
    ) -> tuple[dict[int, Reply], list[int]]:
        """Run per-shard reads in parallel; shard failures become 503 or a partial answer."""
        shards = list(calls)
        results = await asyncio.gather(*calls.values(), return_exceptions=True)
        replies: dict[int, Reply] = {}
        failed: list[ShardCallError] = []
        for shard, r in zip(shards, results, strict=True):
            if isinstance(r, ShardCallError):
                failed.append(r)
            elif isinstance(r, BaseException):
                raise r
            else:
                replies[shard] = r
        allow_partial = st.partial_ok if partial is None else partial
        if failed and (not allow_partial or not replies):
            first = failed[0]
            raise shard_unavailable(first.shard, first.endpoint, first.reason)
        for reply in replies.values():
            if not reply.ok:
                raise reply_error(reply)
        return replies, sorted(e.shard for e in failed)

    @staticmethod
    def encode_parts(parts: Mapping[int, dict[str, Any]]) -> dict[int, bytes]:
        """JSON per shard, encoding a body shared by several shards only once."""
        done: dict[int, bytes] = {}
        out: dict[int, bytes] = {}
        for shard, part in parts.items():
            if id(part) not in done:
                done[id(part)] = orjson.dumps(part)
            out[shard] = done[id(part)]
        return out

    @staticmethod
    def partial_headers(failed: list[int]) -> dict[str, str]:
        return {PARTIAL_HEADER: ",".join(map(str, failed))} if failed else {}

    async def on_every_replica(
        self, st: State, method: str, path: str, content: bytes | None, headers: Mapping[str, str]
    ) -> list[Reply]:
        """Send the same request to every replica of every shard (tenants, databases)."""
        targets = st.pool.all_endpoints()
        results = await asyncio.gather(
            *(
                st.pool.call(s, ep, method, path, content=content, headers=headers)
                for s, ep in targets
            ),
            return_exceptions=True,
        )
        replies = []
        for r in results:
            if isinstance(r, ShardCallError):
                raise shard_unavailable(r.shard, r.endpoint, r.reason)
            if isinstance(r, BaseException):
                raise r
            replies.append(r)
        return replies

    @staticmethod
    def converged(replies: list[Reply]) -> Response:
        """One answer for a create sent everywhere: created anywhere counts as created.

        A retry after a partial failure finds "already exists" on the replicas that
        took the first attempt; the result is still one object everywhere.
        """
        errors = [r for r in replies if not r.ok and r.status != 409]
        if errors:
            raise reply_error(errors[0], f"shard {errors[0].shard}: ")
        ok = [r for r in replies if r.ok]
        return passthrough(ok[0] if ok else replies[0])

    async def invalidate(self, st: State, coll: ResolvedCollection, forget: bool = False) -> None:
        """Bump the collection's generation here and tell every peer router."""
        st.cache.invalidate(coll.client_id)
        self.metrics.cache_invalidations.labels("local").inc()
        if forget:
            st.collections.forget(coll.tenant, coll.database, coll.client_id)
        peers = st.topology.router.peers
        if not peers:
            return
        body = orjson.dumps(
            {
                "tenant": coll.tenant,
                "database": coll.database,
                "collection_id": coll.client_id,
                "forget": forget,
            }
        )
        results = await asyncio.gather(
            *(
                self.peer_client.post(
                    p.rstrip("/") + "/internal/invalidate",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                for p in peers
            ),
            return_exceptions=True,
        )
        for peer, r in zip(peers, results, strict=True):
            if isinstance(r, BaseException):
                log.warning("could not tell peer %s to invalidate: %s", peer, r)

    async def preflight(self, st: State, headers: Mapping[str, str]) -> dict[str, Any]:
        """The shards' pre-flight checks combined: the smallest batch, base64 if all can."""
        if st.preflight is None:
            calls = {
                s: st.pool.read(s, "GET", lambda ep: "/pre-flight-checks", headers=headers)
                for s in range(st.pool.num_shards)
            }
            replies, _ = await self.fan_out(st, calls, partial=False)
            checks = [r.json() for r in replies.values()]
            sizes = [int(c.get("max_batch_size", -1)) for c in checks]
            sizes = [n for n in sizes if n > 0]
            merged = dict(checks[0])
            merged["max_batch_size"] = min(sizes) if sizes else -1
            merged["supports_base64_encoding"] = all(
                bool(c.get("supports_base64_encoding", False)) for c in checks
            )
            st.preflight = merged
        return st.preflight

    # --- server-level -----------------------------------------------------------------

    async def heartbeat(self, request: Request, st: State) -> Response:
        return json_response({"nanosecond heartbeat": time.time_ns()})

    async def shard0_read(self, request: Request, st: State) -> Response:
        """Reads every shard answers the same (version, identity, tenants): ask shard 0."""
        path = request.url.path.removeprefix(API)
        reply = await st.pool.read(
            0,
            "GET",
            lambda ep: path,
            params=dict(request.query_params),
            headers=auth_headers(request),
        )
        return passthrough(reply)

    async def preflight_checks(self, request: Request, st: State) -> Response:
        return json_response(await self.preflight(st, auth_headers(request)))

    async def everywhere_create(self, request: Request, st: State) -> Response:
        """Tenants and databases exist on every replica of every shard."""
        raw = await request.body()
        v.parse_json(raw)
        path = request.url.path.removeprefix(API)
        replies = await self.on_every_replica(st, "POST", path, raw, auth_headers(request))
        return self.converged(replies)

    async def delete_database(self, request: Request, st: State) -> Response:
        path = request.url.path.removeprefix(API)
        replies = await self.on_every_replica(st, "DELETE", path, None, auth_headers(request))
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        st.collections.forget_database(tenant, database)
        bad = [r for r in replies if not r.ok and r.status != 404]
        if bad:
            raise reply_error(bad[0], f"shard {bad[0].shard}: ")
        ok = [r for r in replies if r.ok]
        return passthrough(ok[0] if ok else replies[0])

    async def reset(self, request: Request, st: State) -> Response:
        replies = await self.on_every_replica(st, "POST", "/reset", None, auth_headers(request))
        st.collections.forget_all()
        c = st.topology.router.cache
        st.cache = QueryCache(c.max_entries, c.ttl_seconds, c.enabled)
        bad = [r for r in replies if not r.ok]
        return passthrough(bad[0] if bad else replies[0])

    # --- collections ------------------------------------------------------------------

    def with_defaults(self, st: State, body: dict[str, Any]) -> dict[str, Any]:
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
                # The stock client fills in its default embedder's space when its user
                # gave no HNSW settings at all: that is not a choice, the cluster's wins.
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

    async def create_collection(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        body = v.parse_object(await request.body())
        if not isinstance(body.get("name"), str):
            raise deserialize_error("missing field `name`")
        body = self.with_defaults(st, body)
        headers = auth_headers(request)
        path = f"{db_path(tenant, database)}/collections"
        primary = st.pool.primary
        try:
            first = await st.pool.call(
                0, primary, "POST", path, content=orjson.dumps(body), headers=headers
            )
        except ShardCallError as exc:
            raise shard_unavailable(0, primary, exc.reason) from exc
        if not first.ok and first.status != 409:
            return passthrough(first)
        # The rest with get_or_create, so a retry after a partial failure converges.
        rest = orjson.dumps({**body, "get_or_create": True})
        targets = [(s, ep) for s, ep in st.pool.all_endpoints() if ep != primary]
        results = await asyncio.gather(
            *(
                st.pool.call(s, ep, "POST", path, content=rest, headers=headers)
                for s, ep in targets
            ),
            return_exceptions=True,
        )
        models: dict[str, dict[str, Any]] = {}
        for (s, ep), r in zip(targets, results, strict=True):
            if isinstance(r, ShardCallError):
                raise shard_unavailable(s, ep, r.reason)
            if isinstance(r, BaseException):
                raise r
            if not r.ok:
                raise reply_error(r, f"shard {s}: ")
            models[ep] = r.json()
        if not first.ok:
            return passthrough(first)
        model = first.json()
        models[primary] = model
        st.collections.learn(tenant, database, str(model["name"]), models)
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
        path = request.url.path.removeprefix(API)
        headers = auth_headers(request)
        try:
            reply = await st.pool.call(0, st.pool.primary, "GET", path, headers=headers)
        except ShardCallError as exc:
            raise shard_unavailable(0, exc.endpoint, exc.reason) from exc
        if not reply.ok:
            return passthrough(reply)
        model = await self._fill_dimension(st, tenant, database, reply.json(), headers)
        return json_response(model)

    async def list_collections(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        path = request.url.path.removeprefix(API)
        headers = auth_headers(request)
        try:
            reply = await st.pool.call(
                0, st.pool.primary, "GET", path, params=dict(request.query_params), headers=headers
            )
        except ShardCallError as exc:
            raise shard_unavailable(0, exc.endpoint, exc.reason) from exc
        if not reply.ok:
            return passthrough(reply)
        models = await asyncio.gather(
            *(self._fill_dimension(st, tenant, database, m, headers) for m in reply.json())
        )
        return json_response(list(models))

    async def collections_count(self, request: Request, st: State) -> Response:
        path = request.url.path.removeprefix(API)
        try:
            reply = await st.pool.call(
                0, st.pool.primary, "GET", path, headers=auth_headers(request)
            )
        except ShardCallError as exc:
            raise shard_unavailable(0, exc.endpoint, exc.reason) from exc
        return passthrough(reply)

    async def modify_collection(self, request: Request, st: State) -> Response:
        coll = await self._resolve(request, st)
        raw = await request.body()
        body = v.parse_object(raw)
        headers = auth_headers(request)
        calls = [
            st.pool.write(s, "PUT", lambda ep: coll.path(ep), content=raw, headers=headers)
            for s in range(st.pool.num_shards)
        ]
        try:
            results = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await self.invalidate(st, coll)
        first_ok: Reply | None = None
        for r in results:
            if isinstance(r, ShardCallError):
                raise shard_unavailable(r.shard, r.endpoint, r.reason)
            if isinstance(r, BaseException):
                raise r
            for reply in r:
                if not reply.ok:
                    raise reply_error(reply, f"shard {reply.shard}: " if reply.shard else "")
                first_ok = first_ok or reply
        if isinstance(body.get("new_name"), str):
            coll.name = body["new_name"]
        assert first_ok is not None
        return passthrough(first_ok)

    async def delete_collection(self, request: Request, st: State) -> Response:
        tenant, database = request.path_params["tenant"], request.path_params["database"]
        name = request.path_params["collection_id"]
        path = request.url.path.removeprefix(API)
        headers = auth_headers(request)
        primary = st.pool.primary
        try:
            model_reply = await st.pool.call(0, primary, "GET", path, headers=headers)
            first = await st.pool.call(0, primary, "DELETE", path, headers=headers)
        except ShardCallError as exc:
            raise shard_unavailable(0, primary, exc.reason) from exc
        if not first.ok:
            return passthrough(first)
        targets = [(s, ep) for s, ep in st.pool.all_endpoints() if ep != primary]
        results = await asyncio.gather(
            *(st.pool.call(s, ep, "DELETE", path, headers=headers) for s, ep in targets),
            return_exceptions=True,
        )
        if model_reply.ok:
            client_id = str(model_reply.json()["id"])
            gone = ResolvedCollection(client_id, tenant, database, name)
            await self.invalidate(st, gone, forget=True)
        st.collections.forget_name(tenant, database, name)
        for (s, ep), r in zip(targets, results, strict=True):
            if isinstance(r, ShardCallError):
                raise shard_unavailable(s, ep, r.reason)
            if isinstance(r, BaseException):
                raise r
            if not r.ok and r.status != 404:
                raise reply_error(r, f"shard {s}: ")
        return passthrough(first)

    # --- records -------------------------------------------------------------------------

    async def _resolve(
        self, request: Request, st: State, need_dimension: bool = False
    ) -> ResolvedCollection:
        p = request.path_params
        client_id = v.check_collection_id(p["collection_id"])
        return await st.collections.resolve(
            p["tenant"], p["database"], client_id, auth_headers(request), need_dimension
        )

    async def write_records(self, request: Request, st: State) -> Response:
        kind = request.url.path.rsplit("/", 1)[1]
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        headers = auth_headers(request)
        checks = await self.preflight(st, headers)
        batch = v.record_batch(body, kind, int(checks.get("max_batch_size", -1)))
        coll = await self._resolve(request, st, need_dimension=batch.dim is not None)
        v.check_dimension(coll.dimension, batch.dim)
        groups = partition(batch.ids, st.pool.num_shards)
        sends: dict[int, Awaitable[list[Reply]]] = {}
        for shard, positions in groups.items():
            part: dict[str, Any] = {"ids": pick(batch.ids, positions)}
            for col, values in batch.columns.items():
                part[col] = pick(values, positions)
            sends[shard] = st.pool.write(
                shard,
                "POST",
                lambda ep: coll.path(ep, "/" + kind),
                content=orjson.dumps(part),
                headers=headers,
            )
        try:
            results = await asyncio.gather(*sends.values(), return_exceptions=True)
        finally:
            await self.invalidate(st, coll)
        failures: list[ChromaHTTPError] = []
        for shard, r in zip(sends, results, strict=True):
            if isinstance(r, ShardCallError):
                failures.append(shard_unavailable(r.shard, r.endpoint, r.reason))
            elif isinstance(r, BaseException):
                raise r
            else:
                failures.extend(reply_error(x, f"shard {shard}: ") for x in r if not x.ok)
        if failures:
            err = failures[0]
            if len(failures) < len(sends):
                err.message += (
                    "; the other shards accepted their part, and retrying the same "
                    "request converges"
                )
            raise err
        if batch.dim is not None and coll.dimension is None:
            coll.dimension = batch.dim
        return json_response({}, 201 if kind == "add" else 200)

    async def delete_records(self, request: Request, st: State) -> Response:
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        ids = v.delete_ids(body)
        coll = await self._resolve(request, st)
        headers = auth_headers(request)
        if ids is not None:
            parts = {
                s: {**body, "ids": pick(ids, pos)}
                for s, pos in partition(ids, st.pool.num_shards).items()
            }
        else:
            parts = {s: body for s in range(st.pool.num_shards)}
        sends = {
            s: st.pool.write(
                s, "POST", lambda ep: coll.path(ep, "/delete"), content=content, headers=headers
            )
            for s, content in self.encode_parts(parts).items()
        }
        try:
            results = await asyncio.gather(*sends.values(), return_exceptions=True)
        finally:
            if sends:
                await self.invalidate(st, coll)
        deleted = 0
        for shard, r in zip(sends, results, strict=True):
            if isinstance(r, ShardCallError):
                raise shard_unavailable(r.shard, r.endpoint, r.reason)
            if isinstance(r, BaseException):
                raise r
            for x in r:
                if not x.ok:
                    raise reply_error(x, f"shard {shard}: ")
            if r:
                deleted += int((r[0].json() or {}).get("deleted", 0))
        return json_response({"deleted": deleted})

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
        replies, failed = await self.fan_out(st, calls)
        total = sum(int(r.json()) for r in replies.values())
        return json_response(total, headers=self.partial_headers(failed))

    @staticmethod
    def shard_bodies(
        st: State, base: dict[str, Any], ids: list[str] | None
    ) -> dict[int, dict[str, Any]]:
        """A read's body per shard: by ids, only the owners (with their ids); else all."""
        if ids is None:
            return {s: base for s in range(st.pool.num_shards)}
        return {
            s: {**base, "ids": pick(ids, pos)}
            for s, pos in partition(ids, st.pool.num_shards).items()
        }

    async def post_each(
        self,
        st: State,
        coll: ResolvedCollection,
        suffix: str,
        parts: dict[int, dict[str, Any]],
        headers: dict[str, str],
    ) -> tuple[dict[int, Reply], list[int]]:
        """POST each shard its body at the collection's `suffix`, in parallel (a read)."""
        calls = {
            s: st.pool.read(
                s, "POST", lambda ep: coll.path(ep, suffix), content=content, headers=headers
            )
            for s, content in self.encode_parts(parts).items()
        }
        return await self.fan_out(st, calls)

    async def get_records(self, request: Request, st: State) -> Response:
        v.check_collection_id(request.path_params["collection_id"])
        body = v.parse_object(await request.body())
        req = v.get_request(body)
        coll = await self._resolve(request, st)
        headers = auth_headers(request)
        base = {
            **body,
            "offset": 0,
            "include": req.include,
            "limit": None if req.limit is None else req.offset + req.limit,
        }
        parts = self.shard_bodies(st, base, req.ids)
        replies, failed = await self.post_each(st, coll, "/get", parts, headers)
        merged = merge_get(
            [replies[s].json() for s in sorted(replies)], req.offset, req.limit, req.include
        )
        return json_response(merged, headers=self.partial_headers(failed))

    async def query_records(self, request: Request, st: State) -> Response:
        p = request.path_params
        client_id = v.check_collection_id(p["collection_id"])
        raw = await request.body()
        body = v.parse_object(raw)
        req = v.query_request(body)
        use_cache = (
            st.cache.enabled and "no-cache" not in request.headers.get("cache-control", "").lower()
        )
        key = None
        if st.cache.enabled:
            # Credentials are part of the key: a cached answer is never served to a
            # caller the shards would have refused.
            canonical = orjson.dumps(
                [p["tenant"], p["database"], auth_headers(request), body],
                option=orjson.OPT_SORT_KEYS,
            )
            key = st.cache.key(client_id, hashlib.blake2b(canonical, digest_size=16).digest())
            if use_cache:
                hit = st.cache.get(key)
                if hit is not None:
                    self.metrics.cache_hits.inc()
                    return Response(hit, 200, {"X-Chroma-Cache": "hit"}, "application/json")
                self.metrics.cache_misses.inc()
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
        parts = self.shard_bodies(st, base, req.ids)
        if not parts:
            return json_response(empty_query(len(req.embeddings), req.include))
        replies, failed = await self.post_each(st, coll, "/query", parts, headers)
        merged = merge_query(
            [replies[s].json() for s in sorted(replies)],
            len(req.embeddings),
            req.n_results,
            req.include,
        )
        payload = orjson.dumps(merged)
        if key is not None and not failed:
            st.cache.put(key, payload)
        return Response(payload, 200, self.partial_headers(failed), "application/json")

    # --- operations ---------------------------------------------------------------------

    async def internal_invalidate(self, request: Request, st: State) -> Response:
        """A peer router took a write: forget cached answers (and ids, on delete)."""
        body = v.parse_object(await request.body())
        client_id = str(body.get("collection_id", ""))
        st.cache.invalidate(client_id)
        self.metrics.cache_invalidations.labels("peer").inc()
        if body.get("forget"):
            st.collections.forget(str(body.get("tenant")), str(body.get("database")), client_id)
        return json_response({})

    async def internal_topology(self, request: Request, st: State) -> Response:
        """The topology this router serves: backups read it to find each shard's replicas."""
        return Response(st.topology.to_json(), 200, media_type="application/json")

    async def healthz(self, request: Request, st: State) -> Response:
        return json_response(
            {"status": "ok", "cluster": st.topology.cluster, "shards": st.pool.num_shards}
        )

    async def readyz(self, request: Request, st: State) -> Response:
        targets = st.pool.all_endpoints()
        up = await asyncio.gather(*(st.pool.ping(s, ep) for s, ep in targets))
        shards: dict[int, bool] = {}
        for (s, _), ok in zip(targets, up, strict=True):
            shards[s] = shards.get(s, False) or ok
        down = sorted(s for s, ok in shards.items() if not ok)
        body = {"ready": not down, "shards_down": down}
        return json_response(body, 200 if not down else 503)

    async def metrics_endpoint(self, request: Request, st: State) -> Response:
        return Response(generate_latest(self.metrics.registry), 200, media_type=CONTENT_TYPE_LATEST)

    async def unsupported(self, request: Request, st: State) -> Response:
        """Anything else under the API (fork, search, functions...) in Chroma's shape."""
        return error_response(
            501,
            "ChromaError",
            f"{request.method} {request.url.path} is not supported by the chroma-operator router",
        )

    def routes(self) -> list[Route]:
        r = self.route
        # The record routes come first: they are the hot path and routes match in order.
        return [
            r(COLL + "/query", self.query_records, ["POST"]),
            r(COLL + "/get", self.get_records, ["POST"]),
            r(COLL + "/add", self.write_records, ["POST"]),
            r(COLL + "/upsert", self.write_records, ["POST"]),
            r(COLL + "/update", self.write_records, ["POST"]),
            r(COLL + "/delete", self.delete_records, ["POST"]),
            r(COLL + "/count", self.count_records, ["GET"]),
            r(API + "/heartbeat", self.heartbeat, ["GET"]),
            r(API + "/version", self.shard0_read, ["GET"]),
            r(API + "/healthcheck", self.shard0_read, ["GET"]),
            r(API + "/pre-flight-checks", self.preflight_checks, ["GET"]),
            r(API + "/auth/identity", self.shard0_read, ["GET"]),
            r(API + "/reset", self.reset, ["POST"]),
            r(API + "/tenants", self.everywhere_create, ["POST"]),
            r(API + "/tenants/{tenant}", self.shard0_read, ["GET"]),
            r(API + "/tenants/{tenant}/databases", self.shard0_read, ["GET"]),
            r(API + "/tenants/{tenant}/databases", self.everywhere_create, ["POST"]),
            r(DB, self.shard0_read, ["GET"]),
            r(DB, self.delete_database, ["DELETE"]),
            r(DB + "/collections", self.list_collections, ["GET"]),
            r(DB + "/collections", self.create_collection, ["POST"]),
            r(DB + "/collections_count", self.collections_count, ["GET"]),
            r(DB + "/collections/by-id/{collection_id}", self.get_collection, ["GET"]),
            r(COLL, self.get_collection, ["GET"]),
            r(COLL, self.modify_collection, ["PUT"]),
            r(COLL, self.delete_collection, ["DELETE"]),
            r("/internal/invalidate", self.internal_invalidate, ["POST"]),
            r("/internal/topology", self.internal_topology, ["GET"]),
            r("/healthz", self.healthz, ["GET"]),
            r("/readyz", self.readyz, ["GET"]),
            r("/metrics", self.metrics_endpoint, ["GET"]),
            r(API + "/{rest:path}", self.unsupported, ["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]


def create_app(topology: Topology | str | Path, *, reload_interval: float = 1.0) -> Starlette:
    """The router app for a topology (or a topology file, reloaded when it changes)."""
    router = Router(TopologySource(topology), reload_interval)
    app = Starlette(routes=router.routes(), lifespan=router.lifespan)
    app.state.router = router
    return app


__all__ = ["Router", "create_app"]
