"""The record mover: stream a collection's records from a source to a sink.

One loop for every feature that moves records (repair, resharding, backup, restore):
pages of at most the sink's `max_batch_size`, optionally only the ids a predicate selects,
idempotent (sinks upsert), resumable from a cursor (the offset of the scan: records of the
source already scanned), rate-limited in records scanned per second so live traffic keeps
its latency, with counters and an optional rich progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chroma_operator.data.chroma_http import ChromaHTTP, CollectionRef
from chroma_operator.data.records import RecordBatch

Predicate = Callable[[str], bool]


class Source(Protocol):
    """Records in a stable order, readable by offset."""

    def read(self, offset: int, limit: int) -> RecordBatch:
        """Up to `limit` records from `offset`; fewer only at the end."""
        ...

    def count(self) -> int | None:
        """How many records (for the progress bar), None if unknown."""
        ...


class Sink(Protocol):
    """Takes batches of at most `max_batch_size` records; writing twice is harmless."""

    @property
    def max_batch_size(self) -> int: ...

    def write(self, batch: RecordBatch) -> None: ...


class CollectionSource:
    """A collection on one Chroma server (or a router), scanned by offset."""

    def __init__(self, http: ChromaHTTP, ref: CollectionRef) -> None:
        self.http, self.ref = http, ref

    def read(self, offset: int, limit: int) -> RecordBatch:
        return self.http.get(self.ref, offset=offset, limit=limit)

    def count(self) -> int | None:
        return self.http.count(self.ref)


class CollectionSink:
    """Writes into a collection on one Chroma server.

    Chroma's upsert does not overwrite a record: a None document, metadata or uri keeps the
    old value, and metadata keys are merged into the old ones. So `replace=True` (what
    repair needs on a copy that may hold stale records) deletes the page's ids first, then
    upserts; the default (plain upsert) is right for an empty or append-only target.
    Pointed at a router (its client-facing collection id), this is the "router sink": the
    router places each record on the shard that owns it.
    """

    def __init__(self, http: ChromaHTTP, ref: CollectionRef, *, replace: bool = False) -> None:
        self.http, self.ref = http, ref
        self.replace = replace

    @property
    def max_batch_size(self) -> int:
        return self.http.max_batch_size()

    def write(self, batch: RecordBatch) -> None:
        if self.replace:
            self.http.delete(self.ref, batch.ids)
        self.http.upsert(self.ref, batch)


RouterSink = CollectionSink


@dataclass
class MoveStats:
    """Counters of one move; `cursor` is where to resume (records of the source scanned)."""

    cursor: int = 0
    scanned: int = 0
    moved: int = 0
    bytes: int = 0
    pages: int = 0
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0


class RateLimiter:
    """At most `rate` units per second on average (a simple pacing clock)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.start = clock()
        self.done = 0.0

    def take(self, n: int, sleep: Callable[[float], None] = time.sleep) -> None:
        if not self.rate:
            return
        self.done += n
        ahead = self.done / self.rate - (self.clock() - self.start)
        if ahead > 0:
            sleep(ahead)


def move(
    source: Source,
    sink: Sink,
    *,
    predicate: Predicate | None = None,
    cursor: int = 0,
    page_size: int | None = None,
    rate_limit: float | None = None,
    progress: bool = False,
    description: str = "moving",
    on_page: Callable[[MoveStats], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> MoveStats:
    """Copy records from `source` (from offset `cursor`) to `sink`; returns the counters.

    `on_page` sees the counters after each page is written: persist `stats.cursor` there
    to resume after a crash (rewriting a page is harmless: sinks upsert). `sleep` is how
    the rate limit waits (a caller that must stop promptly passes an interruptible wait).
    """
    size = min(page_size or sink.max_batch_size, sink.max_batch_size)
    if size < 1:
        raise ValueError("page size must be >= 1")
    stats = MoveStats(cursor=cursor)
    limiter = RateLimiter(rate_limit)
    started = time.monotonic()
    bar = ProgressBar(progress, description, source.count() if progress else None, cursor)
    try:
        while True:
            batch = source.read(stats.cursor, size)
            n = len(batch)
            if n:
                chosen = batch if predicate is None else batch.filter(predicate)
                if len(chosen):
                    sink.write(chosen)
                    stats.moved += len(chosen)
                    stats.bytes += chosen.nbytes()
                stats.scanned += n
                stats.cursor += n
                stats.pages += 1
                stats.seconds = time.monotonic() - started
                bar.advance(n)
                if on_page is not None:
                    on_page(stats)
                limiter.take(n, sleep)
            if n < size:
                break
    finally:
        bar.close()
    stats.seconds = time.monotonic() - started
    return stats


class ProgressBar:
    """A rich progress bar when asked for (imported lazily: rich is slow to import)."""

    def __init__(self, enabled: bool, description: str, total: int | None, done: int) -> None:
        self.progress = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def delete_ids(http: ChromaHTTP, ref: CollectionRef, ids: list[str]) -> int:
    """Remove `ids` from a collection on one server, in pages (repair and reshard cleanup)."""
    return http.delete(ref, ids)
