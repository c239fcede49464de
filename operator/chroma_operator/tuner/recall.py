"""recall@k the way ANN-benchmarks counts it: by distance, not by id.

A returned neighbour is a hit when its exact distance is within `EPSILON` (relative) of
the true k-th distance. Ties at the k-th distance therefore all count (an index that
returns a different one of several equidistant points is not wrong), a query answered
with fewer than k results simply scores fewer hits, and a repeated id counts once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

EPSILON = 1e-3
"""Relative tolerance on the true k-th distance (ANN-benchmarks' 1e-3)."""
ABS_FLOOR = 1e-6
"""Absolute slack so float rounding cannot turn an exact duplicate (distance 0) into a miss."""


def threshold(kth: npt.ArrayLike, epsilon: float = EPSILON) -> npt.NDArray[np.float64]:
    """Largest distance that still counts as a hit, per query."""
    kth64 = np.asarray(kth, dtype=np.float64)
    return kth64 + epsilon * np.abs(kth64) + ABS_FLOOR


def query_recalls(
    true_kth: npt.ArrayLike,
    found: Sequence[Sequence[tuple[object, float]]] | npt.ArrayLike,
    k: int,
    epsilon: float = EPSILON,
) -> npt.NDArray[np.float64]:
    """Per-query recall@k.

    `found[q]` is either a row of exact distances (missing results as NaN/inf), or a
    sequence of (id, exact distance) pairs so repeated ids can be counted once.
    """
    limits = threshold(true_kth, epsilon)
    out = np.zeros(len(limits), dtype=np.float64)
    for q, row in enumerate(found):  # type: ignore[arg-type]
        distances = _distances(row)[:k]
        hits = int(np.count_nonzero(np.isfinite(distances) & (distances <= limits[q])))
        out[q] = min(hits, k) / k
    return out


def recall_at_k(
    true_kth: npt.ArrayLike,
    found: Sequence[Sequence[tuple[object, float]]] | npt.ArrayLike,
    k: int,
    epsilon: float = EPSILON,
) -> float:
    """Mean recall@k over the queries (0.0 when there are none)."""
    per_query = query_recalls(true_kth, found, k, epsilon)
    return float(per_query.mean()) if per_query.size else 0.0


def _distances(row: object) -> npt.NDArray[np.float64]:
    if isinstance(row, np.ndarray):
        return row.astype(np.float64).ravel()
    pairs = list(row)  # type: ignore[call-overload]
    if pairs and isinstance(pairs[0], tuple):
        seen: set[object] = set()
        kept: list[float] = []
        for ident, dist in pairs:
            if ident in seen:
                continue
            seen.add(ident)
            kept.append(float(dist))
        return np.asarray(kept, dtype=np.float64)
    return np.asarray(pairs, dtype=np.float64)
