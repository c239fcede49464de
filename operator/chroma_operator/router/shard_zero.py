"""Shard 0's primary (its first replica, whose collection ids clients see) and its
siblings: who to ask about a collection while the primary is away or hung."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from chroma_operator.router.shards import ShardCallError, ShardPool

# A primary this slow to say what a collection is (it answers in milliseconds) is
# probably hung: an in-sync sibling is asked too, and the first usable answer wins.
PRIMARY_WAIT_S = 1.0


def siblings(pool: ShardPool) -> list[str]:
    """Shard 0's replicas other than the primary: where the collection id entries live."""
    return [ep for ep in pool.shards[0] if ep != pool.primary]


def readable_siblings(pool: ShardPool) -> list[str]:
    """The in-sync siblings, in the pool's read order (one that lost a hedge last)."""
    return [ep for ep in pool.readable(0) if ep != pool.primary]


def primary_usable(pool: ShardPool) -> bool:
    """False while the primary is held for a repair or fenced: it may lack collections."""
    book = pool.book
    rep = book.get(pool.primary) if book is not None else None
    return rep is None or book is None or book.state(rep) not in ("repairing", "fenced")


async def sibling_call(
    pool: ShardPool,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The same call to shard 0's in-sync siblings in turn: the first answer (a `Reply`),
    or None when none answered."""
    for ep in readable_siblings(pool):
        try:
            return await pool.call(0, ep, method, path, params=params, headers=headers)
        except ShardCallError:
            continue
    return None


async def primary_first(
    primary: Callable[[], Awaitable[Any]],
    sibling: Callable[[], Awaitable[Any]],
    pool: ShardPool,
) -> tuple[Any, bool]:
    """The primary's answer, else the sibling's; and whether the primary gave it.

    The sibling is asked when the primary is held for a repair, fails at the transport,
    or has not answered in `PRIMARY_WAIT_S`; then the first usable answer wins. A sibling
    that cannot say (None: no entry yet) leaves the primary's answer or failure standing.
    """
    if not primary_usable(pool):
        found = await sibling()
        if found is None:
            raise ShardCallError(0, pool.primary, "held for a repair")
        return found, False
    first: asyncio.Future[Any] = asyncio.ensure_future(primary())
    done, _ = await asyncio.wait({first}, timeout=PRIMARY_WAIT_S)
    if done and not isinstance(first.exception(), ShardCallError):
        return first.result(), True
    second: asyncio.Future[Any] = asyncio.ensure_future(sibling())
    pending: set[asyncio.Future[Any]] = {first, second} - done
    try:
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if first in finished and not isinstance(first.exception(), ShardCallError):
                return first.result(), True
            if second in finished and second.exception() is None:
                found = second.result()
                if found is not None:
                    return found, False
        return first.result(), True  # both done, neither usable: the primary's failure
    finally:
        for task in (first, second):
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the other answer won
            task.cancel()
