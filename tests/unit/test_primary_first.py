"""Which answer a collection lookup takes when the primary is slow, fails or is held
(`router/shard_zero.primary_first`), with plain coroutines in place of the calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chroma_operator.router import shard_zero
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.replicas import ReplicaBook
from chroma_operator.router.shard_zero import primary_first
from chroma_operator.router.shards import ShardCallError, ShardPool
from router_harness import make_topology

PRIMARY, SIBLING = "http://127.0.0.1:1", "http://127.0.0.1:2"


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> ShardPool:
    monkeypatch.setattr(shard_zero, "PRIMARY_WAIT_S", 0.05)
    topology = make_topology([[PRIMARY, SIBLING]])
    return ShardPool(topology, RouterMetrics(), ReplicaBook(topology))


def answer(value: Any, after: float = 0.0) -> Any:
    async def call() -> Any:
        await asyncio.sleep(after)
        if isinstance(value, BaseException):
            raise value
        return value

    return call


REFUSED = ShardCallError(0, PRIMARY, "cannot connect", True)


async def test_a_prompt_primary_answers_alone(pool: ShardPool) -> None:
    asked: list[str] = []

    async def sibling() -> str:
        asked.append("sibling")
        return "sibling"

    assert await primary_first(answer("primary"), sibling, pool) == ("primary", True)
    assert asked == []


async def test_a_refusing_primary_gives_way_to_the_sibling(pool: ShardPool) -> None:
    assert await primary_first(answer(REFUSED), answer("sibling"), pool) == ("sibling", False)


async def test_a_slow_primary_loses_to_the_sibling(pool: ShardPool) -> None:
    got = await primary_first(answer("primary", after=5), answer("sibling"), pool)
    assert got == ("sibling", False)


async def test_a_sibling_that_cannot_say_leaves_the_slow_primary_standing(
    pool: ShardPool,
) -> None:
    got = await primary_first(answer("primary", after=0.2), answer(None), pool)
    assert got == ("primary", True)


async def test_with_no_usable_answer_the_primarys_failure_stands(pool: ShardPool) -> None:
    with pytest.raises(ShardCallError) as failed:
        await primary_first(answer(REFUSED), answer(None), pool)
    assert failed.value is REFUSED


async def test_an_error_that_is_not_the_transport_is_the_primarys_answer(
    pool: ShardPool,
) -> None:
    with pytest.raises(KeyError):
        await primary_first(answer(KeyError("bug")), answer("sibling"), pool)


async def test_a_primary_held_for_a_repair_is_not_asked(pool: ShardPool) -> None:
    rep = pool.book.get(PRIMARY) if pool.book is not None else None
    assert rep is not None
    rep.mark_repair()

    async def primary() -> str:
        raise AssertionError("the held primary was asked")

    assert await primary_first(primary, answer("sibling"), pool) == ("sibling", False)
    with pytest.raises(ShardCallError, match="held for a repair"):
        await primary_first(primary, answer(None), pool)
