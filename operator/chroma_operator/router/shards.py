"""The pool of shard connections: keep-alive HTTP to every replica of every shard.

Calls go through `shard_http.ShardHttp`, a lean keep-alive client: on the hot path the
client's own CPU per shard call is most of the router's overhead (see that module).

Reads go to one in-sync replica (round-robin), fail over at once on connection errors
and are hedged when slow; writes go to every in-sync replica of the shard (each holds the
whole shard) and replicas that miss one get hints (`acks.WriteAcks`). Transport failures
surface as `ShardCallError` naming the shard and replica, which the app turns into a 503
(or a partial answer).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from chroma_operator.router.hedge import (
    STALL_FACTOR,
    STALL_MIN_S,
    HedgeBudget,
    LatencyWindow,
    SuspectList,
)
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.shard_http import ShardHttp, ShardHttpError, ShardUnreachable
from chroma_operator.router.trace import shard_trace_id
from chroma_operator.topology import Topology

if TYPE_CHECKING:
    from chroma_operator.router.replicas import ReplicaBook

API = "/api/v2"
RETRY_STATUSES = frozenset({502, 503, 504})
PER_REPLICA_CONNECTIONS = 256  # keep-alive connections the router may hold to one replica
KEEPALIVE_S = 60.0


class ShardCallError(Exception):
    """A shard replica could not answer (connection error, timeout, or 5xx gateway status)."""

    def __init__(self, shard: int, endpoint: str, reason: str, unreachable: bool = False) -> None:
        super().__init__(f"shard {shard} ({endpoint}): {reason}")
        self.shard = shard
        self.endpoint = endpoint
        self.reason = reason
        self.unreachable = unreachable  # no connection could be made at all


class MissingHere(ShardCallError):
    """A replica answered 404 where it has siblings to ask: the sibling may hold what this
    one lost (a volume lost between two looks at its mark). Its reply is kept: when no
    sibling has it either, the 404 stands."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.shard, reply.endpoint, "answered 404")
        self.reply = reply


@dataclass(frozen=True)
class Reply:
    shard: int
    endpoint: str
    status: int
    body: bytes
    trace_id: str | None = None  # the shard's `chroma-trace-id`, when it sent a real one

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


PathFor = Callable[[str], str | None]
# (tenant, database, collection name, suffix): how a hint finds the collection on a
# replica whose own collection id this router does not know yet.
Where = tuple[str, str, str, str]


