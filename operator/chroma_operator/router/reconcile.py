"""After a replay, make the records it wrote match an in-sync sibling replica.

Every router keeps its own hint log for a replica that missed writes, and replays it on
its own. One log replays in the order its router acknowledged the writes; two logs do
not replay in any order to each other. So when writes of one record reached two routers
(in Kubernetes every shard pod runs a router behind one Service: a client's writes spread
over all of them), the replica would end with whichever router replayed last, not with the
last write. The sibling that took those writes live has them in the order they were
acknowledged, so after its replay each router copies the sibling's version of every record
it replayed (and deletes those the sibling no longer has) wherever the two differ.
The replica is not read while this runs (it is still stale), so a record rewritten as
delete-then-add is never seen half done.

The last router to replay a record also reconciles it, so the replica ends as the sibling.
What stays open: another router replaying and reconciling the same record in the moment
between this router reading the sibling and writing the replica; a collection `modify`
(collection metadata, not records). A repair (`chroma-operator repair`) settles both.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from chroma_operator.data.digest import diff_records, mode_for_collection
from chroma_operator.data.records import INCLUDE_ALL, RecordBatch
from chroma_operator.router.collections import by_name_path, id_path
from chroma_operator.router.hints import Hint
from chroma_operator.router.replicas import Replica
from chroma_operator.router.shards import RETRY_STATUSES, ShardCallError, ShardPool

log = logging.getLogger("chroma_operator.router.reconcile")

CollectionKey = tuple[str, str, str]  # tenant, database, name
RECORD_WRITES = ("/add", "/upsert", "/update", "/delete")
CHUNK = 500  # ids per comparison: two gets at once, then at most one delete and one add


class ReplicaGone(Exception):
    """A replica (the one replayed to, or the sibling) stopped answering."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint


@dataclass
class Touched:
    """What a replay wrote, per collection: ids, and filters of deletes by filter."""

    ids: set[str] = field(default_factory=set)
    filters: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class ReplayedRecords:
    """The records a replay wrote, collected hint by hint."""

    def __init__(self) -> None:
        self.collections: dict[CollectionKey, Touched] = {}

    def __bool__(self) -> bool:
        return bool(self.collections)

    def add(self, hint: Hint) -> None:
        if hint.where is None or hint.method != "POST" or not hint.body:
            return
        tenant, database, name, suffix = hint.where
        if suffix not in RECORD_WRITES:
            return
        try:
            body = orjson.loads(hint.body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        touched = self.collections.setdefault((tenant, database, name), Touched())
        touched.headers = hint.headers
        ids = body.get("ids")
        if isinstance(ids, list) and ids:
            touched.ids.update(str(i) for i in ids)
        elif suffix == "/delete":  # by filter: which records it hit is only known there
            touched.filters.append(
                {k: body[k] for k in ("where", "where_document") if body.get(k) is not None}
            )


async def _call(
    pool: ShardPool,
    shard: int,
    endpoint: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
) -> Any:
    """The answer's JSON; None for a 404; ReplicaGone when the replica did not answer."""
    content = None if body is None else orjson.dumps(body)
    try:
        reply = await pool.call(shard, endpoint, method, path, content=content, headers=headers)
    except ShardCallError as exc:
        raise ReplicaGone(endpoint, exc.reason) from None
    if reply.status in RETRY_STATUSES:
        raise ReplicaGone(endpoint, f"answered {reply.status}")
    if reply.status == 404:
        return None
    if not reply.ok:
        raise RuntimeError(f"{endpoint} {method} {path}: {reply.status} {reply.body[:200]!r}")
    return reply.json()


async def reconcile(pool: ShardPool, rep: Replica, sib: Replica, replayed: ReplayedRecords) -> int:
    """Copy `sib`'s version of every record replayed to `rep` there, where they differ;
    returns how many records were rewritten or deleted."""
    shard, replica, sibling = rep.shard, rep.endpoint, sib.endpoint
    changed = 0
    for (tenant, database, name), touched in replayed.collections.items():
        by_name = by_name_path(tenant, database, name)
        h = touched.headers
        models = await asyncio.gather(
            *(_call(pool, shard, ep, "GET", by_name, h) for ep in (sibling, replica))
        )
        if models[0] is None or models[1] is None:
            continue  # deleted since (or never made on one side): not a record matter
        mode = mode_for_collection(models[0])
        theirs_at, ours_at = (id_path(tenant, database, str(m["id"])) for m in models)
        ids = set(touched.ids)
        for where in touched.filters:
            for path, ep in ((theirs_at, sibling), (ours_at, replica)):
                query = {**where, "include": []}
                got = await _call(pool, shard, ep, "POST", path + "/get", h, query)
                ids.update((got or {}).get("ids") or [])
        ordered = sorted(ids)
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            query = {"ids": chunk, "include": INCLUDE_ALL}
            theirs, ours = (
                RecordBatch.from_get(got or {})
                for got in await asyncio.gather(
                    _call(pool, shard, sibling, "POST", theirs_at + "/get", h, query),
                    _call(pool, shard, replica, "POST", ours_at + "/get", h, query),
                )
            )
            differ = set(diff_records([theirs], [ours], mode))
            if not differ:
                continue
            # Deleted first, then written: an upsert over the old record would keep
            # metadata keys the sibling's version does not have (Chroma merges them).
            await _call(
                pool, shard, replica, "POST", ours_at + "/delete", h, {"ids": sorted(differ)}
            )
            copy = theirs.filter(differ.__contains__)
            if len(copy):
                body = copy.to_write_body()
                await _call(pool, shard, replica, "POST", ours_at + "/add", h, body)
            changed += len(differ)
    if changed:
        log.info(
            "replica %s: %d replayed records differed from %s; copied from it",
            rep.name,
            changed,
            sib.name,
        )
    return changed
