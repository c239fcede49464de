"""Search-mode header parsing, the brute-force distances and recall arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_operator.router.errors import ChromaHTTPError
from chroma_operator.router.exact import distances, recall_at_k, top_k_as_query
from chroma_operator.router.metrics import RouterMetrics
from chroma_operator.router.recall import RecallSampler
from chroma_operator.router.search_mode import APPROXIMATE, SearchMode, parse_search_mode


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, APPROXIMATE),
        ("", APPROXIMATE),
        ("approximate", APPROXIMATE),
        ("EXACT", SearchMode("exact")),
        (" exact ", SearchMode("exact")),
        ("candidates=100", SearchMode("candidates", 100)),
        ("candidates = 7", SearchMode("candidates", 7)),
    ],
)
def test_valid_header_values(value: str | None, mode: SearchMode) -> None:
    assert parse_search_mode(value) == mode


@pytest.mark.parametrize(
    "value",
    [
        "fast",
        "candidates",
        "candidates=",
        "candidates=0",
        "candidates=-3",
        "candidates=1.5",
        "candidates=abc",
        "candidates=10001",
        "exact=1",
        "x" * 5000,
    ],
)
def test_bad_header_values_are_400_in_chroma_shape(value: str) -> None:
    with pytest.raises(ChromaHTTPError) as err:
        parse_search_mode(value)
    assert err.value.status == 400
    assert err.value.error == "InvalidArgumentError"
    assert len(err.value.message) < 200  # a huge value is not echoed back


def test_modes_have_distinct_cache_tags_and_shard_k() -> None:
    tags = {m.cache_tag for m in (APPROXIMATE, SearchMode("exact"), SearchMode("candidates", 50))}
    assert len(tags) == 3
    assert SearchMode("candidates", 50).shard_k(10) == 50
    assert SearchMode("candidates", 5).shard_k(10) == 10
    assert APPROXIMATE.shard_k(10) == 10


def test_distances_follow_chroma_conventions() -> None:
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    v = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(distances(q, v, "l2")[0], [0.0, 5.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(distances(q, v, "ip")[0], [0.0, 1.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(distances(q, v, "cosine")[0], [0.0, 1.0, 2.0], atol=1e-6)


def test_top_k_matches_a_full_sort_with_ties_by_id() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 8)).astype(np.float32)
    vectors[10] = vectors[20]  # an exact tie
    ids = [f"id{i:03d}" for i in range(500)]
    queries = [vectors[20].tolist(), rng.normal(size=8).tolist()]
    records = {"ids": ids, "embeddings": vectors.tolist(), "documents": ids}
    answer = top_k_as_query(records, queries, 5, "l2")
    for qi, q in enumerate(queries):
        d = ((vectors - np.asarray(q, dtype=np.float32)) ** 2).sum(axis=1)
        expected = sorted(range(500), key=lambda j: (float(d[j]), ids[j]))[:5]
        assert answer["ids"][qi] == [ids[j] for j in expected]
        assert answer["documents"][qi] == answer["ids"][qi]
    assert answer["ids"][0][:2] == ["id010", "id020"]  # the tie, by id


def test_top_k_of_an_empty_shard() -> None:
    answer = top_k_as_query({"ids": [], "embeddings": []}, [[0.0, 1.0]], 3, "cosine")
    assert answer["ids"] == [[]]
    assert answer["distances"] == [[]]


def test_recall_at_k() -> None:
    assert recall_at_k(["a", "b", "c"], ["a", "c", "d"], 3) == (2, 3)
    assert recall_at_k(["a"], ["b", "a"], 2) == (1, 2)
    assert recall_at_k([], [], 10) == (0, 0)


def test_sampler_counts_recall_per_collection() -> None:
    metrics = RouterMetrics()
    sampler = RecallSampler(metrics, rate=1.0, k=2)
    sampler.record("docs", 2, [["a", "b"], ["x", "y"]], [["a", "c"], ["x", "y"]])
    reg = metrics.registry
    assert reg.get_sample_value("chroma_router_recall_relevant_total", {"collection": "docs"}) == 4
    assert reg.get_sample_value("chroma_router_recall_missed_total", {"collection": "docs"}) == 1
    assert reg.get_sample_value("chroma_router_recall_count", {"collection": "docs"}) == 2
