"""live_with_grace: once enough replicas took a write, the rest get a grace period."""

from __future__ import annotations

import asyncio
import time

import pytest

from chroma_operator.router.shards import Reply
from chroma_operator.router.stragglers import GRACE_MIN_S, WriteLatencies, live_with_grace


async def answer(status: int, after: float, cancelled: list[int] | None = None) -> Reply:
    try:
        await asyncio.sleep(after)
    except asyncio.CancelledError:
        if cancelled is not None:
            cancelled.append(status)
        raise
    return Reply(0, f"r{status}", status, b"{}")


def test_a_silent_replica_is_cut_off_after_the_grace_period() -> None:
    cancelled: list[int] = []
    heard: list[float] = []

    async def main() -> list[Reply | BaseException | None]:
        return await live_with_grace(
            [answer(200, 0.0), answer(201, 30.0, cancelled)], 1, 0.05, heard.append
        )

    start = time.monotonic()
    outcomes = asyncio.run(main())
    assert time.monotonic() - start < 5
    assert isinstance(outcomes[0], Reply) and outcomes[1] is None
    assert cancelled == [201] and len(heard) == 1


@pytest.mark.parametrize(
    ("first_status", "need", "grace"),
    [
        (200, 1, None),  # no p95 yet
        (200, 2, 0.01),  # min_acks 2: the second is needed
        (503, 1, 0.01),  # a 5xx did not take the write: the grace has not started
    ],
)
def test_without_a_grace_or_enough_acks_every_replica_is_waited_for(
    first_status: int, need: int, grace: float | None
) -> None:
    async def main() -> list[Reply | BaseException | None]:
        calls = [answer(first_status, 0.0), answer(200, 0.2)]
        return await live_with_grace(calls, need, grace, lambda s: None)

    assert all(isinstance(o, Reply) for o in asyncio.run(main()))


def test_exceptions_come_back_in_order() -> None:
    async def fails() -> Reply:
        raise RuntimeError("refused")

    async def main() -> list[Reply | BaseException | None]:
        return await live_with_grace([fails(), answer(200, 0.0)], 1, 1.0, lambda s: None)

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[0], RuntimeError) and isinstance(outcomes[1], Reply)


def test_the_grace_is_four_times_the_write_p95_and_never_below_the_floor() -> None:
    latencies = WriteLatencies()
    assert latencies.grace(0) is None
    for _ in range(19):
        latencies.add(0, 1.0)
    assert latencies.grace(0) is None  # too few writes to say what slow is
    latencies.add(0, 1.0)
    assert latencies.grace(0) == 4.0
    for _ in range(128):
        latencies.add(1, 0.01)
    assert latencies.grace(1) == GRACE_MIN_S
