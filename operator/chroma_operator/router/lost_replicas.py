"""A replica that came back without its data is not in sync: find it by a mark it lacks.

Hint logs cover the writes a replica missed while it was away. They cannot tell that it
came back with none of its data: a lost volume, a claim deleted by hand, or a new replica
added by raising `replicas`. Such a replica answers, has no pending hints, and would be
read as in sync (and its empty answers merged as if true).

So every replica carries a mark: the collection `marker` in database `replicas` of tenant
`chroma-operator` (a tenant the router keeps clients out of: `route_app`). Every router
looks at the marks of every shard's replicas at start and every
`replication.mark_check_seconds`:

- No replica of a shard has one, and all of them answer: a new shard, or a cluster from
  before marks. Each replica gets one.
- Some have one and a replica does not: that replica lost its data. It becomes
  *repairing* (no reads, no writes) until `chroma-operator repair` has copied everything
  to it and tells the routers so; the router that hears it puts the mark back. Unless the
  siblings' mark was made in the last `MARK_SETTLE_LOOKS` looks: then making the marks
  was cut short (or another router is making them right now), and the missing one is
  made now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson

from chroma_operator.data.tenant_registry import RESERVED_TENANT
from chroma_operator.router.collections import by_name_path
from chroma_operator.router.replicas import Replica, ReplicaBook
from chroma_operator.router.shards import ShardCallError, ShardPool

log = logging.getLogger("chroma_operator.router.lost_replicas")

MARK_DATABASE = "replicas"
MARK_COLLECTION = "marker"
# Marks younger than this many looks may still be being made on the siblings (by this
# router or another): 60 s at the default 10 s between looks.
MARK_SETTLE_LOOKS = 6

_MARK_PATH = by_name_path(RESERVED_TENANT, MARK_DATABASE, MARK_COLLECTION)


Mark = dict[str, Any] | bool | None  # the mark's metadata; False: none; None: no answer


async def read_mark(pool: ShardPool, rep: Replica) -> Mark:
    """The replica's mark (its metadata), False when it has none, None when it did not
    answer plainly (down, or an error: nothing can be concluded)."""
    try:
        reply = await pool.call(rep.shard, rep.endpoint, "GET", _MARK_PATH)
    except ShardCallError:
        return None
    if reply.status == 404:
        return False
    if not reply.ok:
        return None
    return dict((reply.json() or {}).get("metadata") or {})


async def put_mark(pool: ShardPool, rep: Replica, made_at: float | None = None) -> bool:
    """Give the replica its mark (an existing one is kept); False when it did not answer."""
    made = made_at if made_at is not None else time.time()
    return await put_reserved_collection(
        pool, rep.shard, rep.endpoint, MARK_DATABASE, MARK_COLLECTION, {"made_at": made}
    )


async def put_reserved_collection(
    pool: ShardPool,
    shard: int,
    endpoint: str,
    database: str,
    name: str,
    metadata: dict[str, Any],
) -> bool:
    """Create a collection in the routers' own tenant on one replica (an existing one is
    kept as it is); False when the replica did not take it."""
    steps = [
        ("/tenants", {"name": RESERVED_TENANT}),
        (f"/tenants/{RESERVED_TENANT}/databases", {"name": database}),
        (
            f"/tenants/{RESERVED_TENANT}/databases/{database}/collections",
            {"name": name, "get_or_create": True, "metadata": metadata},
        ),
    ]
    try:
        for path, body in steps:  # a tenant or database that exists answers an error: fine
            reply = await pool.call(shard, endpoint, "POST", path, content=orjson.dumps(body))
    except ShardCallError:
        return False
    return reply.ok


class LostReplicas:
    """The periodic look at every shard's marks (the module docstring)."""

    def __init__(self, book: ReplicaBook, pool: Callable[[], ShardPool]) -> None:
        self.book = book
        self.pool = pool

    async def run(self) -> None:
        while True:  # a first look at once: a new cluster's replicas get their marks
            try:
                await self.check()
            except Exception:
                log.exception("looking at the replicas' marks failed")
            await asyncio.sleep(self.book.topology.replication.mark_check_seconds)

    async def check(self) -> list[str]:
        """One look at every shard; returns the replicas found to have lost their data."""
        pool = self.pool()
        lost: list[str] = []
        for endpoints in pool.shards:
            reps = [r for r in (self.book.get(ep) for ep in endpoints) if r is not None]
            marks = await asyncio.gather(*(read_mark(pool, r) for r in reps))
            lost += await self._shard(pool, reps, marks)
        return lost

    async def _shard(self, pool: ShardPool, reps: list[Replica], marks: list[Mark]) -> list[str]:
        settle = MARK_SETTLE_LOOKS * self.book.topology.replication.mark_check_seconds
        action, which, made_at = verdict(marks, time.time(), settle)
        chosen = [reps[i] for i in which]
        if action == "mark":  # a replica held for a repair gets its mark from the repair
            await asyncio.gather(*(put_mark(pool, r, made_at) for r in chosen if not r.repairing))
            return []
        lost = [r for r in chosen if not r.repairing]
        for rep in lost:
            log.error(
                "replica %s of shard %d answers without its data (its siblings carry the "
                "mark it lacks: a lost or new volume): repairing, out of reads and writes, "
                "until `chroma-operator repair` copies the shard to it",
                rep.name,
                rep.shard,
            )
            rep.mark_repair()
        if lost:
            self.book.spawn_announce()
        return [r.name for r in lost]


def verdict(
    marks: list[Mark], now: float, settle: float
) -> tuple[Literal["mark", "lost"], list[int], float]:
    """What one look at a shard's marks means: which replicas (by position) to give a mark
    (made at the time returned), or which lost their data. Pure: the module docstring's
    rules."""
    made = [m for m in marks if isinstance(m, dict)]
    unmarked = [i for i, m in enumerate(marks) if m is False]
    if not unmarked:
        return "mark", [], now
    if not made:  # a new shard, once every replica answered
        return "mark", (unmarked if all(m is False for m in marks) else []), now
    newest = max(float(m.get("made_at") or 0.0) for m in made)
    if now - newest < settle:  # the siblings' marks may still be being made
        return "mark", unmarked, newest
    return "lost", unmarked, newest
