"""Exact nearest neighbours by brute force, in Chroma's distance conventions.

Distances match what Chroma's HNSW reports, lower is better in every space:
squared L2 for `l2`, 1 - dot for `ip`, 1 - cosine similarity for `cosine`. Ties are
broken by id, as the router's merge does, so an exact answer is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Json = dict[str, Any]
ANSWER_FIELDS = ("documents", "uris", "metadatas", "embeddings")


def distances(
    queries: npt.NDArray[np.float32], vectors: npt.NDArray[np.float32], space: str
) -> npt.NDArray[np.float32]:
    """(queries x vectors) distances in `space`."""
    if vectors.shape[0] == 0:
        return np.zeros((queries.shape[0], 0), dtype=np.float32)
    if space == "ip":
        ip: npt.NDArray[np.float32] = (1.0 - queries @ vectors.T).astype(np.float32)
        return ip
    if space == "cosine":
        qn = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        vn = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
        cos: npt.NDArray[np.float32] = (1.0 - qn @ vn.T).astype(np.float32)
        return cos
    sq = (
        np.sum(queries * queries, axis=1, keepdims=True)
        - 2.0 * (queries @ vectors.T)
        + np.sum(vectors * vectors, axis=1)[None, :]
    )
    l2: npt.NDArray[np.float32] = np.maximum(sq, 0.0).astype(np.float32)
    return l2


def top_k_as_query(records: Json, queries: Sequence[Sequence[float]], k: int, space: str) -> Json:
    """One shard's `get` answer (with embeddings) turned into its exact `query` answer."""
    ids: list[str] = [str(i) for i in records.get("ids") or []]
    embeddings = records.get("embeddings")
    if embeddings is None:
        embeddings = []
    q = np.asarray(queries, dtype=np.float32)
    v = np.asarray(embeddings, dtype=np.float32).reshape(len(ids), q.shape[1] if ids else 0)
    dist = distances(q, v, space)
    out: Json = {"ids": [], "distances": []}
    columns = {f: records.get(f) for f in ANSWER_FIELDS}
    for f, col in columns.items():
        out[f] = [] if col is not None else None
    for row in dist:
        if len(ids) > k > 0:
            # Everything at or under the k-th distance, so ties at the edge go by id too.
            kth = np.partition(row, k - 1)[k - 1]
            pool = [int(j) for j in np.nonzero(row <= kth)[0]]
        else:
            pool = list(range(len(ids)))
        # float32 distances, ties by id: the order the router's merge uses
        order = sorted(pool, key=lambda j: (float(row[j]), ids[j]))[:k]
        out["ids"].append([ids[j] for j in order])
        out["distances"].append([float(row[j]) for j in order])
        for f, col in columns.items():
            if col is not None:
                out[f].append([col[j] for j in order])
    return out


def recall_at_k(got: Sequence[str], truth: Sequence[str], k: int) -> tuple[int, int]:
    """(hits, relevant): how many of the exact top-k the answer's top-k contains."""
    relevant = list(truth[:k])
    return len(set(got[:k]) & set(relevant)), len(relevant)
