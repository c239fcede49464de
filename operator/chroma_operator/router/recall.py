"""Recall as a measured SLI: re-run a sample of live queries exactly, off the request path.

For a sampled query the router has already answered, a background task asks the same
question in exact mode and counts how many of the exact top-k the client's answer held.
Counters per collection (`relevant`, `missed`) make recall@k a ratio Prometheus can window
like any other SLI (error ratio = missed / relevant). A token bucket and one task at a
time bound the extra load; samples that do not fit are counted as skipped, not queued.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from chroma_operator.router.errors import ChromaHTTPError
from chroma_operator.router.exact import recall_at_k
from chroma_operator.router.exact_cache import TooSoon
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.shards import ShardCallError

log = logging.getLogger("chroma_operator.router.recall")

ExactRun = Callable[[], Awaitable[dict[str, Any]]]


class RecallSampler:
    def __init__(
        self,
        metrics: RouterMetrics,
        rate: float,
        k: int,
        max_per_second: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.metrics = metrics
        self.rate = rate
        self.k = k
        self.max_per_second = max_per_second
        self._rng = rng or random.Random()
        self._tokens = max(1.0, max_per_second)
        self._last = time.monotonic()
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _take_token(self) -> bool:
        now = time.monotonic()
        burst = max(1.0, self.max_per_second)
        self._tokens = min(burst, self._tokens + (now - self._last) * self.max_per_second)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def maybe_sample(
        self,
        collection: str,
        n_results: int,
        answer_ids: Callable[[], list[list[str]]],
        run: ExactRun,
    ) -> None:
        """Schedule one exact re-run with probability `rate` (never blocks the caller)."""
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return
        if self._busy or not self._take_token():
            self.metrics.recall_skipped.labels("rate_limited").inc()
            return
        self._busy = True
        task = asyncio.ensure_future(self._measure(collection, n_results, answer_ids(), run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _measure(
        self, collection: str, n_results: int, got: Sequence[Sequence[str]], run: ExactRun
    ) -> None:
        try:
            exact = await run()
        except ChromaHTTPError as exc:
            reason = "too_large" if exc.status == 400 else "error"
            self.metrics.recall_skipped.labels(reason).inc()
            return
        except ShardCallError:
            self.metrics.recall_skipped.labels("error").inc()
            return
        except TooSoon:
            self.metrics.recall_skipped.labels("write_churn").inc()
            return
        except Exception:
            log.exception("recall sample failed")
            self.metrics.recall_skipped.labels("error").inc()
            return
        finally:
            self._busy = False
        self.record(collection, min(n_results, self.k), got, exact["ids"])

    def record(
        self,
        collection: str,
        k: int,
        got: Sequence[Sequence[str]],
        truth: Sequence[Sequence[str]],
    ) -> None:
        """Count one sampled query's recall@k (one observation per query embedding)."""
        for answer, exact_ids in zip(got, truth, strict=False):
            hits, relevant = recall_at_k(list(answer), list(exact_ids), k)
            if relevant == 0:
                continue
            self.metrics.recall_relevant.labels(collection).inc(relevant)
            self.metrics.recall_missed.labels(collection).inc(relevant - hits)
            self.metrics.recall.labels(collection).observe(hits / relevant)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
