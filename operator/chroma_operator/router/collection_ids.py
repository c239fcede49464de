"""Client-visible collection ids, findable while shard 0's first replica is away.

The id a client sees is the one shard 0's first replica (the primary) gave the
collection; every other replica has an id of its own (`collections.py`). Only the primary
could say which collection an id names, or which id a name has, so with it down (or held
for a repair) a router that had not resolved a collection yet could serve nothing of it,
and no router could answer `get_collection`, list collections or count them.

So the routers write that mapping down on shard 0's other replicas, in the routers' own
tenant (clients cannot reach it): two empty collections per client collection, named
and filled as `data/collection_ids.py` says. A router writes them when it creates a
collection (before answering) and when it first resolves one from the primary (so
collections from before this are written on first use), and moves or deletes them on
rename and delete; a repair writes them on a shard-0 replica it repaired. While the
primary does not answer, collection lookups ask an in-sync sibling and give its answer
the client id from these entries; a collection without entries is still refused as
unavailable, never answered with a wrong id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from chroma_operator.data.collection_ids import (
    IDS_DATABASE,
    NAMES_DATABASE,
    Where,
    entries,
    id_entry,
    name_entry,
)
from chroma_operator.data.tenant_registry import RESERVED_TENANT
from chroma_operator.router.collections import by_name_path, db_path, id_path
from chroma_operator.router.lost_replicas import put_reserved_collection
from chroma_operator.router.shard_zero import readable_siblings, sibling_call, siblings
from chroma_operator.router.shards import ShardCallError, ShardPool

log = logging.getLogger("chroma_operator.router.collection_ids")


async def _put_entry(
    pool: ShardPool, endpoint: str, database: str, name: str, metadata: dict[str, Any]
) -> bool:
    """The entry on one replica with exactly `metadata` (an older one is overwritten).

    One request when the routers' tenant and the database are there already (a create
    with `get_or_create` answers the existing entry too); the first time, three more."""
    create = f"{db_path(RESERVED_TENANT, database)}/collections"
    body = orjson.dumps({"name": name, "get_or_create": True, "metadata": metadata})
    try:
        reply = await pool.call(0, endpoint, "POST", create, content=body)
        if not reply.ok:  # no tenant or database yet on this replica
            if not await put_reserved_collection(pool, 0, endpoint, database, name, metadata):
                return False
            path = by_name_path(RESERVED_TENANT, database, name)
            reply = await pool.call(0, endpoint, "GET", path)
            if not reply.ok:
                return False
        model = reply.json()
        if (model.get("metadata") or {}) == metadata:
            return True
        path = id_path(RESERVED_TENANT, database, str(model["id"]))
        change = orjson.dumps({"new_metadata": metadata})
        return (await pool.call(0, endpoint, "PUT", path, content=change)).ok
    except ShardCallError:
        return False


async def _drop_entry(pool: ShardPool, endpoint: str, database: str, name: str) -> bool:
    try:
        reply = await pool.call(
            0, endpoint, "DELETE", by_name_path(RESERVED_TENANT, database, name)
        )
    except ShardCallError:
        return False
    return reply.ok or reply.status == 404


async def _entry(pool: ShardPool, database: str, name: str) -> dict[str, Any] | None:
    """An entry's metadata from the first in-sync sibling that answers; None if none has it."""
    for ep in readable_siblings(pool):
        try:
            reply = await pool.call(0, ep, "GET", by_name_path(RESERVED_TENANT, database, name))
        except ShardCallError:
            continue
        if reply.ok:
            return dict(reply.json().get("metadata") or {})
        if reply.status == 404:
            return None
    return None


