"""Client-visible collection ids and the per-replica ids behind them.

Chroma picks a collection's id itself on create, so every replica of every shard has its
own id for the same (tenant, database, name). The id clients see is the one on shard 0's
first replica (the "primary"); the others are found by name and remembered. Ids never
change for a collection's life, so the map only needs forgetting on delete and on a
topology change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from chroma_operator.router.errors import (
    ChromaHTTPError,
    collection_not_found,
    shard_unavailable,
)
from chroma_operator.router.shard_zero import primary_first
from chroma_operator.router.shards import Reply, ShardCallError, ShardPool
from chroma_operator.router.trace import trace_headers

if TYPE_CHECKING:
    from chroma_operator.router.collection_ids import CollectionIds


def db_path(tenant: str, database: str) -> str:
    return f"/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"


def by_name_path(tenant: str, database: str, name: str) -> str:
    """Where a replica answers with its own model (and id) of the collection `name`."""
    return f"{db_path(tenant, database)}/collections/{quote(name, safe='')}"


def id_path(tenant: str, database: str, shard_id: str, suffix: str = "") -> str:
    """A collection's route on one replica, by that replica's own id for it."""
    return f"{db_path(tenant, database)}/collections/{shard_id}{suffix}"


def reply_error(reply: Reply, prefix: str = "") -> ChromaHTTPError:
    """A shard's own error answer, passed on (optionally naming the shard)."""
    try:
        body = reply.json()
        error, message = str(body["error"]), str(body["message"])
    except Exception:
        error, message = "ChromaError", reply.body.decode(errors="replace")
    return ChromaHTTPError(reply.status, error, prefix + message, trace_headers(reply.trace_id))


def check_scope(model: dict[str, Any], tenant: str, database: str, asked: str) -> None:
    """404 unless the collection lives in the path's tenant and database.

    Chroma 1.5.9 finds a collection by id in any tenant; its later releases answer 404
    for an id outside the path's tenant and database, and so does the router.
    """
    if model.get("tenant") != tenant or model.get("database") != database:
        raise collection_not_found(asked)


@dataclass
class ResolvedCollection:
    client_id: str
    tenant: str
    database: str
    name: str
    ids: dict[str, str] = field(default_factory=dict)
    dimension: int | None = None
    space: str = "l2"

    def path(self, endpoint: str, suffix: str = "") -> str | None:
        shard_id = self.ids.get(endpoint)
        if shard_id is None:
            return None
        return id_path(self.tenant, self.database, shard_id, suffix)


# A request waits this long for the ids of replicas back in sync; a lookup still out
# then (a hung replica) goes on in the background, and the request reads elsewhere.
LEARN_WAIT_S = 0.5

Key = tuple[str, str, str]


