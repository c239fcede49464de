"""One order for overlapping writes: what a router sends reaches every replica alike.

A write goes to a shard's replicas in parallel. Two writes of the same id sent at once
(an upsert racing an update, say) could then land in one order on one replica and the
other order on the next, and the replicas would disagree until a repair. So a write
waits for the writes to the same collection on the same shard that came in before it and
touch any of its ids; a write without ids (a delete by filter, a collection modify) waits
for all of them, and all later ones wait for it. Writes on disjoint ids never wait.

The turn ends when the write has been sent live and its hints are kept: by then every
replica has taken it, or holds it in the hint log it replays in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Turn:
    ids: frozenset[str] | None  # None: every id of the collection
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def overlaps(self, other: _Turn) -> bool:
        if self.ids is None or other.ids is None:
            return True
        return not self.ids.isdisjoint(other.ids)


class WriteOrder:
    def __init__(self) -> None:
        self._turns: dict[Hashable, list[_Turn]] = {}

    def waiting(self) -> int:
        """Writes in flight or queued (for tests and the curious)."""
        return sum(len(turns) for turns in self._turns.values())

    @asynccontextmanager
    async def turn(self, key: Hashable, ids: Collection[str] | None) -> AsyncIterator[None]:
        """Held while one write to `key` (a shard's collection) goes out."""
        mine = _Turn(None if ids is None else frozenset(ids))
        turns = self._turns.setdefault(key, [])
        ahead = [t for t in turns if t.overlaps(mine)]
        turns.append(mine)
        try:
            for earlier in ahead:
                await earlier.done.wait()
            yield
        finally:
            mine.done.set()
            turns.remove(mine)
            if not turns and self._turns.get(key) is turns:
                del self._turns[key]
