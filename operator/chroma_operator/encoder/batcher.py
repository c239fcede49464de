"""Dynamic batching: many callers, one forward pass at a time per device.

Callers `submit()` their texts and await their own vectors. Each worker (one per model
replica) waits until `max_batch_size` texts (or the padded-token budget) are queued, or
until the oldest waiting text has waited `max_batch_delay` seconds, then takes a batch,
runs the forward pass in its own thread (the event loop keeps accepting requests, so the
next batch fills while this one computes) and hands each caller exactly its own rows.

Large client batches are split: a job gives at most what fits into the current batch and,
if unfinished, goes to the back of the line, so one 5,000-text `add()` cannot starve the
single-text queries behind it. The queue is bounded in texts; a job that does not fit is
refused at once (`QueueFull` -> HTTP 429), never parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from chroma_operator.api.encoder_spec import Batching

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
EncodeFn = Callable[[Sequence[str]], FloatArray]


class QueueFull(Exception):
    """The queue cannot take these texts now; retry later."""


class BatcherClosed(Exception):
    """The server is shutting down."""


class BackendError(Exception):
    """The forward pass failed; the message is the model's error."""


class BatchObserver(Protocol):
    """Receives one call per forward pass (metrics)."""

    def batch_done(self, size: int, padded_tokens: int, seconds: float) -> None: ...


@dataclass(frozen=True)
class BatchResult:
    """A caller's vectors (row i = text i) and where its time went."""

    vectors: FloatArray
    queue_seconds: float
    inference_seconds: float


@dataclass(eq=False)
class _Job:
    texts: Sequence[str]
    lengths: Sequence[int]
    future: asyncio.Future[BatchResult]
    enqueued: float
    cursor: int = 0
    done: int = 0
    started: float | None = None
    out: FloatArray | None = None
    error: BaseException | None = None

    @property
    def remaining(self) -> int:
        return len(self.texts) - self.cursor


@dataclass
class _Piece:
    job: _Job
    start: int
    stop: int


_SPEC = Batching()
"""Defaults are the ChromaCluster spec's (spec.encoder.batching): one source."""


@dataclass
class BatcherConfig:
    """Knobs of the batching loop; see the CLI for their meaning."""

    max_batch_size: int = 32
    max_batch_tokens: int = 0  # padded tokens (batch size x longest), 0 = no budget
    max_batch_delay: float = _SPEC.max_batch_delay_ms / 1000.0
    max_queue: int = _SPEC.max_queue
    max_input_tokens: int = 512  # lengths are clipped to this (the model truncates)


