"""The batching queue: a real tiny encoder for the queue logic, the real model at the end.

The tiny encoder maps text "t<N>" to the row [N, N, N, N] and records every batch it was
given, so each test can check both what callers got and how the work was grouped.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from chroma_operator.encoder.batcher import (
    BackendError,
    Batcher,
    BatcherClosed,
    BatcherConfig,
    QueueFull,
)


class Recorder:
    """A real (tiny) encoder: deterministic vectors, and a log of the batches it ran."""

    def __init__(self, seconds: float = 0.0, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.seconds = seconds
        self.gate = gate

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(10)
        if any(t == "boom" for t in texts):
            raise RuntimeError("the model exploded")
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.seconds:
            time.sleep(self.seconds)
        return np.asarray([[float(t[1:])] * 4 for t in texts], dtype=np.float32)


def texts(start: int, n: int) -> list[str]:
    return [f"t{i}" for i in range(start, start + n)]


async def started(enc: Recorder | list[Recorder], **cfg: float) -> Batcher:
    encoders = enc if isinstance(enc, list) else [enc]
    b = Batcher(encoders, BatcherConfig(**cfg))  # type: ignore[arg-type]
    b.start()
    return b


async def test_each_caller_gets_exactly_its_own_rows() -> None:
    rec = Recorder()
    b = await started(rec, max_batch_size=16, max_batch_delay=0.01)
    sizes = [1, 3, 1, 7, 20, 1, 2, 40, 1, 5] * 3
    starts = np.cumsum([0, *sizes])[:-1]
    jobs = [texts(int(s), n) for s, n in zip(starts, sizes, strict=True)]
    results = await asyncio.gather(*(b.submit(j, [3] * len(j)) for j in jobs))
    for job, res in zip(jobs, results, strict=True):
        expected = np.asarray([[float(t[1:])] * 4 for t in job], dtype=np.float32)
        np.testing.assert_array_equal(res.vectors, expected)
    assert all(len(batch) <= 16 for batch in rec.batches)
    assert sum(len(batch) for batch in rec.batches) == sum(sizes)
    assert b.depth == 0
    await b.stop()


async def test_concurrent_single_texts_share_one_forward_pass() -> None:
    rec = Recorder()
    b = await started(rec, max_batch_size=32, max_batch_delay=0.05)
    await asyncio.gather(*(b.submit([f"t{i}"], [3]) for i in range(10)))
    assert [len(x) for x in rec.batches] == [10]
    await b.stop()


async def test_delay_bounds_the_wait_and_a_full_batch_does_not_wait() -> None:
    rec = Recorder()
    b = await started(rec, max_batch_size=8, max_batch_delay=0.5)
    t0 = time.perf_counter()
    res = await b.submit(["t1"], [3])
    waited = time.perf_counter() - t0
    assert 0.45 <= waited < 2.0 and res.queue_seconds >= 0.45  # lonely text: waits the delay
    t0 = time.perf_counter()
    await b.submit(texts(0, 8), [3] * 8)
    assert time.perf_counter() - t0 < 0.3  # a full batch goes at once, not after 0.5 s
    await b.stop()


async def test_large_client_batch_is_split_and_reassembled_in_order() -> None:
    rec = Recorder()
    b = await started(rec, max_batch_size=32, max_batch_delay=0.0)
    job = texts(1000, 5461)
    res = await b.submit(job, [4] * len(job))
    assert res.vectors.shape == (5461, 4)
    np.testing.assert_array_equal(res.vectors[:, 0], np.arange(1000, 6461, dtype=np.float32))
    assert max(len(x) for x in rec.batches) == 32
    assert len(rec.batches) == -(-5461 // 32)
    await b.stop()


async def test_a_big_job_does_not_starve_small_ones() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    b = await started(rec, max_batch_size=10, max_batch_delay=0.0)
    big = asyncio.create_task(b.submit(texts(0, 200), [3] * 200))
    await asyncio.sleep(0.05)  # the worker holds the big job's first 10 texts
    small = asyncio.create_task(b.submit(["t9999"], [3]))
    await asyncio.sleep(0.01)
    gate.set()
    assert (await small).vectors[0, 0] == 9999
    # Round robin: the big job re-queues behind the small one after each piece, so the small
    # one rides in the third forward pass (after the held one and the big job's next turn)
    # instead of after all 20 of the big job's pieces.
    assert rec.batches[2][0] == "t9999"
    assert len(rec.batches[2]) == 10  # the rest of that pass is the big job again
    assert (await big).vectors.shape == (200, 4)
    await b.stop()


async def test_full_queue_refuses_at_once() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    b = await started(rec, max_batch_size=2, max_batch_delay=0.0, max_queue=4)
    first = asyncio.create_task(b.submit(texts(0, 2), [3, 3]))  # taken by the worker
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(b.submit(texts(10, 4), [3] * 4))  # fills the queue
    await asyncio.sleep(0.01)
    assert b.depth == 4
    t0 = time.perf_counter()
    with pytest.raises(QueueFull, match="queue full"):
        await b.submit(["t99"], [3])
    assert time.perf_counter() - t0 < 0.2
    gate.set()
    await asyncio.gather(first, queued)
    assert (await b.submit(["t99"], [3])).vectors[0, 0] == 99  # room again
    await b.stop()


async def test_padded_token_budget_limits_a_batch() -> None:
    rec = Recorder()
    b = await started(
        rec, max_batch_size=100, max_batch_tokens=40, max_batch_delay=0.0, max_input_tokens=512
    )
    await b.submit(texts(0, 8), [10] * 8)
    assert [len(x) for x in rec.batches] == [4, 4]  # 4 x 10 padded tokens each
    rec.batches.clear()
    await b.submit(texts(0, 3), [30, 5, 5])
    assert [len(x) for x in rec.batches] == [1, 2]  # 30 alone; 2 x 5 next
    rec.batches.clear()
    await b.submit(["t1"], [1000])  # longer than the budget alone: still runs (clipped)
    assert rec.batches == [["t1"]]
    await b.stop()


async def test_backend_error_fails_only_its_callers_and_the_worker_lives() -> None:
    rec = Recorder()
    b = await started(rec, max_batch_size=4, max_batch_delay=0.0)
    with pytest.raises(BackendError, match="exploded"):
        await b.submit(["boom"], [3])
    assert b.alive
    assert (await b.submit(["t5"], [3])).vectors[0, 0] == 5
    await b.stop()


async def test_one_worker_per_device_all_used() -> None:
    recs = [Recorder(seconds=0.02), Recorder(seconds=0.02)]
    b = await started(recs, max_batch_size=4, max_batch_delay=0.0)
    jobs = [texts(i * 4, 4) for i in range(10)]
    results = await asyncio.gather(*(b.submit(j, [3] * 4) for j in jobs))
    for job, res in zip(jobs, results, strict=True):
        assert res.vectors[:, 0].tolist() == [float(t[1:]) for t in job]
    assert all(r.batches for r in recs)  # both replicas took batches
    assert recs[0].threads.isdisjoint(recs[1].threads)  # each in its own thread
    await b.stop()


async def test_cancelled_caller_is_dropped_from_the_queue() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    b = await started(rec, max_batch_size=2, max_batch_delay=0.0)
    first = asyncio.create_task(b.submit(texts(0, 2), [3, 3]))
    await asyncio.sleep(0.05)
    gone = asyncio.create_task(b.submit(["t77"], [3]))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    assert b.depth == 0
    gate.set()
    await first
    await b.submit(["t5"], [3])
    assert all("t77" not in batch for batch in rec.batches)
    await b.stop()


async def test_stop_fails_waiting_callers() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    b = await started(rec, max_batch_size=1, max_batch_delay=0.0)
    running = asyncio.create_task(b.submit(["t1"], [3]))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(b.submit(["t2"], [3]))
    await asyncio.sleep(0.01)
    await b.stop()
    gate.set()
    for caller in (waiting, running):  # queued, and mid-forward-pass: neither hangs
        with pytest.raises(BatcherClosed):
            await asyncio.wait_for(caller, 5)
    with pytest.raises(BatcherClosed):
        await b.submit(["t3"], [3])


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        Batcher([], BatcherConfig())
    with pytest.raises(ValueError):
        Batcher([Recorder()], BatcherConfig(max_batch_size=0))


@pytest.mark.slow
async def test_real_model_batched_equals_direct_encode() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from chroma_operator.encoder.model import load_encoders

    (enc,) = load_encoders("sentence-transformers/all-MiniLM-L6-v2", "cpu", "auto", threads=2)
    b = Batcher([enc.encode], BatcherConfig(max_batch_size=8, max_batch_delay=0.01))
    b.start()
    groups = [[f"sentence number {i} about topic {i % 5}"] * (1 + i % 3) for i in range(20)]
    groups = [[f"{t} variant {j}" for j, t in enumerate(g)] for g in groups]
    results = await asyncio.gather(*(b.submit(g, enc.tokenizer.count(g)) for g in groups))
    for g, res in zip(groups, results, strict=True):
        direct = enc.encode(g)
        cos = (res.vectors * direct).sum(1) / (
            np.linalg.norm(res.vectors, axis=1) * np.linalg.norm(direct, axis=1)
        )
        assert cos.min() >= 0.9999
    await b.stop()
