"""live_sweep's verdict with a stand-in collection whose ef_search does (or does not) apply.

The real server (integration test) only shows the "no effect" side; this checks the tuner
also recognises an effect when there is one, and restores the value even on failure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chroma_operator.tuner.live import live_sweep
from chroma_operator.tuner.spaces import prepare
from chroma_operator.tuner.sweep import build_index
from chroma_operator.tuner.truth import exact_topk


class FakeCollection:
    """Answers `query` from an hnswlib index; `modify` applies ef only when `applies`."""

    name = "fake"

    def __init__(self, vectors: np.ndarray, applies: bool, fail_at: int | None = None) -> None:
        self.vectors = vectors
        self.index = build_index(vectors, "l2", 4, 8, threads=1)
        self.stored_ef = 50
        self.index.set_ef(50)
        self.applies = applies
        self.fail_at = fail_at
        self.configuration_json: dict[str, Any] = {}

    def modify(self, configuration: dict[str, Any]) -> None:
        ef = configuration["hnsw"]["ef_search"]
        if ef == self.fail_at:
            raise RuntimeError("shard 1 timed out")
        self.stored_ef = ef
        if self.applies:
            self.index.set_ef(max(ef, 10))

    def query(self, query_embeddings: np.ndarray, n_results: int, include: list[str]) -> Any:
        labels, _ = self.index.knn_query(query_embeddings, k=n_results)
        return {
            "ids": [[str(i) for i in row] for row in labels],
            "embeddings": [self.vectors[row] for row in labels],
        }


class FakeClient:
    def __init__(self, col: FakeCollection) -> None:
        self.col = col

    def get_collection(self, name: str, embedding_function: Any = None) -> Any:
        class View:
            configuration_json = {"hnsw": {"ef_search": self.col.stored_ef}}

        return View()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = prepare(rng.normal(size=(3000, 24)), "l2")
    return x, x[:60]


@pytest.mark.parametrize("applies", [True, False])
def test_effect_is_detected_only_when_results_move(
    applies: bool, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, q = data
    col = FakeCollection(x, applies)
    truth = exact_topk(x, q, 10, "l2", device="numpy")
    out = live_sweep(FakeClient(col), col, q, truth, "l2", 10, [10, 400], exact_truth=True)
    assert out["effective"] is applies
    assert out["restored"] is True and col.stored_ef == 50
    if applies:
        low, high = out["points"]
        assert low["recall"] < high["recall"] and low["changedQueries"] > 0
        assert out["note"] == ""
    else:
        assert all(p["changedQueries"] == 0 for p in out["points"])
        assert "restart" in out["note"]


def test_failure_midway_still_restores(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    col = FakeCollection(x, applies=True, fail_at=400)
    truth = exact_topk(x, q, 10, "l2", device="numpy")
    out = live_sweep(FakeClient(col), col, q, truth, "l2", 10, [10, 400], exact_truth=False)
    assert "shard 1 timed out" in out["error"]
    assert [p["efSearch"] for p in out["points"]] == [10]
    assert out["restored"] is True and col.stored_ef == 50
    assert "upper bound" in out["note"]
