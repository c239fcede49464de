"""Write acknowledgement with replicas: who must take a write, and hints for the rest.

A write goes live to the shard's in-sync replicas, in parallel, each bounded by the shard
timeout. It stands when at least `replication.min_acks` of them took it (answered with
anything but a gateway/server error). Every replica that missed it -- it was down, hung,
stale, fenced or held for a backup -- gets the exact request appended to its hint log,
fsynced, before the client hears "ok". When no in-sync replica answers, one that came back
in sync while the write was out takes it live; failing that, a stale replica that is
reachable and replaying its log takes the write through that log (it lands in order); the
write stands once the replay applied it within the shard timeout. A write no
replica took fails, naming the shard, and leaves no hints (so replicas agree on what
failed). Writes to the same records take turns (`write_order`), so every replica gets
them in one order. Once enough replicas took a write, the rest get a grace period, not
the whole shard timeout (`stragglers`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chroma_operator.router.collections import by_name_path, id_path, reply_error
from chroma_operator.router.errors import ChromaHTTPError
from chroma_operator.router.hints import Hint, HintLogError, HintLogFull
from chroma_operator.router.replicas import Replica
from chroma_operator.router.shards import PathFor, Reply, ShardCallError, Where
from chroma_operator.router.stragglers import WriteLatencies, live_with_grace
from chroma_operator.router.write_order import WriteOrder

log = logging.getLogger("chroma_operator.router.acks")


def log_stale(rep: Replica, shard: int, why: str) -> None:
    """Each replica's way to stale, with the cause: what an operator (or a failed test)
    needs to tell a hung replica from a refused or failed write."""
    log.warning(
        "replica %s of shard %d missed a write (%s): stale until its hint log is replayed",
        rep.name,
        shard,
        why,
    )


if TYPE_CHECKING:
    from chroma_operator.router.shards import ShardPool


# A shard's copy usually takes seconds: a writer told to come back sooner than the hold's
# whole remaining time gets in as soon as the copy ends (another 503 costs little).
RETRY_AFTER_MAX_S = 5
LOG_WRITES = ("/add", "/upsert", "/update")


@dataclass(frozen=True)
class ShardWrite:
    """One write to one shard, as every replica of it gets it (live or as a hint)."""

    shard: int
    method: str
    path_for: PathFor
    content: bytes | None
    headers: Mapping[str, str] | None
    where: Where | None

    def can_go_live(self, endpoint: str) -> bool:
        """Its path there is known, or can be asked for by name."""
        return self.path_for(endpoint) is not None or self.where is not None

    def hint(self, endpoint: str) -> Hint:
        path = self.path_for(endpoint)
        return Hint(self.method, path, self.content, dict(self.headers or {}), self.where)


class WriteAcks:
    def __init__(self, pool: ShardPool) -> None:
        self.pool = pool
        self.order = WriteOrder()
        self.latencies = WriteLatencies()

    async def write(
        self,
        shard: int,
        method: str,
        path_for: PathFor,
        *,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        where: Where | None,
        ids: Collection[str] | None = None,
    ) -> list[Reply]:
        """`ids`: the records the write touches (None: any record of the collection), so
        that writes to the same records reach every replica in one order."""
        pool = self.pool
        book = pool.book
        w = ShardWrite(shard, method, path_for, content, headers, where)
        if book is None:
            return await self._everywhere(w)
        blocked = book.write_blocked(shard)
        if blocked is not None:
            wait = max(1, int(blocked.expires - time.monotonic()))
            raise ChromaHTTPError(
                503,
                "ChromaError",
                f"Shard {shard} is held for a backup and has no other replica; "
                "retry after the backup releases it",
                {"Retry-After": str(min(wait, RETRY_AFTER_MAX_S))},
            )
        if len(pool.shards[shard]) < 2:
            return await self._replicate(w)  # one replica: its own order is the order
        async with self.order.turn((shard, where[:3] if where else None), ids):
            return await self._replicate(w)

    async def _replicate(self, w: ShardWrite) -> list[Reply]:
        """Live to the in-sync replicas, hints for the rest (the module docstring)."""
        pool = self.pool
        book = pool.book
        assert book is not None
        shard, where = w.shard, w.where
        live: list[Replica] = []
        later: list[Replica] = []
        for ep in pool.shards[shard]:
            rep = book.get(ep)
            assert rep is not None
            state = book.state(rep)
            if state == "in-sync" and w.can_go_live(ep):
                live.append(rep)  # no path yet: its id is looked up on the way
            elif state == "repairing":
                continue  # a full repair copies everything; no hints for it
            else:
                later.append(rep)
        grace = self.latencies.grace(shard)
        results = await live_with_grace(
            [self._live(rep, w) for rep in live],
            book.topology.replication.min_acks,
            grace,
            lambda seconds: self.latencies.add(shard, seconds),
        )
        took: list[Reply] = []
        missed: list[Replica] = []
        failed_live: set[str] = set()
        errors: list[ShardCallError] = []
        bad: list[Reply] = []
        for rep, r in zip(live, results, strict=True):
            if r is None:
                pool.metrics.write_stragglers.labels(rep.name).inc()
                r = ShardCallError(
                    shard, rep.endpoint, f"no answer {grace:.1f} s after enough replicas took it"
                )
            if isinstance(r, ShardCallError):
                errors.append(r)
            elif isinstance(r, BaseException):
                raise r
            elif r.status >= 500:
                bad.append(r)
            else:
                took.append(r)
                continue
            missed.append(rep)
            failed_live.add(rep.endpoint)
        if not took and not bad and later:
            took = await self._back_in_sync(later, w)
            if took:
                back = {r.endpoint for r in took}
                later = [rep for rep in later if rep.endpoint not in back]
        if not took and not bad and where is not None and where[3] in LOG_WRITES:
            # No in-sync replica answered. A stale one that is reachable and replaying
            # its log can still take the write in order, through that log (writes whose
            # answer carries nothing the client needs: not deletes, which count).
            rescuer, applied = await self._through_log(later, w)
            if rescuer is not None:
                others = [rep for rep in [*missed, *later] if rep is not rescuer]
                await asyncio.gather(*(self._hint(rep, w, failed_live) for rep in others))
                if applied:
                    return [Reply(shard, rescuer.endpoint, 200, b"{}", None)]
                raise ShardCallError(
                    shard,
                    (errors[0].endpoint if errors else rescuer.endpoint),
                    "timed out; the write is in a replica's hint log and reaches every "
                    "replica, and retrying the same request converges",
                )
        if not took:
            if bad:
                raise reply_error(bad[0], f"shard {shard}: ")
            if errors:
                raise errors[0]
            raise ShardCallError(shard, pool.shards[shard][0], "no in-sync replica took the write")
        if not any(r.ok for r in took):
            return took  # refused everywhere it went (a bad request): nothing to hint
        why = {e.endpoint: e.reason for e in errors} | {r.endpoint: f"HTTP {r.status}" for r in bad}
        changed = False
        for rep in missed:
            if book.mark_stale(rep):
                changed = True
                log_stale(rep, shard, why.get(rep.endpoint, "no answer"))
        if changed:
            await book.announce()
        await asyncio.gather(*(self._hint(rep, w, failed_live) for rep in [*missed, *later]))
        need = book.topology.replication.min_acks
        if len(took) < need:
            raise ChromaHTTPError(
                503,
                "ChromaError",
                f"Shard {shard}: only {len(took)} replica(s) took the write, {need} required "
                "(replication.min_acks); the others get it from hints, and retrying the same "
                "request converges",
            )
        return took

    async def _back_in_sync(self, later: list[Replica], w: ShardWrite) -> list[Reply]:
        """When every live call failed (the shard's in-sync replica hung, say), the
        replicas that came back in sync while this write was out take it live.

        Through its log instead, a replica just back in sync would go stale again, and its
        shard would have no replica to read from until the next replay.
        """
        book = self.pool.book
        assert book is not None

        async def live(rep: Replica) -> Reply | None:
            if not w.can_go_live(rep.endpoint):
                return None
            async with rep.log.lock:  # no append or truncation while it is written
                if book.state(rep) != "in-sync":
                    return None
                reply, _ = await self._take_live(rep, w)
            return reply

        replies = await asyncio.gather(*(live(rep) for rep in later))
        return [r for r in replies if r is not None]

    async def _through_log(
        self, later: list[Replica], w: ShardWrite
    ) -> tuple[Replica | None, bool]:
        """(the stale replica whose log took the write, whether its replay applied it
        within the shard timeout); (None, False) when no stale replica could take it."""
        pool = self.pool
        book = pool.book
        assert book is not None
        deadline = time.monotonic() + pool.topology.router.shard_timeout_seconds
        for rep in later:
            # stale (one back in sync would have taken the write live): its log keeps order
            if book.state(rep) not in ("stale", "in-sync") or not rep.reachable:
                continue
            async with rep.log.lock:
                try:
                    await rep.log.append(w.hint(rep.endpoint))
                except (HintLogError, HintLogFull):
                    continue
                target = rep.log.size
                self._counted(rep)
            while time.monotonic() < deadline:
                # replayed past it, or replayed everything and truncated the log
                if rep.log.offset >= target or rep.log.size < target:
                    return rep, True
                await asyncio.sleep(0.02)
            return rep, False
        return None, False

    async def _hint(self, rep: Replica, w: ShardWrite, failed_live: set[str]) -> None:
        """Make the replica's copy of this write durable in its hint log."""
        pool = self.pool
        book = pool.book
        assert book is not None
        async with rep.log.lock:
            ep = rep.endpoint
            if ep not in failed_live and w.can_go_live(ep) and book.state(rep) == "in-sync":
                # It caught up while this write was in flight: it can take it live.
                reply, why = await self._take_live(rep, w)
                if reply is not None:
                    return
                if book.mark_stale(rep):
                    log_stale(rep, w.shard, why)
                    book.spawn_announce()
            if rep.repairing:
                return
            try:
                await rep.log.append(w.hint(ep))
            except HintLogFull:
                rep.stale = False
                pool.metrics.hints_pending.labels(rep.name).set(0)
                book.spawn_announce()
                return
            except HintLogError as exc:
                rep.mark_repair()
                book.spawn_announce()
                raise ChromaHTTPError(
                    503,
                    "ChromaError",
                    f"Shard {w.shard}: write not acknowledged: replica {rep.name} missed it and "
                    f"its hint could not be kept ({exc}); it now needs a full repair",
                ) from exc
            self._counted(rep)

    async def _take_live(self, rep: Replica, w: ShardWrite) -> tuple[Reply | None, str]:
        """A replica now in sync takes the write live (the caller holds its log's lock):
        (its answer, "") when it took it, else (None, why not)."""
        try:
            reply = await self._live(rep, w)
        except ShardCallError as exc:
            return None, exc.reason
        if reply.status >= 500:
            return None, f"HTTP {reply.status}"
        return reply, ""

    async def _live(self, rep: Replica, w: ShardWrite) -> Reply:
        """The write to one in-sync replica, live.

        A replica that came back in sync after this request resolved the collection has
        no id in it yet: its id is asked for first (by name, from that replica). Handing
        it a hint instead would make it stale again after every replay while writes keep
        coming, and leave its shard with one replica to read from.
        """
        path = w.path_for(rep.endpoint)
        if path is None:
            path = await self._path_by_name(rep, w)
        return await self.pool.call(
            w.shard, rep.endpoint, w.method, path, content=w.content, headers=w.headers
        )

    async def _path_by_name(self, rep: Replica, w: ShardWrite) -> str:
        assert w.where is not None
        tenant, database, name, suffix = w.where
        reply = await self.pool.call(
            w.shard, rep.endpoint, "GET", by_name_path(tenant, database, name), headers=w.headers
        )
        if not reply.ok:
            raise ShardCallError(
                w.shard, rep.endpoint, f"collection {name!r} not found there (HTTP {reply.status})"
            )
        return id_path(tenant, database, str(reply.json()["id"]), suffix)

    def _counted(self, rep: Replica) -> None:
        """A hint is in the replica's log: it is stale until replayed, and the metrics say so."""
        rep.stale = True
        self.pool.metrics.hints_written.labels(rep.name).inc()
        self.pool.metrics.hints_pending.labels(rep.name).set(rep.log.pending)

    async def _everywhere(self, w: ShardWrite) -> list[Reply]:
        """No replica book (bare pools in tools): every replica, any failure raises."""
        calls = []
        for ep in self.pool.shards[w.shard]:
            path = w.path_for(ep)
            if path is None:
                raise ShardCallError(w.shard, ep, "collection unknown on this replica")
            calls.append(
                self.pool.call(w.shard, ep, w.method, path, content=w.content, headers=w.headers)
            )
        replies: list[Reply] = []
        for r in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(r, BaseException):
                raise r
            replies.append(r)
        return replies
