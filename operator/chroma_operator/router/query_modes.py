"""Exact search across shards: brute force per shard over what the filters select, merged.

Bounded before anything is loaded: the collection's record count (every shard's `count`)
must not exceed the topology's `exact_search_max_records`, so an exact request is a clear
400 on a large collection, never an out-of-memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from chroma_operator.router.collections import ResolvedCollection, reply_error
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import invalid_argument
from chroma_operator.router.exact import ANSWER_FIELDS, top_k_as_query
from chroma_operator.router.exact_cache import SAMPLE_MAX_AGE_S
from chroma_operator.router.merge import keep_get_rows, merge_query
from chroma_operator.router.placement import pick
from chroma_operator.router.state import State
from chroma_operator.router.validate import QueryRequest

Json = dict[str, Any]
PAGE = 1000  # records per page when loading a collection's vectors (tests cross pages)


async def collection_size(
    core: RouterCore, st: State, coll: ResolvedCollection, headers: dict[str, str]
) -> int:
    calls = {
        s: st.pool.read(s, "GET", lambda ep: coll.path(ep, "/count"), headers=headers)
        for s in range(st.routing.read_shards)
    }
    replies, _ = await core.read_shards(st, calls, partial=False)
    return sum(int(r.json()) for r in replies.values())


async def exact_query(
    core: RouterCore,
    st: State,
    coll: ResolvedCollection,
    body: Json,
    req: QueryRequest,
    headers: dict[str, str],
    sample: bool = False,
) -> Json:
    """The exact top-k for every query embedding, in a query answer's shape.

    A query with no filter that wants only ids and distances (every recall sample) is
    answered from the collection's cached vectors while no write moved its generation.
    A recall sample (`sample`) reloads them at most every SAMPLE_REFETCH_S (else TooSoon).
    """
    wanted = [f for f in ANSWER_FIELDS if f in req.include]
    plain = req.ids is None and not wanted and not body.get("where")
    plain = plain and not body.get("where_document")
    generation = st.cache.generation(coll.client_id)
    if plain:
        age = SAMPLE_MAX_AGE_S if sample else None
        hit = st.exact_vectors.get(coll.client_id, generation, age)
        if hit is not None:
            return vectors_answer(hit.ids, hit.matrix, req, coll.space)
        if sample:
            st.exact_vectors.check_sample_load(coll.client_id)
    limit = st.topology.router.exact_search_max_records
    size = await collection_size(core, st, coll, headers)
    if size > limit:
        raise invalid_argument(
            f"Exact search is limited to collections of {limit:,} records "
            f"(router.exactSearchMaxRecords); this one has {size:,}"
        )
    routing = st.routing
    if plain:
        ids, matrix = await load_vectors(st, coll, headers)
        st.exact_vectors.put(coll.client_id, generation, ids, matrix)
        return vectors_answer(ids, matrix, req, coll.space)
    get_body: Json = {k: body[k] for k in ("where", "where_document") if body.get(k) is not None}
    get_body["include"] = sorted(set(wanted) | {"embeddings"})
    if req.ids is None:
        parts = {s: get_body for s in range(routing.read_shards)}
    else:
        parts = {
            s: {**get_body, "ids": pick(req.ids, pos)}
            for s, pos in routing.read_partition(req.ids).items()
        }
    calls = {
        s: st.pool.read(
            s, "POST", lambda ep: coll.path(ep, "/get"), content=orjson.dumps(part), headers=headers
        )
        for s, part in parts.items()
    }
    replies, _ = await core.read_shards(st, calls, partial=False)
    shard_records = []
    for s in sorted(replies):
        records = replies[s].json()
        owned = routing.owned(s, records["ids"])  # during a move: drop copies it does not own
        if owned is not None:
            records = keep_get_rows(records, owned)
        shard_records.append(records)
    per_shard = []
    for records in shard_records:
        answer = top_k_as_query(records, req.embeddings, req.n_results, coll.space)
        if "embeddings" not in wanted:
            answer["embeddings"] = None
        per_shard.append(answer)
    return merge_query(per_shard, len(req.embeddings), req.n_results, req.include)


def vectors_answer(
    ids: list[str], matrix: npt.NDArray[np.float32], req: QueryRequest, space: str
) -> Json:
    """The exact top-k over one matrix of every record, ids and distances only."""
    answer = top_k_as_query(
        {"ids": ids, "embeddings": matrix}, req.embeddings, req.n_results, space
    )
    answer["embeddings"] = None
    return merge_query([answer], len(req.embeddings), req.n_results, req.include)


async def load_vectors(
    st: State, coll: ResolvedCollection, headers: dict[str, str]
) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Every record's id and embedding, a page at a time, each page turned into float32 at
    once: memory stays near the matrix itself (not a whole collection of JSON floats), and
    the event loop serves other requests between pages."""
    routing = st.routing
    ids: list[str] = []
    blocks: list[npt.NDArray[np.float32]] = []
    for s in range(routing.read_shards):
        offset = 0
        while True:
            page = orjson.dumps({"include": ["embeddings"], "limit": PAGE, "offset": offset})
            reply = await st.pool.read(
                s, "POST", lambda ep: coll.path(ep, "/get"), content=page, headers=headers
            )
            if not reply.ok:
                raise reply_error(reply)
            records = reply.json()
            got = len(records["ids"])
            owned = routing.owned(s, records["ids"])  # during a move: only what it owns
            if owned is not None:
                records = keep_get_rows(records, owned)
            if records["ids"]:
                ids.extend(str(i) for i in records["ids"])
                blocks.append(np.asarray(records["embeddings"], dtype=np.float32))
            if got < PAGE:
                break
            offset += PAGE
    if not blocks:
        return ids, np.zeros((0, 0), dtype=np.float32)
    matrix = np.concatenate(blocks)
    if len(set(ids)) != len(ids):  # a write moved a record between pages: keep it once
        first = {i: n for n, i in reversed(list(enumerate(ids)))}
        keep = sorted(first.values())
        return [ids[n] for n in keep], matrix[keep]
    return ids, matrix
