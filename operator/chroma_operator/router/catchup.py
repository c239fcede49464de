"""Automatic catch-up: ping stale replicas, replay their hints in order, declare them in sync.

Runs in every router. Replay reads the log from where it got to; writes that arrive
meanwhile are appended and replayed too. Only when the log is drained -- checked under
the log's lock, which every append takes -- is the file truncated and the replica in
sync again, so no write can fall between "replayed" and "in sync".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chroma_operator.router.collections import by_name_path, id_path
from chroma_operator.router.hints import Hint, coalesce
from chroma_operator.router.lost_replicas import read_mark
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.reconcile import ReplayedRecords, ReplicaGone, reconcile
from chroma_operator.router.replicas import Replica, ReplicaBook
from chroma_operator.router.shards import RETRY_STATUSES, ShardCallError, ShardPool

log = logging.getLogger("chroma_operator.router.catchup")

BATCH = 64
# A replica that was hung (SIGSTOP) may still process requests it had buffered when it
# resumes; give those a moment to land before the replay, so the replay comes last.
RESUME_GRACE_S = 0.5


class CatchUp:
    def __init__(
        self, book: ReplicaBook, pool: Callable[[], ShardPool], metrics: RouterMetrics
    ) -> None:
        self.book = book
        self.pool = pool
        self.metrics = metrics
        self._running: dict[str, asyncio.Task[None]] = {}
        # per replica, what its replays wrote and is not reconciled yet (kept across
        # attempts: a replay cut short resumes where it got to, and so does this)
        self._replayed: dict[str, ReplayedRecords] = {}

    async def run(self, interval: float = 0.5, announce_every: float = 5.0) -> None:
        last_announce = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick()
                if time.monotonic() - last_announce > announce_every:
                    last_announce = time.monotonic()
                    self.book.spawn_announce()  # heals a notice a peer missed
            except Exception:
                log.exception("catch-up tick failed")

    def tick(self) -> None:
        """Start a replay for every stale replica that is not being replayed already."""
        counts: dict[str, int] = {"in-sync": 0, "stale": 0, "repairing": 0, "fenced": 0}
        for rep in list(self.book.replicas.values()):
            state = self.book.state(rep)
            counts[state] += 1
            self.metrics.hints_pending.labels(rep.name).set(rep.log.pending)
            if rep.own_state != "stale" or state in ("fenced", "repairing"):
                continue
            if rep.name not in self._running:
                task = asyncio.ensure_future(self.replay(rep))
                self._running[rep.name] = task
                task.add_done_callback(self._finished(rep.name))
        for name, n in counts.items():
            self.metrics.replicas_by_state.labels(name).set(n)

    def _finished(self, name: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._running.pop(name, None)
            if not task.cancelled() and task.exception() is not None:
                log.warning("replay to %s failed: %s", name, task.exception())

        return done

    async def replay(self, rep: Replica) -> None:
        pool = self.pool()
        mark = await read_mark(pool, rep)  # also the ping: None when it did not answer
        if not isinstance(mark, dict):  # a mark may carry no metadata: {} is a mark
            # Not back; or back without its mark: it may have lost its data, and a replay
            # would make a few records look like all of them (the marks' next look decides).
            rep.reachable = False
            return
        if not rep.reachable:
            rep.reachable = True
            await asyncio.sleep(RESUME_GRACE_S)
        ids: dict[tuple[str, str, str], str | None] = {}
        replayed = self._replayed.setdefault(rep.name, ReplayedRecords())
        while True:
            batch = list(rep.log.read_from(rep.log.offset, BATCH))
            if not batch:
                if rep.repairing:  # its log was dropped meanwhile: a repair copies all
                    return
                if replayed:
                    if not await self._reconcile(pool, rep, replayed):
                        rep.reachable = False
                        return
                    replayed = self._replayed[rep.name] = ReplayedRecords()
                    continue  # writes hinted meanwhile are replayed (and reconciled) too
                async with rep.log.lock:
                    if rep.log.drained():
                        rep.log.truncate()
                        rep.stale = False
                        self.metrics.hints_pending.labels(rep.name).set(0)
                        log.info("replica %s replayed its hints: in sync", rep.name)
                        self.book.spawn_announce()
                        return
                continue
            for hint, end, count in coalesce(batch):
                if self.book.state(rep) in ("fenced", "repairing"):
                    return
                if not await self.apply(pool, rep, hint, ids):
                    rep.reachable = False
                    return
                if self.book.topology.router.peers:
                    replayed.add(hint)
                rep.log.advance(end, count)
                self.metrics.hints_replayed.labels(rep.name).inc(count)
                self.metrics.hints_replayed_records.labels(rep.name).inc(hint.records)

    async def _reconcile(self, pool: ShardPool, rep: Replica, replayed: ReplayedRecords) -> bool:
        """The replayed records made to match an in-sync sibling; False when `rep` stopped
        answering (try again on a later tick). With no sibling answering, the replica is
        in sync as the replay left it (a sibling down too must not keep the shard
        unreadable); the log says so."""
        siblings = [
            r
            for r in self.book.replicas.values()
            if r.shard == rep.shard and r is not rep and self.book.state(r) == "in-sync"
        ]
        for sibling in siblings:
            try:
                changed = await reconcile(pool, rep, sibling, replayed)
            except ReplicaGone as exc:
                if exc.endpoint == rep.endpoint:
                    return False
                continue  # that sibling is down: the next one
            except Exception:
                log.exception("replica %s: reconciling its replay failed", rep.name)
                break
            self.metrics.replay_reconciled.labels(rep.name).inc(changed)
            return True
        log.warning(
            "replica %s: replay not reconciled (no in-sync sibling answered); if other "
            "routers also held hints for it, run a repair",
            rep.name,
        )
        return True

    async def apply(
        self,
        pool: ShardPool,
        rep: Replica,
        hint: Hint,
        ids: dict[tuple[str, str, str], str | None],
    ) -> bool:
        """Send one hint; False when the replica did not answer (try again later)."""
        path = hint.path
        try:
            if path is None and hint.where is not None:
                tenant, database, name, suffix = hint.where
                key = (tenant, database, name)
                if key not in ids:
                    by_name = by_name_path(tenant, database, name)
                    reply = await pool.call(rep.shard, rep.endpoint, "GET", by_name)
                    if reply.status in RETRY_STATUSES:
                        return False
                    ids[key] = str(reply.json()["id"]) if reply.ok else None
                coll_id = ids[key]
                if coll_id is None:
                    log.warning("hint for %s: collection %s gone; skipped", rep.name, name)
                    return True
                path = id_path(tenant, database, coll_id, suffix)
                if hint.method == "PUT":
                    ids.clear()  # a modify may rename
            if path is None:
                return True
            reply = await pool.call(
                rep.shard,
                rep.endpoint,
                hint.method,
                path,
                content=hint.body,
                headers=hint.headers,
            )
        except ShardCallError:
            return False
        if reply.status in RETRY_STATUSES:
            return False
        if not reply.ok:
            log.warning(
                "replayed hint to %s answered %d: %s", rep.name, reply.status, reply.body[:200]
            )
        return True
