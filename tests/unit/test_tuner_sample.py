"""Sampling through the API, with a stand-in collection: uniform, by id, or paged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chroma_operator.tuner import sample as sampling
from chroma_operator.tuner.sample import Sample, fetch_sample, split_queries


class FakeCollection:
    name = "fake"

    def __init__(self, n: int) -> None:
        self.ids = [f"id{i}" for i in range(n)]
        self.vectors = np.arange(n * 4, dtype=np.float64).reshape(n, 4)
        self.calls: list[dict[str, Any]] = []

    def get(
        self,
        ids: list[str] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        include: list[str] | None = None,
    ) -> dict[str, Any]:
        self.calls.append({"ids": ids, "offset": offset, "limit": limit, "include": include})
        if ids is not None:
            rows = [int(i[2:]) for i in ids]
        else:
            start = offset or 0
            rows = list(range(start, min(len(self.ids), start + (limit or len(self.ids)))))
        return {
            "ids": [self.ids[r] for r in rows],
            "embeddings": self.vectors[rows] if include and "embeddings" in include else None,
        }


def _check(s: Sample, col: FakeCollection) -> None:
    assert len(set(s.ids)) == len(s.ids)
    rows = [int(i[2:]) for i in s.ids]
    np.testing.assert_array_equal(s.vectors, col.vectors[rows].astype(np.float32))


def test_sample_by_id_is_uniform_and_paged() -> None:
    col = FakeCollection(2500)
    s = fetch_sample(col, 2500, 1000, page=300, seed=1, progress=False)
    assert len(s.ids) == 1000
    _check(s, col)
    assert col.calls[0]["include"] == []  # ids only
    by_id = col.calls[1:]
    assert all(c["ids"] is not None and len(c["ids"]) <= 300 for c in by_id)
    rows = np.array([int(i[2:]) for i in s.ids])
    assert rows.min() < 250 and rows.max() > 2250  # spread over the whole collection


def test_whole_collection_when_the_sample_is_larger() -> None:
    col = FakeCollection(120)
    s = fetch_sample(col, 120, 20_000, page=50, progress=False)
    assert sorted(s.ids) == sorted(col.ids)
    _check(s, col)


def test_huge_collections_use_random_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "ID_LISTING_LIMIT", 100)
    col = FakeCollection(1000)
    s = fetch_sample(col, 1000, 250, page=100, seed=3, progress=False)
    assert len(s.ids) == 250
    _check(s, col)
    assert all(c["offset"] is not None and c["limit"] == 100 for c in col.calls)
    assert len(col.calls) == 3


def test_held_out_queries_are_disjoint_from_the_base() -> None:
    col = FakeCollection(300)
    s = fetch_sample(col, 300, 300, progress=False)
    base, queries, rows = split_queries(s, 40, seed=0)
    assert base.shape == (260, 4) and queries.shape == (40, 4)
    np.testing.assert_array_equal(queries, s.vectors[rows])
    as_set = {tuple(v) for v in base}
    assert not any(tuple(v) in as_set for v in queries)
