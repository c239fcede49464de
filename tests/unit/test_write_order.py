"""WriteOrder: overlapping writes take turns in arrival order, disjoint ones do not wait."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from chroma_operator.router.write_order import WriteOrder


async def _write(
    order: WriteOrder,
    key: str,
    ids: Collection[str] | None,
    name: str,
    log: list[str],
    release: asyncio.Event,
) -> None:
    async with order.turn(key, ids):
        log.append(f"{name} start")
        await release.wait()
        log.append(f"{name} end")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_overlapping_ids_wait_and_disjoint_ids_do_not() -> None:
    async def main() -> list[str]:
        order, log = WriteOrder(), []
        first, second, third = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(_write(order, "c", ["a", "b"], "w1", log, first)),
            asyncio.create_task(_write(order, "c", ["b"], "w2", log, second)),
            asyncio.create_task(_write(order, "c", ["z"], "w3", log, third)),
        ]
        await _settle()
        assert log == ["w1 start", "w3 start"]  # w2 shares "b" with w1
        second.set()
        third.set()
        await _settle()
        assert "w2 start" not in log
        first.set()
        await asyncio.gather(*tasks)
        assert order.waiting() == 0
        return log

    log = asyncio.run(main())
    assert log.index("w1 end") < log.index("w2 start")


def test_a_write_without_ids_waits_for_all_and_all_later_wait_for_it() -> None:
    async def main() -> list[str]:
        order, log = WriteOrder(), []
        events = [asyncio.Event() for _ in range(3)]
        tasks = [
            asyncio.create_task(_write(order, "c", ["a"], "w1", log, events[0])),
            asyncio.create_task(_write(order, "c", None, "filter", log, events[1])),
            asyncio.create_task(_write(order, "c", ["q"], "w3", log, events[2])),
            asyncio.create_task(_write(order, "other", None, "elsewhere", log, events[2])),
        ]
        await _settle()
        assert log == ["w1 start", "elsewhere start"]  # another collection never waits
        for e in events:
            e.set()
        await asyncio.gather(*tasks)
        return log

    log = asyncio.run(main())
    assert log.index("w1 end") < log.index("filter start") < log.index("filter end")
    assert log.index("filter end") < log.index("w3 start")


def test_a_cancelled_write_lets_the_next_one_go() -> None:
    async def main() -> list[str]:
        order, log = WriteOrder(), []
        hold, go = asyncio.Event(), asyncio.Event()
        go.set()
        first = asyncio.create_task(_write(order, "c", ["a"], "w1", log, hold))
        second = asyncio.create_task(_write(order, "c", ["a"], "w2", log, go))
        await _settle()
        first.cancel()  # e.g. its client went away mid-write
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 5)
        assert order.waiting() == 0
        return log

    assert asyncio.run(main()) == ["w1 start", "w2 start", "w2 end"]
