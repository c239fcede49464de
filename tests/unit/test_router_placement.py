"""Jump consistent hash: known vectors, balance, and minimal movement."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from chroma_operator.router.placement import (
    jump_consistent_hash,
    partition,
    shard_for,
    stable_hash,
)

# Published vectors shared by the reference implementations of Lamping & Veach's paper.
KNOWN = [
    (1, 1, 0),
    (42, 57, 43),
    (0xDEAD10CC, 1, 0),
    (0xDEAD10CC, 666, 361),
    (256, 1024, 520),
    (1, 128, 55),
    (129, 128, 120),
    (128, 100_000_000, 38_172_097),
    (18446744073709551615, 128, 92),
]

IDS = [f"doc-{i}" for i in range(100_000)]


@pytest.mark.parametrize(("key", "buckets", "expected"), KNOWN)
def test_known_vectors(key: int, buckets: int, expected: int) -> None:
    assert jump_consistent_hash(key, buckets) == expected


def test_stable_hash_is_first_8_bytes_of_sha256_big_endian() -> None:
    digest = hashlib.sha256("héllo".encode()).digest()
    assert stable_hash("héllo") == int.from_bytes(digest[:8], "big")


def test_rejects_zero_buckets() -> None:
    with pytest.raises(ValueError):
        jump_consistent_hash(1, 0)


@pytest.mark.parametrize("shards", [2, 3, 5, 8])
def test_balance_within_5_percent(shards: int) -> None:
    counts = Counter(shard_for(i, shards) for i in IDS)
    expected = len(IDS) / shards
    assert set(counts) == set(range(shards))
    for shard, n in counts.items():
        assert abs(n - expected) / expected <= 0.05, (shard, n, expected)


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_growing_moves_about_one_in_n_plus_1_and_only_to_the_new_shard(shards: int) -> None:
    before = [shard_for(i, shards) for i in IDS]
    after = [shard_for(i, shards + 1) for i in IDS]
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert all(b == shards for _, b in moved)
    fraction = len(moved) / len(IDS)
    assert abs(fraction - 1 / (shards + 1)) <= 0.01, fraction


def test_partition_keeps_request_order_and_covers_every_id() -> None:
    ids = [f"x{i}" for i in range(1000)]
    groups = partition(ids, 3)
    assert sorted(p for ps in groups.values() for p in ps) == list(range(1000))
    for shard, positions in groups.items():
        assert positions == sorted(positions)
        assert all(shard_for(ids[p], 3) == shard for p in positions)
