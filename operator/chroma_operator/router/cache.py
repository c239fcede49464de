"""Query-result cache with per-collection write generations.

The key holds the collection's current write generation, so a write (here or on a peer
that tells us) makes every older entry unreachable at once, without scanning; stale entries
then age out through the TTL or the LRU bound. A query that started before a write and
finishes after it stores its answer under the old generation, where no one looks.
"""

from __future__ import annotations

import threading
from typing import Any

from cachetools import TTLCache

CacheKey = tuple[str, int, bytes]


class QueryCache:
    def __init__(self, max_entries: int, ttl_seconds: float, enabled: bool = True) -> None:
        self.enabled = enabled and max_entries > 0 and ttl_seconds > 0
        self._entries: TTLCache[CacheKey, Any] = TTLCache(
            maxsize=max(1, max_entries), ttl=max(ttl_seconds, 1e-6)
        )
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def generation(self, collection_id: str) -> int:
        return self._generations.get(collection_id, 0)

    def key(
        self, collection_id: str, canonical_request: bytes, generation: int | None = None
    ) -> CacheKey:
        """The key under the collection's current generation, or under `generation` (the
        one a request started with, when the key is made after its answer)."""
        if generation is None:
            generation = self.generation(collection_id)
        return (collection_id, generation, canonical_request)

    def get(self, key: CacheKey) -> Any | None:
        if not self.enabled:
            return None
        with self._lock:
            return self._entries.get(key)

    def put(self, key: CacheKey, value: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = value

    def invalidate(self, collection_id: str) -> None:
        """Bump the collection's generation: every cached answer for it is now unreachable."""
        with self._lock:
            self._generations[collection_id] = self._generations.get(collection_id, 0) + 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
