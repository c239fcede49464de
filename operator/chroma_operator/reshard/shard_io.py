"""The shards a move touches, through the shared Chroma client of `data/`.

What resharding adds to `data.chroma_http`: a call waits out an outage instead of failing
(the `on_pause` callback says which shard), so a move pauses and carries on when the shard
answers again -- it never skips a shard; every call is safe to repeat (reads, upserts,
deletes by id). Collections are named the same on every shard (each shard has its own id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chroma_operator.data.chroma_http import ChromaCallError, ChromaHTTP, CollectionRef
from chroma_operator.data.digest import id_pages
from chroma_operator.data.mover import CollectionSink, CollectionSource, delete_ids
from chroma_operator.data.records import RecordBatch
from chroma_operator.data.tenant_registry import register, registered_tenants, tenants_to_cover
from chroma_operator.router.placement import shard_for

_WAIT_STATUS = frozenset({0, 502, 503, 504})  # 0: no answer at all
MAX_PAGE = 1000


class MoveStopped(Exception):
    """The move was asked to stop (its thread is ending); it resumes from the topology."""


@dataclass(frozen=True)
class CollKey:
    """A collection by name: the same on every shard (each shard has its own id)."""

    tenant: str
    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.database}/{self.name}"


class PatientHTTP(ChromaHTTP):
    """A client of one replica that waits (pausing the move) while it cannot answer."""

    def __init__(
        self,
        base_url: str,
        shard: int,
        stop: threading.Event,
        on_pause: Callable[[str | None], None],
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, headers=headers, timeout=timeout, retries=0)
        self.shard, self.stop, self.on_pause = shard, stop, on_pause

    def request(self, method: str, path: str, body: Any = None, *, ok404: bool = False) -> Any:
        delay, paused = 0.2, False
        while True:
            if self.stop.is_set():
                raise MoveStopped
            try:
                got = super().request(method, path, body, ok404=ok404)
            except ChromaCallError as exc:
                if exc.status not in _WAIT_STATUS:
                    raise
                paused = True
                problem = f"status {exc.status}" if exc.status else exc.message
                self.on_pause(
                    f"shard {self.shard} ({self.base_url}) is not answering ({problem}); waiting"
                )
                self.stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            if paused:
                self.on_pause(None)
            return got


def gone(exc: ChromaCallError) -> bool:
    """The collection was deleted meanwhile: nothing left to move there."""
    return exc.status == 404


class Shards:
    """Every replica of every shard of one topology (`shards[i]`: shard i's endpoints)."""

    def __init__(
        self,
        shards: list[list[str]],
        stop: threading.Event,
        on_pause: Callable[[str | None], None],
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.replicas = [
            [PatientHTTP(ep, i, stop, on_pause, timeout=timeout, headers=headers) for ep in eps]
            for i, eps in enumerate(shards)
        ]
        self._refs: dict[tuple[int, int, CollKey], CollectionRef | None] = {}

    def close(self) -> None:
        for reps in self.replicas:
            for http in reps:
                http.close()

    def max_batch(self) -> int:
        return max(1, min(self.replicas[0][0].max_batch_size(), MAX_PAGE))

    # --- collections -----------------------------------------------------------------

    def tenants(self, named: list[str]) -> list[str]:
        """`default_tenant`, `named` and every tenant the routers registered."""
        registered = registered_tenants(h for reps in self.replicas for h in reps)
        return tenants_to_cover(named, registered)

    def ensure_databases(self, tenants: list[str]) -> None:
        """The tenant registry and every database of shard 0, empty ones too, on every
        replica: a collection a client creates in one later is created on every shard,
        and the new shards hold the registry like the old ones."""
        everywhere = [h for reps in self.replicas for h in reps]
        for h in everywhere:
            register(h, tenants)
        for tenant in tenants:
            for database in self.replicas[0][0].list_databases(tenant):
                for h in everywhere:
                    h.ensure_database(tenant, database)

    def collections(self, tenants: list[str]) -> list[tuple[CollKey, dict[str, Any]]]:
        """Every collection of `tenants` on shard 0's first replica, with its model (for
        creating it)."""
        http = self.replicas[0][0]
        return [
            (CollKey(tenant, db, str(model["name"])), model)
            for tenant in tenants
            for db in http.list_databases(tenant)
            for model in http.list_collections(tenant, db)
        ]

    def ref(self, shard: int, key: CollKey, replica: int = 0) -> CollectionRef | None:
        """That replica's reference to the collection (None: it does not exist there)."""
        cache = (shard, replica, key)
        if self._refs.get(cache) is None:
            http = self.replicas[shard][replica]
            self._refs[cache] = http.collection_ref(key.tenant, key.database, key.name)
        return self._refs[cache]

    def ensure(self, shard: int, key: CollKey, model: dict[str, Any]) -> None:
        """Create the collection on every replica of `shard` that lacks it."""
        for r, http in enumerate(self.replicas[shard]):
            if self.ref(shard, key, r) is None:
                self._refs[(shard, r, key)] = http.create_like(
                    key.tenant, key.database, key.name, model
                )

    # --- records ---------------------------------------------------------------------

    def scan_ids(self, shard: int, key: CollKey, size: int = 500) -> set[str] | None:
        """Every id on the shard's first replica (None: the collection is gone).

        `get` pages by offset, so a delete behind the cursor would skip an id; the pages
        overlap by half, which tolerates that many deletes between two pages.
        """
        ref = self.ref(shard, key)
        if ref is None:
            return None
        try:
            return {
                i
                for page in id_pages(self.replicas[shard][0], ref, size, overlap=True)
                for i in page
            }
        except ChromaCallError as exc:
            if gone(exc):
                return None
            raise

    def source(self, shard: int, key: CollKey) -> CollectionSource | None:
        """The shard's first replica as the mover's source."""
        ref = self.ref(shard, key)
        return None if ref is None else CollectionSource(self.replicas[shard][0], ref)

    def fetch(self, shard: int, key: CollKey, ids: list[str]) -> RecordBatch | None:
        """The records with `ids` on the shard's first replica (all fields)."""
        ref = self.ref(shard, key)
        if ref is None:
            return None
        try:
            return self.replicas[shard][0].get(ref, ids=ids)
        except ChromaCallError as exc:
            if gone(exc):
                return None
            raise

    def sinks(self, shard: int, key: CollKey, *, replace: bool = False) -> list[CollectionSink]:
        """A mover sink per replica of `shard` that holds the collection."""
        out = []
        for r, http in enumerate(self.replicas[shard]):
            ref = self.ref(shard, key, r)
            if ref is not None:
                out.append(CollectionSink(http, ref, replace=replace))
        return out

    def delete(self, shard: int, key: CollKey, ids: list[str]) -> None:
        """Delete `ids` on every replica of `shard`."""
        if not ids:
            return
        for r, http in enumerate(self.replicas[shard]):
            ref = self.ref(shard, key, r)
            if ref is not None:
                delete_ids(http, ref, ids)


class OwnerSink:
    """The mover's sink for a move: each record goes to every replica of its owner under
    `count` shards (plain upsert, or delete-then-upsert with `replace`)."""

    def __init__(self, shards: Shards, key: CollKey, count: int, *, replace: bool = False):
        self.shards, self.key, self.count, self.replace = shards, key, count, replace
        self.written = 0

    @property
    def max_batch_size(self) -> int:
        return self.shards.max_batch()

    def write(self, batch: RecordBatch) -> None:
        by_owner: dict[int, list[int]] = {}
        for j, rid in enumerate(batch.ids):
            by_owner.setdefault(shard_for(rid, self.count), []).append(j)
        for owner, positions in sorted(by_owner.items()):
            part = batch.select(positions)
            for sink in self.shards.sinks(owner, self.key, replace=self.replace):
                sink.write(part)
        self.written += len(batch)
