"""Exact top-k in every Chroma space, in blocks, against a naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_operator.tuner.spaces import SPACES, Space, parse_space, prepare
from chroma_operator.tuner.truth import exact_topk


def _naive(base: np.ndarray, queries: np.ndarray, space: Space) -> np.ndarray:
    if space == "l2":
        return ((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
    return 1.0 - queries @ base.T


@pytest.mark.parametrize("space", SPACES)
def test_matches_naive_brute_force(space: Space) -> None:
    rng = np.random.default_rng(3)
    base = prepare(rng.normal(size=(700, 12)), space)
    queries = prepare(rng.normal(size=(37, 12)), space)
    truth = exact_topk(base, queries, 5, space, block=8, device="numpy")
    ref = _naive(base.astype(np.float64), queries.astype(np.float64), space)
    ref_ids = np.argsort(ref, axis=1, kind="stable")[:, :5]
    assert truth.ids.shape == (37, 5)
    np.testing.assert_allclose(
        truth.distances, np.take_along_axis(ref, ref_ids, 1), rtol=1e-4, atol=1e-5
    )
    # Ids may swap only between near-equal distances (float32 vs float64).
    np.testing.assert_allclose(
        np.take_along_axis(ref, truth.ids, 1), np.take_along_axis(ref, ref_ids, 1), atol=1e-5
    )
    assert (np.diff(truth.distances, axis=1) >= 0).all()
    np.testing.assert_allclose(truth.kth, truth.distances[:, -1])


def test_cosine_is_one_minus_cosine_and_ignores_length() -> None:
    base = prepare(np.array([[1.0, 0.0], [0.0, 5.0], [-2.0, 0.0]]), "cosine")
    queries = prepare(np.array([[3.0, 0.0]]), "cosine")
    truth = exact_topk(base, queries, 3, "cosine", device="numpy")
    assert truth.ids.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(truth.distances, [[0.0, 1.0, 2.0]], atol=1e-6)


def test_l2_is_squared_and_ties_break_by_row() -> None:
    base = prepare(np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]), "l2")
    queries = prepare(np.zeros((1, 2)), "l2")
    truth = exact_topk(base, queries, 3, "l2", device="numpy")
    assert truth.ids.tolist() == [[1, 2, 3]]
    np.testing.assert_allclose(truth.distances, [[1.0, 1.0, 1.0]])


def test_k_equal_to_n_and_larger() -> None:
    base = prepare(np.eye(3), "ip")
    truth = exact_topk(base, base, 3, "ip", device="numpy")
    assert truth.ids[:, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="larger than"):
        exact_topk(base, base, 4, "ip", device="numpy")


def test_unknown_space_is_refused() -> None:
    assert parse_space("cosine") == "cosine"
    with pytest.raises(ValueError, match="unknown distance space"):
        parse_space("hamming")


@pytest.mark.parametrize("space", SPACES)
def test_torch_path_agrees_with_numpy(space: Space) -> None:
    """The GPU path, run by torch on the CPU here: same ids and distances as numpy."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    base = prepare(rng.normal(size=(2000, 16)), space)
    queries = prepare(rng.normal(size=(50, 16)), space)
    ref = exact_topk(base, queries, 10, space, device="numpy")
    got = exact_topk(base, queries, 10, space, device="cpu")
    assert got.device == "torch:cpu" and ref.device == "numpy"
    np.testing.assert_allclose(got.distances, ref.distances, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.take_along_axis(_naive(base, queries, space), got.ids, 1), ref.distances, atol=1e-5
    )
