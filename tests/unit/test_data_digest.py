"""Replica digests and record batches: the pure parts."""

from __future__ import annotations

import base64
import random

import numpy as np
import pytest

from chroma_operator.data.digest import (
    DEFAULT_BUCKETS,
    Digest,
    bucket_of,
    diff_buckets,
    digest_records,
    fetch_buckets,
    record_hash,
)
from chroma_operator.data.records import RecordBatch, canonical_metadata


def batch(n: int, seed: int = 0, dim: int = 4, prefix: str = "id") -> RecordBatch:
    rng = np.random.default_rng(seed)
    return RecordBatch(
        [f"{prefix}{i}" for i in range(n)],
        rng.random((n, dim), dtype=np.float32),
        [f"doc {i}" if i % 3 else None for i in range(n)],
        [{"i": i, "tag": "x"} if i % 2 else None for i in range(n)],
        [f"s3://b/{i}" if i % 5 == 0 else None for i in range(n)],
    )


def test_bucket_is_a_pure_function_in_range() -> None:
    assert bucket_of("abc") == bucket_of("abc")
    assert all(0 <= bucket_of(f"x{i}") < DEFAULT_BUCKETS for i in range(2000))
    assert all(0 <= bucket_of(f"x{i}", 7) < 7 for i in range(200))
    # Spread: 20k ids over 1,024 buckets leave none empty.
    seen = {bucket_of(f"r{i}") for i in range(20_000)}
    assert len(seen) == DEFAULT_BUCKETS


def test_record_hash_sees_every_field() -> None:
    emb = np.array([0.1, 0.2], dtype=np.float32)
    base = record_hash("a", emb, "doc", {"k": 1}, "u")
    assert record_hash("a", emb.copy(), "doc", {"k": 1}, "u") == base
    changed = [
        record_hash("b", emb, "doc", {"k": 1}, "u"),
        record_hash("a", np.array([0.1, 0.3], dtype=np.float32), "doc", {"k": 1}, "u"),
        record_hash("a", emb, "doc2", {"k": 1}, "u"),
        record_hash("a", emb, None, {"k": 1}, "u"),
        record_hash("a", emb, "", {"k": 1}, "u"),
        record_hash("a", emb, "doc", {"k": 2}, "u"),
        record_hash("a", emb, "doc", {"k": 1.0}, "u"),
        record_hash("a", emb, "doc", None, "u"),
        record_hash("a", emb, "doc", {"k": 1}, None),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)
    # Fields are length-prefixed: moving bytes between fields changes the hash.
    assert record_hash("a", emb, "bc", None, None) != record_hash("a", emb, "b", None, "c")


def test_metadata_is_canonical() -> None:
    assert canonical_metadata({"b": 1, "a": [1, 2]}) == canonical_metadata({"a": [1, 2], "b": 1})
    assert canonical_metadata({}) is None and canonical_metadata(None) is None
    emb = np.zeros(2, dtype=np.float32)
    assert record_hash("a", emb, None, {}, None) == record_hash("a", emb, None, None, None)


def test_digest_is_order_independent_and_mergeable() -> None:
    b = batch(300)
    order = list(range(300))
    random.Random(1).shuffle(order)
    shuffled = b.select(order)
    d1 = digest_records([b])
    d2 = digest_records(shuffled.slices(7))
    assert d1 == d2 and d1.count == 300
    # The union of two disjoint halves (two shards) is the whole.
    left = digest_records([b.select(range(0, 120))])  # type: ignore[arg-type]
    right = digest_records([b.select(range(120, 300))])  # type: ignore[arg-type]
    assert left.merge(right) == d1


def test_diff_names_exactly_the_changed_buckets() -> None:
    b = batch(500)
    before = digest_records([b])
    edited = b.select(range(500))  # type: ignore[arg-type]
    edited.documents = list(edited.documents)
    edited.documents[10] = "changed"
    dropped = edited.select([i for i in range(500) if i != 20])
    extra = batch(1, seed=9, prefix="new")
    after = digest_records([dropped, extra])
    expected = sorted({bucket_of("id10"), bucket_of("id20"), bucket_of("new0")})
    assert diff_buckets(before, after) == expected
    assert before.diff(before) == []
    # Fetching those buckets from the edited stream yields only their records.
    got = [rid for x in fetch_buckets([dropped, extra], expected) for rid in x.ids]
    assert {bucket_of(r) for r in got} <= set(expected)
    assert {"id10", "new0"} <= set(got) and "id20" not in got


def test_digest_json_round_trip_and_bucket_mismatch() -> None:
    d = digest_records([batch(50)], buckets=16)
    data = d.to_json()
    assert len(data["sums"]) == 16 and all(len(s) == 32 for s in data["sums"])
    assert Digest.from_json(data) == d
    with pytest.raises(ValueError, match="buckets"):
        diff_buckets(d, Digest(32))


def test_record_batch_from_get_and_write_body() -> None:
    body = {
        "ids": ["a", "b"],
        "embeddings": [[0.10000001, 0.2], [1.0, 2.5]],
        "documents": ["d", None],
        "metadatas": [{"k": 1}, {}],
        "uris": [None, "u"],
    }
    b = RecordBatch.from_get(body)
    assert b.metadatas == [{"k": 1}, None]
    assert b.embeddings.dtype == np.float32 and b.embeddings.shape == (2, 2)
    w = b.to_write_body(base64_embeddings=True)
    raw = np.frombuffer(base64.b64decode(w["embeddings"][1]), dtype="<f4")
    assert raw.tolist() == [1.0, 2.5]
    assert w["documents"] == ["d", None] and w["uris"] == [None, "u"]
    plain = RecordBatch(["x"], np.ones((1, 2), dtype=np.float32)).to_write_body()
    assert plain == {"ids": ["x"], "embeddings": [[1.0, 1.0]]}
    assert len(RecordBatch.from_get({"ids": [], "embeddings": []})) == 0
    with pytest.raises(ValueError):
        RecordBatch(["a"], np.ones((2, 2), dtype=np.float32))