class Batcher:
    """The queue and its workers. Create anywhere; `start()` inside the running loop."""

    def __init__(
        self,
        encoders: Sequence[EncodeFn],
        config: BatcherConfig,
        observer: BatchObserver | None = None,
    ) -> None:
        if not encoders:
            raise ValueError("at least one encoder is needed")
        if config.max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._encoders = list(encoders)
        self.config = config
        self._observer = observer
        self._jobs: deque[_Job] = deque()
        self._depth = 0
        self._cond: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pools: list[ThreadPoolExecutor] = []
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start one worker (and one forward-pass thread) per encoder."""
        self._cond = asyncio.Condition()
        for i, fn in enumerate(self._encoders):
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"encoder-{i}")
            self._pools.append(pool)
            self._tasks.append(asyncio.create_task(self._worker(fn, pool), name=f"batcher-{i}"))

    async def stop(self) -> None:
        """Stop the workers; jobs still queued fail with `BatcherClosed`."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(BatcherClosed("the encoder is shutting down"))
        self._depth = 0
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)
        self._tasks.clear()
        self._pools.clear()

    @property
    def depth(self) -> int:
        """Texts waiting for a forward pass."""
        return self._depth

    @property
    def alive(self) -> bool:
        """True while every worker runs."""
        return bool(self._tasks) and not self._closed and not any(t.done() for t in self._tasks)

    # -- callers ---------------------------------------------------------------------
    async def submit(self, texts: Sequence[str], lengths: Sequence[int]) -> BatchResult:
        """Queue `texts` (with their token counts) and wait for their vectors."""
        if self._cond is None or self._closed:
            raise BatcherClosed("the encoder is not running")
        n = len(texts)
        if n == 0:
            raise ValueError("no texts")
        if len(lengths) != n:
            raise ValueError("one token count per text is needed")
        if self._depth + n > self.config.max_queue:
            raise QueueFull(
                f"queue full: {self._depth} texts waiting, {n} more would exceed "
                f"the limit of {self.config.max_queue}"
            )
        loop = asyncio.get_running_loop()
        job = _Job(
            texts=texts, lengths=lengths, future=loop.create_future(), enqueued=time.perf_counter()
        )
        self._jobs.append(job)
        self._depth += n
        async with self._cond:
            self._cond.notify_all()
        try:
            return await job.future
        except asyncio.CancelledError:
            # The caller went away: drop what has not started; running pieces finish alone.
            if job in self._jobs:
                self._jobs.remove(job)
                self._depth -= job.remaining
            raise

    # -- workers ---------------------------------------------------------------------
    def _ready(self) -> bool:
        """A full batch is waiting (by count or by padded tokens)."""
        cfg = self.config
        if self._depth >= cfg.max_batch_size:
            return True
        if cfg.max_batch_tokens > 0:
            longest = 0
            count = 0
            for job in self._jobs:
                for length in job.lengths[job.cursor :]:
                    longest = max(longest, min(length, cfg.max_input_tokens))
                    count += 1
                    if count * longest >= cfg.max_batch_tokens:
                        return True
        return False

    async def _next_batch(self) -> list[_Piece]:
        assert self._cond is not None
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._jobs))
            deadline = self._jobs[0].enqueued + self.config.max_batch_delay
            while self._jobs and not self._ready():
                timeout = deadline - time.perf_counter()
                if timeout <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), timeout)
            return self._take()

    def _take(self) -> list[_Piece]:
        """Fill one batch from the head of the line, round-robin over unfinished jobs."""
        cfg = self.config
        pieces: list[_Piece] = []
        count = 0
        longest = 0
        while self._jobs and count < cfg.max_batch_size:
            job = self._jobs[0]
            if job.future.done():  # cancelled by its caller
                self._jobs.popleft()
                self._depth -= job.remaining
                continue
            start = job.cursor
            stop = start
            while stop < len(job.texts) and count < cfg.max_batch_size:
                length = min(job.lengths[stop], cfg.max_input_tokens)
                new_longest = max(longest, length)
                if (
                    cfg.max_batch_tokens > 0
                    and count > 0
                    and (count + 1) * new_longest > cfg.max_batch_tokens
                ):
                    break
                longest = new_longest
                stop += 1
                count += 1
            if stop == start:
                break  # the token budget is spent
            pieces.append(_Piece(job, start, stop))
            job.cursor = stop
            if job.started is None:
                job.started = time.perf_counter()
            self._depth -= stop - start
            self._jobs.popleft()
            if job.remaining:
                self._jobs.append(job)  # back of the line: others get a turn
                break
        return pieces

    async def _worker(self, encode: EncodeFn, pool: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pieces = await self._next_batch()
            if not pieces:
                continue
            texts: list[str] = []
            for p in pieces:
                texts.extend(p.job.texts[p.start : p.stop])
            longest = max(
                min(p.job.lengths[i], self.config.max_input_tokens)
                for p in pieces
                for i in range(p.start, p.stop)
            )
            t0 = time.perf_counter()
            try:
                vectors: FloatArray | None = await loop.run_in_executor(pool, encode, texts)
                error: BaseException | None = None
                if vectors is None or vectors.shape[0] != len(texts):
                    raise BackendError(
                        f"the model returned {getattr(vectors, 'shape', None)} "
                        f"for {len(texts)} texts"
                    )
            except asyncio.CancelledError:
                # Stopping mid-pass: nobody will deliver these rows, so say so.
                for p in pieces:
                    if not p.job.future.done():
                        p.job.future.set_exception(BatcherClosed("the encoder is shutting down"))
                raise
            except Exception as exc:
                log.exception("forward pass over %d texts failed", len(texts))
                vectors, error = None, exc
            seconds = time.perf_counter() - t0
            if self._observer is not None:
                self._observer.batch_done(len(texts), len(texts) * longest, seconds)
            self._deliver(pieces, vectors, error)

    def _deliver(
        self, pieces: list[_Piece], vectors: FloatArray | None, error: BaseException | None
    ) -> None:
        now = time.perf_counter()
        row = 0
        for p in pieces:
            job = p.job
            n = p.stop - p.start
            if vectors is not None:
                if job.out is None:
                    job.out = np.empty((len(job.texts), vectors.shape[1]), dtype=np.float32)
                job.out[p.start : p.stop] = vectors[row : row + n]
            elif job.error is None:
                job.error = error
            row += n
            job.done += n
            if job.future.done():
                continue
            if job.error is not None:
                # Fail fast; drop its unstarted rest from the line.
                if job in self._jobs:
                    self._jobs.remove(job)
                    self._depth -= job.remaining
                job.future.set_exception(BackendError(str(job.error)))
            elif job.done == len(job.texts):
                assert job.out is not None and job.started is not None
                job.future.set_result(
                    BatchResult(
                        vectors=job.out,
                        queue_seconds=job.started - job.enqueued,
                        inference_seconds=now - job.started,
                    )
                )
