"""The pool of shard connections: keep-alive HTTP to every replica of every shard.

Reads go to one replica (round-robin) and fail over on connection errors, retrying once
more than there are spare replicas; writes go to every replica of the shard, because each
replica holds the whole shard. Transport failures surface as `ShardCallError` naming the
shard and replica, which the app turns into a 503 (or a partial answer).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.topology import Topology

API = "/api/v2"
RETRY_STATUSES = frozenset({502, 503, 504})


class ShardCallError(Exception):
    """A shard replica could not answer (connection error, timeout, or 5xx gateway status)."""

    def __init__(self, shard: int, endpoint: str, reason: str) -> None:
        super().__init__(f"shard {shard} ({endpoint}): {reason}")
        self.shard = shard
        self.endpoint = endpoint
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    shard: int
    endpoint: str
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


PathFor = Callable[[str], str | None]


class ShardPool:
    def __init__(self, topology: Topology, metrics: RouterMetrics) -> None:
        self.topology = topology
        self.metrics = metrics
        self.shards = [list(s.endpoints) for s in sorted(topology.shards, key=lambda s: s.index)]
        self._rr = [itertools.count() for _ in self.shards]
        timeout = httpx.Timeout(topology.router.shard_timeout_seconds)
        self.client = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=256),
            headers={"content-type": "application/json"},
        )

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
            resp = await self.client.request(
                method, endpoint + API + path, content=content, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            self.metrics.shard_errors.labels(label, "timeout").inc()
            raise ShardCallError(shard, endpoint, f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self.metrics.shard_errors.labels(label, "connection").inc()
            raise ShardCallError(shard, endpoint, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.shard_latency.labels(label).observe(time.perf_counter() - start)
        if resp.status_code >= 500:
            self.metrics.shard_errors.labels(label, "status").inc()
        return Reply(shard, endpoint, resp.status_code, resp.content)

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
        """Ask one replica; on a transport error or gateway status try the next (at least once)."""
        eps = self.shards[shard]
        first = next(self._rr[shard])
        attempts = max(2, len(eps))
        last: ShardCallError | None = None
        for i in range(attempts):
            ep = eps[(first + i) % len(eps)]
            path = path_for(ep)
            if path is None:
                continue
            try:
                reply = await self.call(
                    shard, ep, method, path, content=content, params=params, headers=headers
                )
            except ShardCallError as exc:
                last = exc
                continue
            if reply.status in RETRY_STATUSES and i + 1 < attempts:
                last = ShardCallError(shard, ep, f"status {reply.status}")
                continue
            return reply
        raise last or ShardCallError(shard, eps[0], "collection unknown on every replica")

    async def write(
        self,
        shard: int,
        method: str,
        path_for: PathFor,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[Reply]:
        """Send to every replica of `shard` in parallel; any transport failure raises."""
        calls = []
        for ep in self.shards[shard]:
            path = path_for(ep)
            if path is None:
                raise ShardCallError(shard, ep, "collection unknown on this replica")
            calls.append(self.call(shard, ep, method, path, content=content, headers=headers))
        results = await asyncio.gather(*calls, return_exceptions=True)
        replies: list[Reply] = []
        for r in results:
            if isinstance(r, BaseException):
                raise r
            replies.append(r)
        return replies

    async def ping(self, shard: int, endpoint: str) -> bool:
        try:
            reply = await self.call(shard, endpoint, "GET", "/heartbeat")
        except ShardCallError:
            return False
        return reply.ok

    async def aclose(self) -> None:
        await self.client.aclose()
