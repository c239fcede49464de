"""`--live`: try each efSearch on the live collection, end to end, then put it back.

Chroma 1.5.9 stores `modify(configuration={"hnsw": {"ef_search": N}})` at once but a
loaded index keeps searching with the value it was loaded with until the server restarts
So this mode never assumes an effect: it compares every candidate's results
with those at the original setting and reports `effective: false` when nothing moved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from chroma_operator.tuner.recall import query_recalls
from chroma_operator.tuner.spaces import F32, Space, prepare, rowwise
from chroma_operator.tuner.truth import Truth

NO_EFFECT_NOTE = (
    "ef_search was changed through the API but results did not change: Chroma applies "
    "ef_search when a collection's index is loaded, so the shards must be restarted "
    "(a rolling restart) before a new value takes effect"
)


def _set_ef(collection: Any, ef: int) -> None:
    collection.modify(configuration={"hnsw": {"ef_search": int(ef)}})


def _stored_ef(client: Any, name: str) -> int | None:
    config = client.get_collection(name, embedding_function=None).configuration_json or {}
    value = (config.get("hnsw") or {}).get("ef_search")
    return int(value) if value is not None else None


def _run_queries(
    collection: Any, queries: F32, k: int, space: Space, truth: Truth
) -> tuple[list[list[str]], dict[str, float]]:
    """Send the queries one by one (as clients do) and score the answers exactly."""
    ids: list[list[str]] = []
    found = np.full((len(queries), k), np.inf, dtype=np.float32)
    times = np.zeros(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        res = collection.query(
            query_embeddings=queries[i : i + 1], n_results=k, include=["embeddings"]
        )
        times[i] = time.perf_counter() - t0
        row_ids = list(res["ids"][0])
        ids.append(row_ids)
        emb = res.get("embeddings")
        if row_ids and emb is not None and len(emb[0]):
            vecs = prepare(np.asarray(emb[0], dtype=np.float32), space)
            q = prepare(queries[i : i + 1], space)
            found[i, : len(row_ids)] = rowwise(q, vecs[None, :, :], space)[0][:k]
    ms = times * 1e3
    stats = {
        "recall": float(query_recalls(truth.kth, found, k).mean()),
        "p50Ms": float(np.percentile(ms, 50)),
        "p99Ms": float(np.percentile(ms, 99)),
    }
    return ids, stats


def stored_ef(client: Any, name: str) -> int | None:
    """The collection's stored ef_search (what a freshly loaded index uses)."""
    return _stored_ef(client, name)


def measure_now(
    collection: Any, queries: F32, k: int, space: Space, truth: Truth
) -> tuple[list[list[str]], dict[str, float]]:
    """Recall and latency of the collection as it is, end to end (no change made)."""
    return _run_queries(collection, queries, k, space, truth)


def live_sweep(
    client: Any,
    collection: Any,
    queries: F32,
    truth: Truth,
    space: Space,
    k: int,
    ef_candidates: Sequence[int],
    *,
    exact_truth: bool,
) -> dict[str, Any]:
    """Measure each candidate end to end; always restore the original ef_search."""
    original = _stored_ef(client, collection.name)
    baseline_ids, baseline = _run_queries(collection, queries, k, space, truth)
    points: list[dict[str, Any]] = []
    restored = False
    error: str | None = None
    try:
        for ef in ef_candidates:
            _set_ef(collection, ef)
            stored = _stored_ef(client, collection.name)
            ids, stats = _run_queries(collection, queries, k, space, truth)
            changed = sum(1 for a, b in zip(ids, baseline_ids, strict=True) if a != b)
            points.append(
                {"efSearch": int(ef), "stored": stored == ef, "changedQueries": changed, **stats}
            )
    except Exception as exc:  # report what was measured, then restore
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if original is not None:
            try:
                _set_ef(collection, original)
                restored = _stored_ef(client, collection.name) == original
            except Exception as exc:
                error = (error + "; " if error else "") + f"restore failed: {exc}"
    recalls = {round(p["recall"], 6) for p in points} | {round(baseline["recall"], 6)}
    effective = any(p["changedQueries"] for p in points) or len(recalls) > 1
    note = "" if effective else NO_EFFECT_NOTE
    if not exact_truth:
        note = (note + ". " if note else "") + (
            "recall is measured against the sample, not the whole collection: an upper bound"
        )
    return {
        "original": original,
        "baseline": baseline,
        "points": points,
        "effective": effective,
        "restored": restored if original is not None else None,
        "note": note,
        "error": error,
    }
