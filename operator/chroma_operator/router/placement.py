"""Record placement: which shard owns an id.

Jump consistent hash (Lamping & Veach, 2014) of a stable 64-bit hash of the id: every
router computes the same owner with no shared state, and growing from n to n+1 shards
moves only ~1/(n+1) of the ids. The 64-bit key is the first 8 bytes of sha256(id),
big-endian, as the topology's `hash_scheme` "jump-sha256" promises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar, overload

from chroma_operator.topology import PlacementTopology

T = TypeVar("T")

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


@overload
def pick(values: None, positions: Iterable[int]) -> None: ...
@overload
def pick(values: Sequence[T], positions: Iterable[int]) -> list[T]: ...
def pick(values: Sequence[T] | None, positions: Iterable[int]) -> list[T] | None:
    """`values` restricted to `positions` (None stays None): one shard's slice of a column."""
    if values is None:
        return None
    return [values[p] for p in positions]


@dataclass(frozen=True)
class Routing:
    """What one placement epoch means for a request: where writes and reads go.

    During a move from N to M shards a record may sit on two shards. Writes go to its
    owner under every count in `write_counts`; reads use `read_shards` and, on the
    `polluted` shards (those that may hold copies they do not own under the read count),
    drop what they do not own, so every id is answered once, by its owner.
    """

    read_shards: int
    write_counts: tuple[int, ...]
    polluted: frozenset[int]
    epoch: int = 0

    @classmethod
    def of(cls, placement: PlacementTopology) -> Routing:
        new, old, phase = placement.shards, placement.previous_shards, placement.phase
        if old is None or phase == "stable" or old == new:
            return cls(new, (new,), frozenset(), placement.epoch)
        if phase in ("dual-write", "backfill", "verify"):
            # Old owners are complete; in a shrink the new owners already hold copies.
            return cls(
                old,
                (old, new),
                frozenset(range(new)) if new < old else frozenset(),
                placement.epoch,
            )
        # cutover and cleanup read the new placement; in a grow the old shards still
        # hold the moved records until cleanup has deleted them.
        writes = (old, new) if phase == "cutover" else (new,)
        polluted = frozenset(range(old)) if old < new else frozenset()
        return cls(new, writes, polluted, placement.epoch)

    @property
    def moving(self) -> bool:
        return len(self.write_counts) > 1 or bool(self.polluted)

    def write_partition(self, ids: Sequence[str]) -> dict[int, list[int]]:
        """Positions of `ids` per shard that must take them (every owner), request order."""
        if len(self.write_counts) == 1:
            return partition(ids, self.write_counts[0])
        groups: dict[int, list[int]] = {}
        for pos, record_id in enumerate(ids):
            key = stable_hash(record_id)
            for shard in {jump_consistent_hash(key, n) for n in self.write_counts}:
                groups.setdefault(shard, []).append(pos)
        return dict(sorted(groups.items()))

    def read_partition(self, ids: Sequence[str]) -> dict[int, list[int]]:
        """Positions of `ids` per owner under the read placement (one shard each)."""
        return partition(ids, self.read_shards)

    def owned(self, shard: int, ids: Sequence[str]) -> list[int] | None:
        """Positions in `ids` (answered by `shard`) that it owns; None: keep them all."""
        if shard not in self.polluted:
            return None
        return [j for j, i in enumerate(ids) if shard_for(str(i), self.read_shards) == shard]
