"""The sweep on a small clustered set: a sane, monotone recall curve and honest numbers."""

from __future__ import annotations

import numpy as np

from chroma_operator.tuner.spaces import prepare
from chroma_operator.tuner.sweep import grid_from, index_bytes, sweep
from chroma_operator.tuner.truth import exact_topk


def blobs(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d)) * 4
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_recall_rises_with_ef_and_reaches_one() -> None:
    x = prepare(blobs(3000, 16, 0), "cosine")
    base, queries = x[100:], x[:100]
    truth = exact_topk(base, queries, 10, "cosine", device="numpy")
    grid = grid_from([8, 8, 16], [32], [10, 40, 400])
    assert grid.max_neighbors == (8, 16)
    points = sweep(base, queries, truth, "cosine", 10, grid, threads=2, repeats=1, progress=False)
    assert len(points) == grid.size == 6
    for m in (8, 16):
        curve = [p.recall for p in points if p.max_neighbors == m]
        assert curve == sorted(curve)
        assert curve[-1] >= 0.99
    for p in points:
        assert 0 < p.p50_ms <= p.p99_ms
        assert p.build_s > 0
        assert p.index_bytes == index_bytes(len(base), 16, p.max_neighbors)


def test_index_memory_grows_with_m_and_dim() -> None:
    assert index_bytes(1000, 16, 32) > index_bytes(1000, 16, 16) > index_bytes(1000, 8, 16)
    # Dominated by the vectors and level-0 links: 1000 x (16*4 + 2*16*4) bytes at least.
    assert index_bytes(1000, 16, 16) > 1000 * (16 * 4 + 2 * 16 * 4)
