"""How long a write waits for its last replicas once enough of them took it.

A write stands once `min_acks` replicas took it; the others get it as a hint if they miss
it. Waiting for a hung replica until the shard timeout (10 s by default) made the first
writes after a hang stall that long, every writer at once. So once `min_acks` replicas
took a write, the rest get a grace period of `GRACE_FACTOR` x the shard's recent write
p95 (at least `GRACE_MIN_S`); a replica still silent then has missed the write: the call
is cancelled, the replica is stale and the write goes to its hint log, as for a timeout.
Until a shard has `MIN_SAMPLES` recent writes there is no p95, and the shard timeout is
the only bound (as before).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from chroma_operator.router.hedge import LatencyWindow
from chroma_operator.router.shards import Reply

GRACE_FACTOR = 4.0
GRACE_MIN_S = 2.0


class WriteLatencies:
    """Each shard's recent live write latencies (a replica that took the write)."""

    def __init__(self) -> None:
        self._windows: dict[int, LatencyWindow] = {}

    def add(self, shard: int, seconds: float) -> None:
        self._windows.setdefault(shard, LatencyWindow()).add(seconds)

    def grace(self, shard: int) -> float | None:
        """Seconds the last replicas get after enough took a write; None: no p95 yet."""
        window = self._windows.get(shard)
        p95 = window.p95(0.0) if window is not None else None
        return None if p95 is None else max(GRACE_MIN_S, GRACE_FACTOR * p95)


def took(outcome: Reply | BaseException) -> bool:
    return isinstance(outcome, Reply) and outcome.status < 500


async def live_with_grace(
    calls: list[Awaitable[Reply]],
    need: int,
    grace: float | None,
    on_took: Callable[[float], None],
) -> list[Reply | BaseException | None]:
    """Each call's reply or exception, in order; None for a call still out `grace`
    seconds after `need` calls took the write (it is cancelled). `on_took` hears how
    long each call that took it ran."""
    start = time.perf_counter()

    async def timed(call: Awaitable[Reply]) -> Reply:
        reply = await call
        if took(reply):
            on_took(time.perf_counter() - start)
        return reply

    tasks = [asyncio.ensure_future(timed(c)) for c in calls]
    pending = set(tasks)
    taken = 0
    deadline: float | None = None
    loop = asyncio.get_running_loop()
    try:
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            done, pending = await asyncio.wait(
                pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break  # the grace period is over
            taken += sum(1 for t in done if took(_outcome(t)))
            if deadline is None and grace is not None and taken >= need:
                deadline = loop.time() + grace
    finally:
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return [None if t in pending else _outcome(t) for t in tasks]


def _outcome(task: asyncio.Future[Reply]) -> Reply | BaseException:
    """A finished call's reply or exception (calls are only cancelled while pending)."""
    return task.exception() or task.result()
