"""Pure merges: top-k by distance with id tie-breaks, and deterministic get pages."""

from __future__ import annotations

from typing import Any

from chroma_operator.router.merge import empty_query, merge_get, merge_query


def shard_query(ids: list[list[str]], dists: list[list[float]], **cols: Any) -> dict[str, Any]:
    return {"ids": ids, "distances": dists, **cols}


def test_query_merges_ascending_and_trims_to_k() -> None:
    a = shard_query([["a1", "a2", "a3"]], [[0.1, 0.4, 0.9]], documents=[["A1", "A2", "A3"]])
    b = shard_query([["b1", "b2"]], [[0.2, 0.3]], documents=[["B1", "B2"]])
    out = merge_query([a, b], 1, 4, ["documents", "distances"])
    assert out["ids"] == [["a1", "b1", "b2", "a2"]]
    assert out["distances"] == [[0.1, 0.2, 0.3, 0.4]]
    assert out["documents"] == [["A1", "B1", "B2", "A2"]]
    assert out["embeddings"] is None and out["metadatas"] is None and out["uris"] is None


def test_query_ties_are_broken_by_id_whatever_the_shard_order() -> None:
    a = shard_query([["z", "m"]], [[0.5, 0.5]])
    b = shard_query([["b", "y"]], [[0.5, 0.5]])
    for order in ([a, b], [b, a]):
        out = merge_query(order, 1, 3, ["distances"])
        assert out["ids"] == [["b", "m", "y"]]


def test_query_fewer_than_k_and_one_list_per_query() -> None:
    a = shard_query([["a"], []], [[1.0], []])
    b = shard_query([[], ["b"]], [[], [2.0]])
    out = merge_query([a, b], 2, 10, [])
    assert out["ids"] == [["a"], ["b"]]
    assert out["distances"] is None
    assert out["include"] == []


def test_query_only_requested_fields_even_if_shards_sent_more() -> None:
    a = shard_query([["a"]], [[1.0]], metadatas=[[{"k": 1}]], embeddings=[[[1.0, 2.0]]])
    out = merge_query([a], 1, 1, ["metadatas"])
    assert out["metadatas"] == [[{"k": 1}]]
    assert out["embeddings"] is None and out["distances"] is None


def test_empty_query_has_one_empty_list_per_query() -> None:
    out = empty_query(2, ["distances", "documents"])
    assert out["ids"] == [[], []]
    assert out["distances"] == [[], []] and out["documents"] == [[], []]
    assert out["metadatas"] is None


def shard_get(ids: list[str]) -> dict[str, Any]:
    return {"ids": ids, "documents": [i.upper() for i in ids], "metadatas": None}


def test_get_pages_tile_the_full_merge() -> None:
    shards = [shard_get(["a1", "a2", "a3", "a4"]), shard_get(["b1"]), shard_get(["c1", "c2"])]
    full = merge_get(shards, 0, None, ["documents"])["ids"]
    assert sorted(full) == sorted(i for s in shards for i in s["ids"])
    pages: list[str] = []
    for offset in range(0, len(full), 2):
        # each shard was asked for offset+limit records: its first offset+2
        truncated = [
            {**s, "ids": s["ids"][: offset + 2], "documents": s["documents"][: offset + 2]}
            for s in shards
        ]
        page = merge_get(truncated, offset, 2, ["documents"])
        assert page["documents"] == [i.upper() for i in page["ids"]]
        pages.extend(page["ids"])
    assert pages == full


def test_get_offset_past_the_end_and_zero_limit() -> None:
    shards = [shard_get(["a"]), shard_get(["b"])]
    assert merge_get(shards, 5, 10, ["documents"])["ids"] == []
    out = merge_get(shards, 0, 0, ["documents"])
    assert out["ids"] == [] and out["documents"] == []
    assert out["embeddings"] is None
