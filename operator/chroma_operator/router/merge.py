"""Pure merges of per-shard answers into the one answer a single node would give.

Query: every shard was asked for the full k with distances; candidates are merged
ascending by distance ("lower is better" in every Chroma space), ties broken by id, and
trimmed to k. Get: each shard was asked for offset+limit records in its own storage
order; the merge interleaves them by (position in shard, shard index), a k-way merge
whose key is monotone in every shard's list, so the first offset+limit merged records are
exactly those of the full merged order and pages tile it with no gaps or repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

QUERY_FIELDS = ("embeddings", "documents", "uris", "metadatas", "distances")
GET_FIELDS = ("embeddings", "documents", "uris", "metadatas")

Json = dict[str, Any]


def _column(resp: Json, field: str) -> Any:
    return resp.get(field)


def merge_query(responses: Sequence[Json], n_queries: int, k: int, include: Sequence[str]) -> Json:
    """Top-k per query over all shards; only the `include`d fields are filled."""
    wanted = [f for f in QUERY_FIELDS if f in include]
    out: Json = {"ids": []}
    for f in QUERY_FIELDS:
        out[f] = [] if f in wanted else None
    for q in range(n_queries):
        candidates: list[tuple[float, str, int, int]] = []
        for s, resp in enumerate(responses):
            ids = resp["ids"][q] if q < len(resp["ids"]) else []
            dists = resp["distances"][q]
            candidates.extend((float(dists[j]), ids[j], s, j) for j in range(len(ids)))
        candidates.sort(key=lambda c: (c[0], c[1]))
        top = candidates[:k]
        out["ids"].append([c[1] for c in top])
        for f in wanted:
            if f == "distances":
                out[f].append([c[0] for c in top])
                continue
            col = []
            for _, _, s, j in top:
                shard_col = _column(responses[s], f)
                col.append(shard_col[q][j] if shard_col is not None else None)
            out[f].append(col)
    out["include"] = list(include)
    return out


def merge_get(
    responses: Sequence[Json], offset: int, limit: int | None, include: Sequence[str]
) -> Json:
    """Interleave shard answers by (position, shard), then apply offset and limit."""
    rows = [(j, s) for s, resp in enumerate(responses) for j in range(len(resp["ids"]))]
    rows.sort()
    end = None if limit is None else offset + limit
    rows = rows[offset:end]
    out: Json = {"ids": [responses[s]["ids"][j] for j, s in rows]}
    for f in GET_FIELDS:
        if f not in include:
            out[f] = None
            continue
        col = []
        for j, s in rows:
            shard_col = _column(responses[s], f)
            col.append(shard_col[j] if shard_col is not None else None)
        out[f] = col
    out["include"] = list(include)
    return out


def empty_query(n_queries: int, include: Sequence[str]) -> Json:
    """What a node answers for n_results 0: one empty list per query."""
    return merge_query([], n_queries, 0, include)


def keep_get_rows(resp: Json, keep: Sequence[int]) -> Json:
    """A get answer restricted to rows `keep` (a shard's copies it does not own dropped)."""
    out = dict(resp)
    for f in ("ids", *GET_FIELDS):
        col = resp.get(f)
        if isinstance(col, list):
            out[f] = [col[j] for j in keep]
    return out


def keep_query_rows(resp: Json, keep: Sequence[Sequence[int]]) -> Json:
    """A query answer with, per query, only the rows in `keep[q]`."""
    out = dict(resp)
    for f in ("ids", *QUERY_FIELDS):
        col = resp.get(f)
        if isinstance(col, list):
            out[f] = [
                [row[j] for j in keep[q]] if isinstance(row, list) and q < len(keep) else row
                for q, row in enumerate(col)
            ]
    return out
