"""The one fan-out: run shard calls in parallel, split replies from transport failures.

Every route that talks to more than one replica goes through `gather`, and then decides
with `require_all` / `require_ok` how failures shape the answer. Transport failures stay
`ShardCallError` until the route wrapper turns them into Chroma's 503 shape, so no route
maps errors itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import TypeVar

from chroma_operator.router.collections import reply_error
from chroma_operator.router.shards import Reply, ShardCallError

K = TypeVar("K")
R = TypeVar("R")


async def gather(
    calls: Mapping[K, Awaitable[R]],
) -> tuple[dict[K, R], dict[K, ShardCallError]]:
    """Await every call; results and transport failures by key. Other errors propagate."""
    keys = list(calls)
    results = await asyncio.gather(*calls.values(), return_exceptions=True)
    ok: dict[K, R] = {}
    failed: dict[K, ShardCallError] = {}
    for key, r in zip(keys, results, strict=True):
        if isinstance(r, ShardCallError):
            failed[key] = r
        elif isinstance(r, BaseException):
            raise r
        else:
            ok[key] = r
    return ok, failed


def require_all(failed: Mapping[K, ShardCallError]) -> None:
    """Any transport failure fails the request (the wrapper answers 503 naming the shard)."""
    for error in failed.values():
        raise error


def require_ok(
    replies: Iterable[Reply], allowed: frozenset[int] = frozenset(), name_shard: bool = True
) -> None:
    """The first shard error answer (other than `allowed` statuses) becomes the client's."""
    for reply in replies:
        if not reply.ok and reply.status not in allowed:
            raise reply_error(reply, f"shard {reply.shard}: " if name_shard else "")


def first_ok(replies: Iterable[Reply]) -> Reply | None:
    return next((r for r in replies if r.ok), None)
