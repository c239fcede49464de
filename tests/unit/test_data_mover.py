"""The record mover against in-memory sources and sinks (its loop, not Chroma)."""

from __future__ import annotations

import contextlib

import numpy as np

from chroma_operator.data.mover import MoveStats, RateLimiter, move
from chroma_operator.data.records import RecordBatch
from chroma_operator.router.placement import shard_for


class ListSource:
    def __init__(self, records: RecordBatch) -> None:
        self.records = records
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, limit: int) -> RecordBatch:
        self.reads.append((offset, limit))
        n = len(self.records)
        return self.records.select(range(min(offset, n), min(offset + limit, n)))  # type: ignore[arg-type]

    def count(self) -> int | None:
        return len(self.records)


class ListSink:
    def __init__(self, max_batch_size: int) -> None:
        self._max = max_batch_size
        self.batches: list[RecordBatch] = []

    @property
    def max_batch_size(self) -> int:
        return self._max

    def write(self, batch: RecordBatch) -> None:
        assert len(batch) <= self._max
        self.batches.append(batch)

    def ids(self) -> list[str]:
        return [i for b in self.batches for i in b.ids]


def records(n: int) -> RecordBatch:
    return RecordBatch(
        [f"r{i}" for i in range(n)], np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    )


def test_moves_everything_in_sink_sized_pages() -> None:
    src, sink = ListSource(records(25)), ListSink(10)
    stats = move(src, sink, page_size=50)
    assert sink.ids() == [f"r{i}" for i in range(25)]
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert (stats.scanned, stats.moved, stats.cursor, stats.pages) == (25, 25, 25, 3)
    assert stats.bytes == sum(b.nbytes() for b in sink.batches) > 0


def test_predicate_selects_exactly_its_ids() -> None:
    src, sink = ListSource(records(200)), ListSink(16)
    stats = move(src, sink, predicate=lambda rid: shard_for(rid, 3) == 1)
    expected = [f"r{i}" for i in range(200) if shard_for(f"r{i}", 3) == 1]
    assert sink.ids() == expected and stats.moved == len(expected) and stats.scanned == 200
    got = {
        i: row.tolist() for b in sink.batches for i, row in zip(b.ids, b.embeddings, strict=True)
    }
    assert got[expected[0]] == [2.0 * int(expected[0][1:]), 2.0 * int(expected[0][1:]) + 1]


def test_resumes_from_a_cursor() -> None:
    src = ListSource(records(30))
    seen: list[int] = []

    class Crash(Exception):
        pass

    def crash_after_two(stats: MoveStats) -> None:
        seen.append(stats.cursor)
        if len(seen) == 2:
            raise Crash

    first = ListSink(8)
    with contextlib.suppress(Crash):
        move(src, first, on_page=crash_after_two)
    assert seen == [8, 16]
    second = ListSink(8)
    stats = move(src, second, cursor=seen[-1])
    assert first.ids() + second.ids() == [f"r{i}" for i in range(30)]
    assert stats.cursor == 30 and stats.scanned == 14


def test_rate_limiter_paces_to_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []
    lim = RateLimiter(100.0, clock=lambda: now[0])

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    lim.take(50, sleep)
    lim.take(50, sleep)
    assert now[0] == 1.0
    RateLimiter(None).take(10**9)  # no limit: never sleeps
