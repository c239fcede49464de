"""The move itself: drive the placement through its phases over HTTP.

One engine for Kubernetes (the operator) and one machine (`local up`): a `Runtime`
publishes topologies, reports router epochs and takes progress. Every phase's work is
idempotent, so a restarted engine carries on from the placement in the topology:
backfill copies (upserts) only ids whose owner changes, verify compares digests of the
moved records on both sides and repairs what differs, cleanup deletes the copies the old
owners no longer own. Nothing advances until every router reports the current epoch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from chroma_operator.data.chroma_http import ChromaCallError
from chroma_operator.data.digest import (
    EmbeddingMode,
    bucket_of,
    diff_buckets,
    diff_records,
    digest_records,
    mode_for_collection,
)
from chroma_operator.data.mover import MoveStats, RateLimiter, move
from chroma_operator.data.records import RecordBatch
from chroma_operator.reshard.plan import (
    advance,
    begin,
    cleanup_shards,
    moving,
    source_shards,
    with_placement,
)
from chroma_operator.reshard.progress import Progress
from chroma_operator.reshard.shard_io import CollKey, MoveStopped, OwnerSink, Shards, gone
from chroma_operator.router.placement import shard_for
from chroma_operator.topology import PlacementTopology, ShardTopology, Topology

log = logging.getLogger("chroma_operator.reshard")

DEFAULT_RATE = 5000.0  # records per second the backfill may copy
VERIFY_ROUNDS = 20


class VerifyFailed(RuntimeError):
    """Moved records still differ after repeated repair: the move stays in verify."""


class Runtime(Protocol):
    def topology(self) -> Topology: ...

    def publish(self, topology: Topology) -> None: ...

    def router_epochs(self) -> list[int | None]:
        """Each router's applied placement epoch (None: it did not answer)."""
        ...

    def report(self, progress: Progress, event: str | None = None) -> None: ...


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def moving_share(src: int, old: int, new: int) -> float:
    """The expected share of a source shard's records that change owner (jump hash:
    growing moves (new - old) / new of each old shard; shrinking empties shards >= new)."""
    if new > old:
        return (new - old) / new
    return 1.0 if src >= new else 0.0