class ShardPool:
    def __init__(
        self, topology: Topology, metrics: RouterMetrics, book: ReplicaBook | None = None
    ) -> None:
        self.topology = topology
        self.metrics = metrics
        self.book = book
        hedging = topology.router.hedging
        self._budget = HedgeBudget(hedging.max_fraction) if hedging.enabled else None
        self._hedge_floor = hedging.floor_ms / 1000.0
        self._windows = [LatencyWindow() for _ in topology.shards]
        # Labelled metric children looked up once, not on every sub-request.
        self._latency = [metrics.shard_latency.labels(str(i)) for i in range(len(topology.shards))]
        self._suspects = SuspectList()
        from chroma_operator.router.acks import WriteAcks  # it builds on this module

        self.acks = WriteAcks(self)
        self.shards = [list(s.endpoints) for s in sorted(topology.shards, key=lambda s: s.index)]
        self._rr = [itertools.count() for _ in self.shards]
        self._timeout = topology.router.shard_timeout_seconds
        self._http: ShardHttp | None = None

    @property
    def http(self) -> ShardHttp:
        """Created on first use, inside the serving event loop.

        Every replica gets its own keep-alive pool of up to `PER_REPLICA_CONNECTIONS`, so
        a query fanned out to N shards never queues for a connection behind another
        shard's.
        """
        if self._http is None:
            self._http = ShardHttp(
                self._timeout,
                PER_REPLICA_CONNECTIONS,
                KEEPALIVE_S,
                headers={"content-type": "application/json"},
            )
        return self._http

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def primary(self) -> str:
        """Shard 0's first replica: its collection ids are the ids clients see."""
        return self.shards[0][0]

    def all_endpoints(self) -> list[tuple[int, str]]:
        return [(s, ep) for s, eps in enumerate(self.shards) for ep in eps]

    async def call(
        self,
        shard: int,
        endpoint: str,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request to one replica; transport errors become `ShardCallError`."""
        label = str(shard)
        start = time.perf_counter()
        try:
            answer = await self.http.request(
                endpoint, method, API + path, content=content, params=params, headers=headers
            )
        except TimeoutError as exc:
            self.metrics.shard_errors.labels(label, "timeout").inc()
            raise ShardCallError(shard, endpoint, "timed out") from exc
        except ShardHttpError as exc:
            self.metrics.shard_errors.labels(label, "connection").inc()
            unreachable = isinstance(exc, ShardUnreachable)
            raise ShardCallError(shard, endpoint, str(exc), unreachable) from exc
        finally:
            self._latency[shard].observe(time.perf_counter() - start)
        status = answer.status
        if status >= 500:
            self.metrics.shard_errors.labels(label, "status").inc()
        return Reply(shard, endpoint, status, answer.body, shard_trace_id(answer.headers))

    def readable(self, shard: int) -> list[str]:
        """The shard's in-sync replicas, rotated round-robin (reads go only here), with
        any that recently lost to a hedge moved last."""
        eps = [ep for ep in self.shards[shard] if self.book is None or self.book.in_sync(ep)]
        if len(eps) > 1:
            k = next(self._rr[shard]) % len(eps)
            eps = self._suspects.order(eps[k:] + eps[:k])
        return eps

    async def read(
        self,
        shard: int,
        method: str,
        path_for: PathFor,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Ask one in-sync replica; on a transport error or gateway status go to the next
        at once; a slow one is hedged to a second replica (see `hedge`)."""
        targets = [(ep, p) for ep in self.readable(shard) if (p := path_for(ep)) is not None]
        if not targets:
            raise ShardCallError(shard, self.shards[shard][0], "no in-sync replica")
        self.metrics.read_subrequests.inc()
        if self._budget is not None:
            self._budget.count_request()

        async def one(ep: str, path: str) -> Reply:
            start = time.perf_counter()
            try:
                reply = await self.call(
                    shard, ep, method, path, content=content, params=params, headers=headers
                )
            except ShardCallError as exc:
                if exc.unreachable and self.book is not None:
                    self.book.doubt(ep, exc.reason)
                raise
            if reply.status in RETRY_STATUSES:
                raise ShardCallError(shard, ep, f"status {reply.status}")
            if reply.status == 404 and len(targets) > 1:
                raise MissingHere(reply)
            self._windows[shard].add(time.perf_counter() - start)
            return reply

        if len(targets) == 1:
            # One replica to ask: no hedge; a stale keep-alive connection gets one retry.
            try:
                return await one(*targets[0])
            except ShardCallError:
                return await one(*targets[0])
        return await self._first_answer(shard, targets, one)

    async def _first_answer(
        self,
        shard: int,
        targets: list[tuple[str, str]],
        one: Callable[[str, str], Awaitable[Reply]],
    ) -> Reply:
        """Try targets in order; errors move on at once, a slow answer is hedged once.

        The hedge goes out at the shard's p95 while the budget allows. With the budget
        spent, a sub-request still unanswered at `STALL_FACTOR` x p95 (at least
        `STALL_MIN_S`) is hedged anyway and
        its replica marked suspect (asked last for a while): a hung replica costs one
        such hedge per suspect period, never a read that waits for the shard timeout.
        """
        pending: dict[asyncio.Task[Reply], str] = {}
        queue = list(targets)
        last: ShardCallError | None = None
        missing: list[MissingHere] = []
        hedge_sent = over_budget = False
        try:
            while queue or pending:
                if not pending:
                    ep, path = queue.pop(0)
                    pending[asyncio.ensure_future(one(ep, path))] = ep
                wait_for = None
                if queue and not hedge_sent and self._budget is not None:
                    p95 = self._windows[shard].p95(self._hedge_floor)
                    if p95 is not None:
                        stall = max(STALL_FACTOR * p95, STALL_MIN_S) - p95
                        wait_for = stall if over_budget else p95
                done, _ = await asyncio.wait(
                    pending, timeout=wait_for, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # slower than the shard's p95: hedge, if the budget allows
                    assert self._budget is not None
                    if not over_budget and not self._budget.take():
                        over_budget = True  # wait on to the stall point
                        continue
                    if over_budget:
                        self._suspects.mark(targets[0][0])
                    hedge_sent = True
                    ep, path = queue.pop(0)
                    pending[asyncio.ensure_future(one(ep, path))] = ep
                    continue
                for task in done:
                    ep = pending.pop(task)
                    exc = task.exception()
                    if exc is None:
                        for m in missing:  # a sibling holds what it lacked: its mark
                            if self.book is not None:  # decides whether it lost its data
                                self.book.doubt(m.endpoint, f"404 where {ep} answered")
                        if hedge_sent:
                            winner = "first" if ep == targets[0][0] else "hedge"
                            self.metrics.hedges.labels(str(shard), winner).inc()
                            if winner == "hedge":
                                self._suspects.mark(targets[0][0])
                        return task.result()
                    if not isinstance(exc, ShardCallError):
                        raise exc
                    self._suspects.mark(ep)
                    last = exc
                    if isinstance(exc, MissingHere):
                        missing.append(exc)
            if missing:  # not found anywhere that answered: Chroma's own 404
                return missing[0].reply
            raise last or ShardCallError(shard, targets[0][0], "no replica answered")
        finally:
            for task in pending:
                task.cancel()

    async def write(
        self,
        shard: int,
        method: str,
        path_for: PathFor,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        where: Where | None = None,
        ids: Collection[str] | None = None,
    ) -> list[Reply]:
        """Send to the shard's in-sync replicas; the write stands once `min_acks` of them
        took it, and every replica that missed it gets a durable hint first. Writes that
        touch the same `ids` (None: any) reach every replica in the order they came."""
        return await self.acks.write(
            shard, method, path_for, content=content, headers=headers, where=where, ids=ids
        )

    async def ping(self, shard: int, endpoint: str) -> bool:
        try:
            reply = await self.call(shard, endpoint, "GET", "/heartbeat")
        except ShardCallError:
            return False
        return reply.ok

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