class CollectionIds:
    """One router's writer of the entries, and the stand-in lookup the collection map
    asks for while the primary is away (`collections.py` reaches it through the instance
    it is given: this module imports that one)."""

    def __init__(self, pool: Callable[[], ShardPool]) -> None:
        self.pool = pool
        self._written: dict[str, Where] = {}  # client id -> where, on every sibling
        self._tasks: dict[str, asyncio.Task[bool]] = {}

    def saw(self, client_id: str, where: Where) -> asyncio.Task[bool] | None:
        """Write the entries in the background unless this router already has; the
        writing, or None when there is nothing to write."""
        if self._written.get(client_id) == where:
            return None
        task = self._tasks.get(client_id)
        if task is None:
            task = asyncio.ensure_future(self.record(client_id, where))
            self._tasks[client_id] = task
            task.add_done_callback(lambda _: self._tasks.pop(client_id, None))
        return task

    async def recorded(self, client_id: str, where: Where) -> None:
        """Wait for the entries (a create answers once they are written; never fails it:
        a sibling that did not take them gets them at the collection's next resolve)."""
        task = self.saw(client_id, where)
        if task is not None:
            await asyncio.shield(task)

    async def record(self, client_id: str, where: Where) -> bool:
        """Both entries on every sibling; False (and a log line) if one did not take them."""
        pool = self.pool()
        took = await asyncio.gather(
            *(
                _put_entry(pool, ep, database, entry, metadata)
                for ep in siblings(pool)
                for database, entry, metadata in entries(client_id, where)
            )
        )
        if all(took):
            self._written[client_id] = where
            return True
        log.warning(
            "collection %r (%s) not written down on every replica of shard 0: while its "
            "first replica is down, routers that have not used it may not find it",
            where[2],
            client_id,
        )
        return False

    async def dropped(self, client_id: str | None, where: Where) -> None:
        """A deleted collection's entries go (best effort: a stale one finds nothing)."""
        pool = self.pool()
        if client_id is not None:
            self._written.pop(client_id, None)
        drops = [_drop_entry(pool, ep, NAMES_DATABASE, name_entry(*where)) for ep in siblings(pool)]
        if client_id is not None:
            drops += [
                _drop_entry(pool, ep, IDS_DATABASE, id_entry(client_id)) for ep in siblings(pool)
            ]
        await asyncio.gather(*drops)

    async def renamed(self, client_id: str, old: Where, new: Where) -> None:
        pool = self.pool()
        await asyncio.gather(
            *(_drop_entry(pool, ep, NAMES_DATABASE, name_entry(*old)) for ep in siblings(pool))
        )
        self._written.pop(client_id, None)
        await self.record(client_id, new)

    def forget_all(self) -> None:
        """After a reset (which empties every replica): write every entry again."""
        self._written.clear()

    @staticmethod
    async def stand_in_model(
        pool: ShardPool, tenant: str, database: str, client_id: str, headers: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """A sibling's model of the collection behind `client_id`, with that id: what the
        primary would have answered. None when the entries or the sibling cannot say."""
        where = await where_is(pool, client_id)
        if where is None or where[:2] != (tenant, database):
            return None
        # A deleted collection's entry left behind must not name a new one of that name.
        named, reply = await asyncio.gather(
            client_id_of(pool, *where),
            sibling_call(pool, "GET", by_name_path(*where), headers=headers),
        )
        if named != client_id or reply is None or not reply.ok:
            return None
        model: dict[str, Any] = reply.json()
        model["id"] = client_id
        return model


async def where_is(pool: ShardPool, client_id: str) -> Where | None:
    """The (tenant, database, name) a client id names, from the entries."""
    meta = await _entry(pool, IDS_DATABASE, id_entry(client_id))
    if meta is None:
        return None
    found = (meta.get("tenant"), meta.get("database"), meta.get("name"))
    if not all(isinstance(x, str) for x in found):
        return None
    return found  # type: ignore[return-value]


async def client_id_of(pool: ShardPool, tenant: str, database: str, name: str) -> str | None:
    """The client id of the collection `name`, from the entries."""
    meta = await _entry(pool, NAMES_DATABASE, name_entry(tenant, database, name))
    if meta is None or (meta.get("tenant"), meta.get("database"), meta.get("name")) != (
        tenant,
        database,
        name,
    ):
        return None
    client_id = meta.get("client_id")
    return client_id if isinstance(client_id, str) else None
