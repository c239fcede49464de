"""The vectors behind exact search, kept per collection until the next write.

An exact answer (and every recall sample) otherwise makes each shard serialise all of its
embeddings as JSON: seconds of shard CPU on a large collection, once per sample. The
router already numbers each collection's writes (the query cache's generations, bumped
by writes through it or a peer), so the matrix is good until that number moves, and for
at most the query cache's TTL against writes it cannot see. Bounded by bytes (LRU).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SAMPLE_REFETCH_S = 300.0  # a recall sample reloads a collection's vectors at most this often
SAMPLE_MAX_AGE_S = 600.0  # ... and, without writes, uses them this long (the SLI's truth)


class TooSoon(Exception):
    """A recall sample would reload vectors loaded moments ago (writes keep moving)."""


@dataclass(frozen=True)
class Vectors:
    ids: list[str]
    matrix: npt.NDArray[np.float32]
    loaded: float  # monotonic seconds

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes) + 64 * len(self.ids)


class ExactVectors:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_age_s: float = 60.0) -> None:
        self.max_age_s = max_age_s
        self._entries: LRUCache[tuple[str, int], Vectors] = LRUCache(
            maxsize=max(1, max_bytes), getsizeof=lambda v: max(1, v.nbytes)
        )
        self._lock = threading.Lock()
        self._loads: dict[str, float] = {}

    def check_sample_load(self, collection_id: str) -> None:
        """Raise TooSoon when a sample would reload within SAMPLE_REFETCH_S of the last load:
        under steady writes, recall samples must not turn into a full scan each."""
        last = self._loads.get(collection_id)
        if last is not None and time.monotonic() - last < SAMPLE_REFETCH_S:
            raise TooSoon(collection_id)

    def get(
        self, collection_id: str, generation: int, max_age_s: float | None = None
    ) -> Vectors | None:
        with self._lock:
            hit = self._entries.get((collection_id, generation))
        age = self.max_age_s if max_age_s is None else max_age_s
        if hit is None or time.monotonic() - hit.loaded > age:
            return None
        return hit

    def put(
        self, collection_id: str, generation: int, ids: list[str], matrix: npt.NDArray[np.float32]
    ) -> None:
        entry = Vectors(ids, matrix, time.monotonic())
        self._loads[collection_id] = entry.loaded
        if entry.nbytes > self._entries.maxsize:
            return  # larger than the whole budget: not kept
        with self._lock:
            self._entries[(collection_id, generation)] = entry
