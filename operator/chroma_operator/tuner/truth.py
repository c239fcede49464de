"""Exact top-k by brute force, in blocks, so the sweep has a ground truth to score against.

Numpy on the CPU; torch on CUDA when a GPU is present (the Job may run on a GPU node).
The results are sorted ascending by distance, ties broken by the lower row index, so two
runs agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chroma_operator.tuner.spaces import F32, Space, pairwise, rowwise

I64 = npt.NDArray[np.int64]
REFINE_EXTRA = 16


@dataclass(frozen=True)
class Truth:
    """Exact neighbours: `ids[q]` are base rows, `distances[q]` ascending, both (Q, k)."""

    ids: I64
    distances: F32
    device: str

    @property
    def kth(self) -> F32:
        """The true k-th distance of each query: the recall threshold's anchor."""
        return self.distances[:, -1]


def _topk_block(dist: F32, k: int) -> tuple[I64, F32]:
    n = dist.shape[1]
    if k < n:
        part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), dist.shape).copy()
    part_d = np.take_along_axis(dist, part, axis=1)
    order = np.lexsort((part, part_d), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return ids, np.take_along_axis(part_d, order, axis=1).astype(np.float32)


def _refine(
    q: F32, base: F32, cand: npt.NDArray[np.int64], k: int, space: Space
) -> tuple[I64, F32]:
    """Order a few extra candidates by directly computed distances (the expanded l2 form
    `|q|^2 + |b|^2 - 2 q.b` loses precision near zero) and keep the best k."""
    cand = cand.astype(np.int64)
    pos, dist = _topk_block(rowwise(q, base[cand], space), k)
    return np.take_along_axis(cand, pos, axis=1), dist


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _exact_topk_torch(
    base: F32, queries: F32, k: int, space: Space, block: int, device: str
) -> Truth:
    import torch

    dev = torch.device(device)
    b = torch.from_numpy(base).to(dev)
    b_sq = (b * b).sum(dim=1)
    ids_out: list[I64] = []
    dist_out: list[F32] = []
    for start in range(0, len(queries), block):
        q = torch.from_numpy(queries[start : start + block]).to(dev)
        dots = q @ b.T
        if space == "l2":
            d = ((q * q).sum(dim=1)[:, None] + b_sq[None, :] - 2.0 * dots).clamp_min(0.0)
        else:
            d = 1.0 - dots
        _, cand = torch.topk(d, min(base.shape[0], k + REFINE_EXTRA), dim=1, largest=False)
        ids, dist = _refine(queries[start : start + block], base, cand.cpu().numpy(), k, space)
        ids_out.append(ids)
        dist_out.append(dist)
    if not ids_out:
        return Truth(np.empty((0, k), np.int64), np.empty((0, k), np.float32), f"torch:{dev}")
    return Truth(np.concatenate(ids_out), np.concatenate(dist_out), f"torch:{dev}")


def exact_topk(
    base: F32,
    queries: F32,
    k: int,
    space: Space,
    *,
    block: int = 256,
    device: str = "auto",
) -> Truth:
    """The k nearest base rows of every query (inputs `prepare`d for `space`).

    `device`: "auto" (torch on CUDA when there is a GPU, else numpy), "numpy", or a torch
    device name ("cuda", "cuda:1", "cpu"). Torch only proposes candidates; the final
    order is computed the same way on every device, so the answers agree.
    """
    if k > base.shape[0]:
        raise ValueError(f"k={k} is larger than the {base.shape[0]} base vectors")
    if device == "auto":
        device = "cuda" if _cuda_available() else "numpy"
    if device != "numpy":
        return _exact_topk_torch(base, queries, k, space, max(block, 1024), device)
    b_sq = np.einsum("ij,ij->i", base, base).astype(np.float32)
    ids_out: list[I64] = []
    dist_out: list[F32] = []
    for start in range(0, len(queries), block):
        q = queries[start : start + block]
        cand, _ = _topk_block(pairwise(q, base, space, b_sq), min(base.shape[0], k + REFINE_EXTRA))
        ids, dist = _refine(q, base, cand, k, space)
        ids_out.append(ids)
        dist_out.append(dist)
    if not ids_out:
        return Truth(np.empty((0, k), np.int64), np.empty((0, k), np.float32), "numpy")
    return Truth(np.concatenate(ids_out), np.concatenate(dist_out), "numpy")