class CollectionMap:
    def __init__(
        self,
        pool: ShardPool,
        ids: CollectionIds,
        on_tenant: Callable[[str], object] | None = None,
    ) -> None:
        self.pool = pool
        self.ids = ids  # written down for lookups while the primary is away
        self.on_tenant = on_tenant  # told of the tenant of each collection learned
        self._known: dict[Key, ResolvedCollection] = {}
        self._learning: dict[Key, asyncio.Task[bool]] = {}

    def forget(self, tenant: str, database: str, client_id: str) -> None:
        self._known.pop((tenant, database, client_id), None)

    def forget_database(self, tenant: str, database: str) -> None:
        for key in [k for k in self._known if k[:2] == (tenant, database)]:
            del self._known[key]

    def forget_all(self) -> None:
        self._known.clear()

    def forget_name(self, tenant: str, database: str, name: str) -> str | None:
        key = self._key_of(tenant, database, name)
        if key is not None:
            del self._known[key]
        return None if key is None else key[2]

    def readable(self) -> list[tuple[int, str]]:
        """Replicas that are read from: in sync (a stale or hung one is not asked)."""
        book = self.pool.book
        targets = self.pool.all_endpoints()
        return targets if book is None else [(s, ep) for s, ep in targets if book.in_sync(ep)]

    def unknown(self, coll: ResolvedCollection) -> list[tuple[int, str]]:
        """Replicas read from whose id for `coll` this router has not learned yet (one was
        stale or down when the collection was resolved)."""
        return [(s, ep) for s, ep in self.readable() if ep not in coll.ids]

    async def _by_name(
        self,
        tenant: str,
        database: str,
        name: str,
        headers: Mapping[str, str],
        targets: list[tuple[int, str]],
    ) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str]]]:
        """Each target replica's model of `name`, and those that answered "not found"."""
        path = by_name_path(tenant, database, name)
        results = await asyncio.gather(
            *(self.pool.call(s, ep, "GET", path, headers=headers) for s, ep in targets),
            return_exceptions=True,
        )
        models: dict[str, dict[str, Any]] = {}
        missing: list[tuple[int, str]] = []
        for (s, ep), r in zip(targets, results, strict=True):
            if isinstance(r, ShardCallError):
                continue
            if isinstance(r, BaseException):
                raise r
            if r.ok:
                models[ep] = r.json()
            elif r.status == 404:
                missing.append((s, ep))
        return models, missing

    async def _heal(
        self,
        tenant: str,
        database: str,
        primary_model: dict[str, Any],
        missing: list[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> dict[str, dict[str, Any]]:
        """Create the collection on replicas that lack it (an interrupted create or delete)."""
        body = orjson.dumps(
            {
                "name": primary_model["name"],
                "metadata": primary_model.get("metadata"),
                "configuration": primary_model.get("configuration_json"),
                "get_or_create": True,
            }
        )
        path = f"{db_path(tenant, database)}/collections"
        results = await asyncio.gather(
            *(
                self.pool.call(s, ep, "POST", path, content=body, headers=headers)
                for s, ep in missing
            ),
            return_exceptions=True,
        )
        healed: dict[str, dict[str, Any]] = {}
        for (_, ep), r in zip(missing, results, strict=True):
            if isinstance(r, Reply) and r.ok:
                healed[ep] = r.json()
        return healed

    def learn(
        self,
        tenant: str,
        database: str,
        name: str,
        models: Mapping[str, dict[str, Any]],
        stand_in: dict[str, Any] | None = None,
    ) -> ResolvedCollection | None:
        """Record the per-replica ids from their models; the primary's id is the key (or,
        while the primary is away, the `stand_in` model's: a sibling's, with that id)."""
        primary = models.get(self.pool.primary, stand_in)
        if primary is None:
            return None
        coll = ResolvedCollection(
            client_id=str(primary["id"]),
            tenant=tenant,
            database=database,
            name=name,
            ids={ep: str(m["id"]) for ep, m in models.items()},
            dimension=max_dimension([*models.values(), primary]),
            space=distance_space(primary),
        )
        self._known[(tenant, database, coll.client_id)] = coll
        if self.on_tenant is not None:
            self.on_tenant(tenant)
        self.ids.saw(coll.client_id, (tenant, database, name))
        return coll

    def _key_of(self, tenant: str, database: str, name: str) -> Key | None:
        for key, coll in self._known.items():
            if key[:2] == (tenant, database) and coll.name == name:
                return key
        return None

    def known_id(self, tenant: str, database: str, name: str) -> str | None:
        """The client id of a collection this router resolved, by name."""
        key = self._key_of(tenant, database, name)
        return None if key is None else key[2]

    async def model_by_id(
        self, tenant: str, database: str, client_id: str, headers: Mapping[str, str]
    ) -> tuple[dict[str, Any], bool]:
        """The primary's model of the collection: its name, and proof that it still exists;
        and whether the primary said so (else an in-sync sibling did, through the entries
        of `collection_ids.py`, while the primary is away)."""
        pool, primary = self.pool, self.pool.primary
        path = f"{db_path(tenant, database)}/collections/by-id/{client_id}"

        async def ask_primary() -> Reply:
            return await pool.call(0, primary, "GET", path, headers=headers)

        async def ask_sibling() -> dict[str, Any] | None:
            return await self.ids.stand_in_model(pool, tenant, database, client_id, headers)

        answer: Any
        try:
            answer, direct = await primary_first(ask_primary, ask_sibling, pool)
        except ShardCallError as exc:
            raise shard_unavailable(0, primary, exc.reason) from exc
        if not direct:
            return answer, False
        reply: Reply = answer
        if not reply.ok:
            raise reply_error(reply)
        found: dict[str, Any] = reply.json()
        check_scope(found, tenant, database, client_id)
        return found, True

    def _learning_task(
        self,
        coll: ResolvedCollection,
        unknown: list[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> asyncio.Task[bool]:
        """One lookup of a collection's missing ids at a time, shared by its requests."""
        key = (coll.tenant, coll.database, coll.client_id)
        task = self._learning.get(key)
        if task is None:
            task = asyncio.ensure_future(self._learn_unknown(coll, unknown, headers))
            self._learning[key] = task

            def finished(done: asyncio.Task[bool]) -> None:
                self._learning.pop(key, None)
                if not done.cancelled():
                    done.exception()  # retrieved: a request that waited re-raises it

            task.add_done_callback(finished)
        return task

    async def _learn_unknown(
        self,
        coll: ResolvedCollection,
        unknown: list[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> bool:
        """Learn the ids of replicas that came (back) in sync since `coll` was resolved,
        asking only them, with the primary's check that the collection is still the same.

        Only those replicas are asked, so a hung replica whose id is known stalls nothing
        here (and a hung one being asked holds a request up `LEARN_WAIT_S` at most). The
        ids go into `coll` itself: requests holding it see them too. False when only a
        full resolve will do (the collection was renamed, or a replica lacks it).
        """
        (primary_model, _), (models, missing) = await asyncio.gather(
            self.model_by_id(coll.tenant, coll.database, coll.client_id, headers),
            self._by_name(coll.tenant, coll.database, coll.name, headers, unknown),
        )
        if missing or primary_model.get("name") != coll.name:
            self.forget(coll.tenant, coll.database, coll.client_id)
            return False
        coll.ids.update({ep: str(m["id"]) for ep, m in models.items()})
        dimension = max_dimension([*models.values(), {"dimension": coll.dimension}])
        if dimension is not None:
            coll.dimension = dimension
        return True

    async def resolve(
        self,
        tenant: str,
        database: str,
        client_id: str,
        headers: Mapping[str, str],
        need_dimension: bool = False,
    ) -> ResolvedCollection:
        """The collection behind `client_id`, asking the shards only the first time (and
        later only the replicas whose id it still lacks)."""
        coll = self._known.get((tenant, database, client_id))
        if coll is not None and not (need_dimension and coll.dimension is None):
            unknown = self.unknown(coll)
            if not unknown:
                return coll
            learning = self._learning_task(coll, unknown, headers)
            done, _ = await asyncio.wait({learning}, timeout=LEARN_WAIT_S)
            if not done or learning.result():
                return coll  # still out: this request does without those replicas
        primary_model, direct = await self.model_by_id(tenant, database, client_id, headers)
        name = str(primary_model["name"])
        readable = self.readable()
        if not direct:  # away or held: its id for the collection is learned once it is back
            readable = [(s, ep) for s, ep in readable if ep != self.pool.primary]
        models, missing = await self._by_name(tenant, database, name, headers, readable)
        if missing:
            models.update(await self._heal(tenant, database, primary_model, missing, headers))
        if direct:
            models[self.pool.primary] = primary_model
        learned = self.learn(tenant, database, name, models, stand_in=primary_model)
        assert learned is not None  # a replica that did not answer is asked next time
        return learned


def distance_space(model: Mapping[str, Any]) -> str:
    """The collection's distance space from its configuration (Chroma's default: l2)."""
    config = model.get("configuration_json") or {}
    for index in ("hnsw", "spann"):
        section = config.get(index) if isinstance(config, dict) else None
        if isinstance(section, dict) and section.get("space") in ("l2", "ip", "cosine"):
            return str(section["space"])
    return "l2"


def max_dimension(models: Any) -> int | None:
    dims = [m.get("dimension") for m in models if m.get("dimension") is not None]
    return int(max(dims)) if dims else None
