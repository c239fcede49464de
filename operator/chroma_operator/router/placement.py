"""Record placement: which shard owns an id.

Jump consistent hash (Lamping & Veach, 2014) of a stable 64-bit hash of the id: every
router computes the same owner with no shared state, and growing from n to n+1 shards
moves only ~1/(n+1) of the ids. The 64-bit key is the first 8 bytes of sha256(id),
big-endian, as the topology's `hash_scheme` "jump-sha256" promises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

_MASK64 = (1 << 64) - 1
_LCG = 2862933555777941757


def stable_hash(record_id: str) -> int:
    """First 8 bytes of sha256(id utf-8) as an unsigned big-endian integer."""
    return int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big")


def jump_consistent_hash(key: int, num_buckets: int) -> int:
    """Lamping & Veach's jump hash: a bucket in [0, num_buckets)."""
    if num_buckets < 1:
        raise ValueError("num_buckets must be >= 1")
    key &= _MASK64
    b, j = -1, 0
    while j < num_buckets:
        b = j
        key = (key * _LCG + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_for(record_id: str, num_shards: int) -> int:
    """The shard that owns `record_id`."""
    return jump_consistent_hash(stable_hash(record_id), num_shards)


def partition(ids: Sequence[str], num_shards: int) -> dict[int, list[int]]:
    """Positions of `ids` grouped by owning shard, in request order (empty shards left out)."""
    groups: dict[int, list[int]] = {}
    for pos, record_id in enumerate(ids):
        groups.setdefault(shard_for(record_id, num_shards), []).append(pos)
    return groups


def pick(values: Sequence[object] | None, positions: Iterable[int]) -> list[object] | None:
    """`values` restricted to `positions` (None stays None): one shard's slice of a column."""
    if values is None:
        return None
    return [values[p] for p in positions]
