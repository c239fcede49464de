"""The router's shared core: topology state, lifecycle, the route wrapper, fan-out reads.

Route modules (system, collections, records) hold a reference to one `RouterCore` and
add handlers; everything they share -- the current `State`, metrics, cache invalidation
across peers, the combined pre-flight checks -- lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.routing import Route

from chroma_operator.router.auth import AuthGate
from chroma_operator.router.cache import QueryCache
from chroma_operator.router.catchup import CatchUp
from chroma_operator.router.collection_ids import CollectionIds
from chroma_operator.router.collections import CollectionMap, ResolvedCollection
from chroma_operator.router.fanout import gather, require_all, require_ok
from chroma_operator.router.lost_replicas import LostReplicas
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.recall import RecallSampler
from chroma_operator.router.replicas import ReplicaBook
from chroma_operator.router.route_app import Handler, RouteApp
from chroma_operator.router.shards import Reply, ShardPool
from chroma_operator.router.state import State
from chroma_operator.router.tenant_registry import TenantRegistry
from chroma_operator.router.tls import peer_verify
from chroma_operator.router.topology_source import TopologySource
from chroma_operator.topology import Topology

log = logging.getLogger("chroma_operator.router")

OLD_POOL_GRACE_S = 30.0


class RouterCore:
    """The metrics, the topology watcher and the current state of one router process."""

    def __init__(
        self, source: TopologySource, reload_interval: float = 1.0, access_log: bool = False
    ) -> None:
        self.source = source
        self.reload_interval = reload_interval
        self.access_log = access_log  # one line per request (5xx answers are always logged)
        self.metrics = RouterMetrics(source.current.slo.latency_thresholds_ms)
        self.book = ReplicaBook(source.current)
        self.book.announcer = self.announce_replicas
        self.catchup = CatchUp(self.book, lambda: self.state.pool, self.metrics)
        self.lost_replicas = LostReplicas(self.book, lambda: self.state.pool)
        self.tenants = TenantRegistry(lambda: self.state.pool)
        self.ids = CollectionIds(lambda: self.state.pool)
        self.state = self.make_state(source.current)
        self.auth = AuthGate(source.current.auth)
        # Short: a write waits for its peers' invalidations, and a vanished peer must not
        # stall every write (its cache is bounded by the TTL anyway).
        self.peer_client = httpx.AsyncClient(
            timeout=httpx.Timeout(1.0, connect=0.5), verify=peer_verify(source.current.tls)
        )
        self._old_pools: list[ShardPool] = []
        self._old_states: list[State] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def make_state(self, topology: Topology) -> State:
        pool = ShardPool(topology, self.metrics, self.book)
        slo = topology.slo
        recall = RecallSampler(
            self.metrics, slo.recall_sample_rate, slo.recall_k, slo.recall_max_per_second
        )
        collections = CollectionMap(pool, self.ids, self.tenants.saw)
        return State(topology, pool, collections, self.new_cache(topology), recall)

    @staticmethod
    def new_cache(topology: Topology) -> QueryCache:
        c = topology.router.cache
        return QueryCache(c.max_entries, c.ttl_seconds, c.enabled)

    # --- lifecycle -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(self.catchup.run()),
            asyncio.create_task(self.lost_replicas.run()),
        ]
        if self.source.path is not None or self.auth.enabled:
            tasks.append(asyncio.create_task(self._watch()))
        # A restarted router: its reloaded hint logs make replicas stale; learn what the
        # peers hold too, and tell them what this one holds, before serving.
        await self.learn_from_peers()
        await self.announce_replicas()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.state.recall.aclose()
            await self.state.pool.aclose()
            for pool in self._old_pools:
                await pool.aclose()
            await self.peer_client.aclose()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            reloaded = self.auth.refresh(self.source.current.auth)
            if reloaded is not None:
                self.metrics.token_reloads.labels(reloaded).inc()
            try:
                topology = self.source.poll()
            except Exception as exc:
                self.metrics.topology_reloads.labels("error").inc()
                log.warning("topology reload failed, keeping the last good one: %s", exc)
                continue
            if topology is None:
                continue
            old_state = self.state
            old = old_state.pool
            self.book.update(topology)
            self.state = self.make_state(topology)
            self.metrics.topology_reloads.labels("ok").inc()
            log.info("topology reloaded: %d shards", len(topology.shards))
            self._old_pools.append(old)
            self._old_states = [s for s in self._old_states if s.in_flight > 0]
            self._old_states.append(old_state)
            self.spawn(self._retire(old))

    def applied_epoch(self) -> int:
        """The placement epoch every request in flight here already follows.

        A request keeps the topology it started with, so the epoch is reported only once
        the requests that started under an older one have finished.
        """
        epochs = [self.state.routing.epoch]
        epochs += [s.routing.epoch for s in self._old_states if s.in_flight > 0]
        return min(epochs)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run a background task that is kept referenced until done."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retire(self, pool: ShardPool) -> None:
        """Close a replaced pool once the requests that started on it are done."""
        await asyncio.sleep(OLD_POOL_GRACE_S)
        if pool in self._old_pools:
            self._old_pools.remove(pool)
            await pool.aclose()

    def route(self, template: str, handler: Handler, methods: list[str]) -> Route:
        """A route whose handler is timed and counted under its template, errors shaped
        (see `RouteApp`)."""
        return Route(template, RouteApp(self, template, handler, methods), methods=methods)

    # --- shared fan-outs ---------------------------------------------------------------

    async def read_shards(
        self, st: State, calls: Mapping[int, Awaitable[Reply]], partial: bool | None = None
    ) -> tuple[dict[int, Reply], list[int]]:
        """Per-shard reads in parallel; failures fail the read or, if allowed, go missing."""
        replies, failed = await gather(calls)
        allow_partial = st.partial_ok if partial is None else partial
        if failed and (not allow_partial or not replies):
            require_all(failed)
        require_ok(replies.values(), name_shard=False)
        return replies, sorted(failed)

    async def on_every_replica(
        self, st: State, method: str, path: str, content: bytes | None, headers: Mapping[str, str]
    ) -> list[Reply]:
        """The same request to every replica of every shard (tenants, databases, reset)."""
        targets = st.pool.all_endpoints()
        calls = {
            i: st.pool.call(s, ep, method, path, content=content, headers=headers)
            for i, (s, ep) in enumerate(targets)
        }
        replies, failed = await gather(calls)
        require_all(failed)
        return [replies[i] for i in range(len(targets))]

    async def invalidate(self, st: State, coll: ResolvedCollection, forget: bool = False) -> None:
        """Bump the collection's generation here and tell every peer router."""
        st.cache.invalidate(coll.client_id)
        self.metrics.cache_invalidations.labels("local").inc()
        if forget:
            st.collections.forget(coll.tenant, coll.database, coll.client_id)
        await self.tell_peers(
            "/internal/invalidate",
            {
                "tenant": coll.tenant,
                "database": coll.database,
                "collection_id": coll.client_id,
                "forget": forget,
            },
            "invalidate",
            logging.WARNING,
        )

    async def announce_replicas(self) -> None:
        """Tell every peer router this router's own replica view (stale = hints held here)."""
        await self.tell_peers(
            "/internal/replicas/notice", self.book.own_view(), "replicas", logging.DEBUG
        )

    async def forward_to_peers(self, path: str, body: dict[str, Any]) -> None:
        """The same internal request to every peer router (holds, repairs)."""
        await self.tell_peers(path, body, path, logging.DEBUG)

    async def tell_peers(self, path: str, body: Any, what: str, level: int = logging.DEBUG) -> None:
        """POST `body` to `path` on every peer router; a peer that is away is only logged."""
        peers = self.state.topology.router.peers
        if not peers:
            return
        content = orjson.dumps(body)
        headers = {"content-type": "application/json", **self.auth.peer_headers()}
        results = await asyncio.gather(
            *(
                self.peer_client.post(p.rstrip("/") + path, content=content, headers=headers)
                for p in peers
            ),
            return_exceptions=True,
        )
        for peer, r in zip(peers, results, strict=True):
            if isinstance(r, BaseException):
                log.log(level, "could not tell peer %s (%s): %s", peer, what, r)

    async def learn_from_peers(self) -> None:
        """At start-up: which replicas do the peers hold hints for (or hold for backup)?"""
        peers = self.state.topology.router.peers
        results = await asyncio.gather(
            *(
                self.peer_client.get(
                    p.rstrip("/") + "/internal/replicas/own", headers=self.auth.peer_headers()
                )
                for p in peers
            ),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, httpx.Response) and r.status_code == 200:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    self.book.apply_notice(r.json())

    async def preflight(self, st: State, headers: Mapping[str, str]) -> dict[str, Any]:
        """The shards' pre-flight checks combined: the smallest batch, base64 if all can."""
        if st.preflight is None:
            calls = {
                s: st.pool.read(s, "GET", lambda ep: "/pre-flight-checks", headers=headers)
                for s in range(st.pool.num_shards)
            }
            replies, _ = await self.read_shards(st, calls, partial=False)
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
