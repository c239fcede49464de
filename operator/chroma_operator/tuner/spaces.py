"""Chroma's distance spaces, computed exactly: "lower is better" in every space.

Chroma (and its hnswlib build) report squared L2 for `l2`, `1 - <a, b>` for `ip` and
`1 - cos(a, b)` for `cosine`. Ground truth and recall must use the same numbers, so
every exact distance in the tuner comes from here.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
import numpy.typing as npt

Space = Literal["l2", "cosine", "ip"]
SPACES: tuple[Space, ...] = ("l2", "cosine", "ip")
F32 = npt.NDArray[np.float32]


def parse_space(value: object) -> Space:
    """A space name as Chroma stores it; anything else is refused, not guessed."""
    if value not in SPACES:
        raise ValueError(f"unknown distance space {value!r}; expected one of {SPACES}")
    return value  # narrowed to Space by the membership test


def prepare(vectors: npt.ArrayLike, space: Space) -> F32:
    """float32, C-contiguous; unit length for cosine (as hnswlib stores them)."""
    out = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if out.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {out.shape}")
    if space == "cosine":
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, np.float32(1e-30))
    return out


def pairwise(queries: F32, base: F32, space: Space, base_sq: F32 | None = None) -> F32:
    """Distances of every query to every base vector (inputs already `prepare`d)."""
    dots = queries @ base.T
    if space == "l2":
        q_sq = np.einsum("ij,ij->i", queries, queries)[:, None]
        b_sq = base_sq if base_sq is not None else np.einsum("ij,ij->i", base, base)
        return cast(F32, np.maximum(q_sq + b_sq[None, :] - 2.0 * dots, 0.0).astype(np.float32))
    return cast(F32, (1.0 - dots).astype(np.float32))


def rowwise(queries: F32, candidates: F32, space: Space) -> F32:
    """Distance of query i to each of its candidates: queries (Q, d), candidates (Q, c, d)."""
    if space == "l2":
        diff = candidates - queries[:, None, :]
        return cast(F32, np.einsum("qcd,qcd->qc", diff, diff).astype(np.float32))
    dots = np.einsum("qcd,qd->qc", candidates, queries)
    return cast(F32, (1.0 - dots).astype(np.float32))