class Engine:
    def __init__(
        self,
        runtime: Runtime,
        *,
        tenants: list[str] | None = None,
        rate: float = DEFAULT_RATE,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        poll: float = 0.2,
    ) -> None:
        self.runtime = runtime
        self.tenants = tenants or []  # besides default_tenant and the registered ones
        self.rate = rate
        self.stop = stop or threading.Event()
        self.poll = poll
        self.progress = progress

    # --- entry points ----------------------------------------------------------------

    def start(self, target: int, new_shards: list[ShardTopology] | None = None) -> Topology:
        """Publish the first placement of a move to `target` shards (or its reversal).

        Raises `ReshardRefused` for a target that cannot be applied now.
        """
        t = self.runtime.topology()
        current = t.current_placement()
        nxt = begin(current, target)
        if nxt == current:
            return t
        t = with_placement(t, nxt, new_shards)
        old = nxt.previous_shards or current.shards
        self.progress = Progress(old, target, nxt.phase, nxt.epoch)
        self.runtime.publish(t)
        self._report(f"resharding from {old} to {target} shards: phase {nxt.phase}")
        return t

    def run(self) -> Topology:
        """Drive the move in the topology to its end; returns the final topology."""
        while True:
            t = self.runtime.topology()
            p = t.current_placement()
            self._sync_progress(p)
            self.wait_routers(p.epoch)
            if not moving(p):
                return t
            io = self._io(t)
            try:
                self.do_phase(io, p)
            finally:
                io.close()
            nxt = advance(p)
            self.runtime.publish(with_placement(t, nxt))
            self._sync_progress(nxt)
            if nxt.phase == "stable":
                self.wait_routers(nxt.epoch)  # done means every router serves it
                self._report(f"resharding to {nxt.shards} shards: done")
                return self.runtime.topology()
            self._report(f"resharding to {nxt.shards} shards: phase {nxt.phase}")

    # --- phases ----------------------------------------------------------------------

    def do_phase(self, io: Shards, p: PlacementTopology) -> None:
        old, new = p.previous_shards or p.shards, p.shards
        tenants = io.tenants(self.tenants)
        colls = io.collections(tenants)
        prog = self._prog()
        prog.collections_total = len(colls)
        if p.phase == "dual-write":
            # Databases and collections exist on every shard, the new ones included.
            io.ensure_databases(tenants)
            for key, model in colls:
                for shard in range(max(old, new)):
                    io.ensure(shard, key, model)
        elif p.phase == "backfill":
            if prog.backfill_started is None:
                prog.backfill_started = time.time()
            for key, model in colls:
                if str(key) in prog.collections_done:
                    continue
                for shard in range(max(old, new)):
                    io.ensure(shard, key, model)
                self.backfill(io, key, model, old, new)
                prog.collections_done.append(str(key))
                self._report()
            prog.backfill_seconds = time.time() - prog.backfill_started
        elif p.phase == "verify":
            for key, model in colls:
                self.verify(io, key, model, old, new)
                self._report()
        elif p.phase == "cleanup":
            for key, _ in colls:
                self.cleanup(io, key, old, new)
                self._report()

    def backfill(self, io: Shards, key: CollKey, model: dict[str, Any], old: int, new: int) -> None:
        """Copy every record whose owner changes from its old owner to its new one."""
        for src in source_shards(old, new):
            try:
                if not self._backfill_from(io, key, src, old, new):
                    return  # deleted meanwhile: nothing to move
            except ChromaCallError as exc:
                if not gone(exc):
                    raise
                return

    def _backfill_from(self, io: Shards, key: CollKey, src: int, old: int, new: int) -> bool:
        """One source shard through the shared mover: only ids whose owner changes, paced
        at `self.rate` records read per second, resumed from its cursor. False: gone."""
        source = io.source(src, key)
        if source is None:
            return False
        prog = self._prog()
        estimate = round((source.count() or 0) * moving_share(src, old, new))
        prog.records_to_move += estimate
        where = f"{key}#{src}"
        moved = 0

        def on_page(stats: MoveStats) -> None:
            nonlocal moved
            prog.records_moved += stats.moved - moved
            moved = stats.moved
            prog.cursors[where] = stats.cursor
            self._report()

        stats = move(
            source,
            OwnerSink(io, key, new),
            predicate=lambda record_id: shard_for(record_id, new) != src,
            cursor=prog.cursors.get(where, 0),
            rate_limit=self.rate,
            on_page=on_page,
            sleep=self._sleep,
        )
        prog.records_to_move += stats.moved - estimate  # the estimate, made exact
        return True

    def _side(
        self, io: Shards, key: CollKey, ids: Iterable[str], count: int, size: int
    ) -> list[RecordBatch] | None:
        """The records `ids`, each read from its owner under `count` shards."""
        groups: dict[int, list[str]] = {}
        for i in ids:
            groups.setdefault(shard_for(i, count), []).append(i)
        out: list[RecordBatch] = []
        for shard, shard_ids in sorted(groups.items()):
            for batch in chunks(sorted(shard_ids), size):
                records = io.fetch(shard, key, batch)
                if records is None:
                    return None
                out.append(records)
        return out

    def verify(self, io: Shards, key: CollKey, model: dict[str, Any], old: int, new: int) -> None:
        """Digests of the moved records equal on old and new owners, repairing until so.

        The whole moved set is digested once on each side (the shared replica digest,
        by direction for cosine collections); ids in differing buckets are then compared
        record by record (read close together) and repaired from the old owner, which
        takes every write until cutover, until a round finds nothing to repair.
        """
        size = io.max_batch()
        mode = mode_for_collection(model)
        prog = self._prog()
        out_ids: set[str] = set()  # on an old owner, owned elsewhere under `new`
        in_ids: set[str] = set()  # on a new owner, owned elsewhere under `old`
        for s in range(max(old, new)):
            ids = io.scan_ids(s, key)
            if ids is None:
                return
            if s < old:
                out_ids.update(i for i in ids if shard_for(i, old) == s != shard_for(i, new))
            if s < new:
                in_ids.update(i for i in ids if shard_for(i, new) == s != shard_for(i, old))
        src = self._side(io, key, out_ids, old, size)
        dst = self._side(io, key, in_ids, new, size)
        if src is None or dst is None:
            return
        differ = set(diff_buckets(digest_records(src, mode=mode), digest_records(dst, mode=mode)))
        suspects = sorted(i for i in out_ids | in_ids if bucket_of(i) in differ)
        prog.records_verified += len(out_ids)
        for _ in range(VERIFY_ROUNDS):
            if not suspects:
                return
            suspects = self.repair(io, key, suspects, old, new, mode)
            self._sleep(self.poll)
        if suspects:
            raise VerifyFailed(
                f"{key}: {len(suspects)} moved records still differ, e.g. {suspects[:3]}"
            )

    def repair(
        self,
        io: Shards,
        key: CollKey,
        ids: list[str],
        old: int,
        new: int,
        mode: EmbeddingMode = "exact",
    ) -> list[str]:
        """Compare `ids` on both sides now; copy (replacing) or delete what differs.
        Returns the ids that differed."""
        size = io.max_batch()
        sink = OwnerSink(io, key, new, replace=True)  # upsert alone would merge metadata
        differ: list[str] = []
        for batch in chunks(ids, size):
            src = self._side(io, key, batch, old, size) or []
            dst = self._side(io, key, batch, new, size) or []
            bad = set(diff_records(src, dst, mode))
            differ.extend(i for i in batch if i in bad)
            held: set[str] = set()
            for records in src:
                part = records.filter(bad.__contains__)
                held.update(part.ids)
                if len(part):
                    sink.write(part)
            for i in sorted(bad - held):
                io.delete(shard_for(i, new), key, [i])
        self._prog().records_repaired += len(differ)
        return differ

    def cleanup(self, io: Shards, key: CollKey, old: int, new: int) -> None:
        """Delete from each remaining shard the copies it no longer owns."""
        size = io.max_batch()
        limiter = RateLimiter(self.rate)
        for s in cleanup_shards(old, new):
            ids = io.scan_ids(s, key)
            if ids is None:
                return
            gone_ids = sorted(i for i in ids if shard_for(i, new) != s)
            for batch in chunks(gone_ids, size):
                limiter.take(len(batch), self._sleep)
                io.delete(s, key, batch)
                self._prog().records_cleaned += len(batch)

    # --- plumbing --------------------------------------------------------------------

    def wait_routers(self, epoch: int) -> None:
        """Until every router reports `epoch` (or later) as applied."""
        while True:
            epochs = self.runtime.router_epochs()
            behind = [e for e in epochs if e is None or e < epoch]
            if not behind:
                self._pause(None)
                return
            self._pause(
                f"waiting for {len(behind)} of {len(epochs)} routers to reach epoch {epoch}"
            )
            if self.stop.wait(self.poll):
                raise MoveStopped

    def _io(self, t: Topology) -> Shards:
        shards = [list(s.endpoints) for s in sorted(t.shards, key=lambda s: s.index)]
        return Shards(shards, self.stop, self._pause)

    def _sleep(self, seconds: float) -> None:
        """The pacing wait: ends early (raising MoveStopped) when the move is stopped."""
        if self.stop.wait(seconds):
            raise MoveStopped

    def _prog(self) -> Progress:
        if self.progress is None:
            p = self.runtime.topology().current_placement()
            self.progress = Progress(p.previous_shards or p.shards, p.shards, p.phase, p.epoch)
        return self.progress

    def _sync_progress(self, p: PlacementTopology) -> None:
        prog = self._prog()
        prog.phase, prog.epoch = p.phase, p.epoch
        if p.previous_shards is not None:
            prog.from_shards, prog.to_shards = p.previous_shards, p.shards

    def _pause(self, why: str | None) -> None:
        prog = self._prog()
        if prog.paused != why:
            prog.paused = why
            self._report(why)

    def _report(self, event: str | None = None) -> None:
        self.runtime.report(self._prog(), event)


def describe(progress: Progress) -> dict[str, Any]:
    return progress.as_status()
