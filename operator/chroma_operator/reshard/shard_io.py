"""HTTP to the shards a move touches: list collections, scan ids, copy, delete.

Every call is safe to repeat (reads, upserts, deletes by id), so a transport failure or
a gateway status is waited out: the move pauses (the `on_pause` callback says which
shard) and carries on when the shard answers again -- it never skips a shard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

API = "/api/v2"
RECORD_FIELDS = ("embeddings", "documents", "metadatas", "uris")
_RETRY_STATUS = frozenset({502, 503, 504})


class MoveStopped(Exception):
    """The move was asked to stop (its thread is ending); it resumes from the topology."""


class ShardCallFailed(RuntimeError):
    """A shard answered with an error that waiting will not fix."""


def db_path(tenant: str, database: str) -> str:
    return f"{API}/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"


@dataclass(frozen=True)
class CollKey:
    """A collection by name: the same on every shard (each shard has its own id)."""

    tenant: str
    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.database}/{self.name}"


Records = dict[str, Any]


class ShardIO:
    """Calls to every replica of every shard of one topology, waiting out outages."""

    def __init__(
        self,
        shards: list[list[str]],
        stop: threading.Event,
        on_pause: Callable[[str | None], None],
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.shards = shards
        self.stop = stop
        self.on_pause = on_pause
        self.client = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers or {})
        self._ids: dict[tuple[str, CollKey], str | None] = {}

    def close(self) -> None:
        self.client.close()

    def call(self, shard: int, endpoint: str, method: str, path: str, body: Any = None) -> Any:
        """One JSON call; waits (pausing the move) while the replica cannot answer."""
        content = orjson.dumps(body) if body is not None else None
        delay, paused = 0.2, False
        while True:
            if self.stop.is_set():
                raise MoveStopped
            try:
                resp = self.client.request(
                    method,
                    endpoint.rstrip("/") + API + path,
                    content=content,
                    headers={"content-type": "application/json"},
                )
                problem = f"status {resp.status_code}" if resp.status_code in _RETRY_STATUS else ""
            except httpx.TransportError as exc:
                resp, problem = None, f"{type(exc).__name__}: {exc}"
            if not problem and resp is not None:
                if paused:
                    self.on_pause(None)
                if resp.status_code == 404:
                    return None
                if resp.status_code >= 400:
                    raise ShardCallFailed(
                        f"shard {shard} ({endpoint}) {method} {path}: "
                        f"{resp.status_code} {resp.text[:300]}"
                    )
                return orjson.loads(resp.content) if resp.content else None
            paused = True
            self.on_pause(f"shard {shard} ({endpoint}) is not answering ({problem}); waiting")
            self.stop.wait(delay)
            delay = min(delay * 2, 5.0)

    # --- collections -----------------------------------------------------------------

    def collections(self, tenants: list[str]) -> list[tuple[CollKey, dict[str, Any]]]:
        """Every collection on shard 0's first replica, with its model (for creating it)."""
        ep = self.shards[0][0]
        out: list[tuple[CollKey, dict[str, Any]]] = []
        for tenant in tenants:
            dbs = self.call(0, ep, "GET", f"/tenants/{quote(tenant, safe='')}/databases") or []
            for db in dbs:
                offset = 0
                while True:
                    path = f"{db_path(tenant, db['name'])}/collections?limit=100&offset={offset}"
                    page = self.call(0, ep, "GET", path.removeprefix(API)) or []
                    out.extend((CollKey(tenant, db["name"], str(m["name"])), m) for m in page)
                    if len(page) < 100:
                        break
                    offset += 100
        return out

    def coll_id(self, shard: int, endpoint: str, key: CollKey) -> str | None:
        """That replica's id of the collection (None: it does not exist there)."""
        cache_key = (endpoint, key)
        if self._ids.get(cache_key) is None:
            path = f"{db_path(key.tenant, key.database)}/collections/{quote(key.name, safe='')}"
            model = self.call(shard, endpoint, "GET", path.removeprefix(API))
            self._ids[cache_key] = None if model is None else str(model["id"])
        return self._ids[cache_key]

    def ensure(self, shard: int, key: CollKey, model: dict[str, Any]) -> None:
        """Create the collection on every replica of `shard` that lacks it."""
        self.call(shard, self.shards[shard][0], "GET", "/heartbeat")
        for ep in self.shards[shard]:
            dbs = f"/tenants/{quote(key.tenant, safe='')}/databases"
            if self.call(shard, ep, "GET", f"{dbs}/{quote(key.database, safe='')}") is None:
                self.call(shard, ep, "POST", dbs, {"name": key.database})
            if self.coll_id(shard, ep, key) is not None:
                continue
            body = {
                "name": key.name,
                "metadata": model.get("metadata"),
                "configuration": model.get("configuration_json"),
                "get_or_create": True,
            }
            path = f"{db_path(key.tenant, key.database)}/collections".removeprefix(API)
            created = self.call(shard, ep, "POST", path, body)
            self._ids[(ep, key)] = str(created["id"])

    def _coll_path(self, shard: int, ep: str, key: CollKey, suffix: str) -> str | None:
        cid = self.coll_id(shard, ep, key)
        if cid is None:
            return None
        return f"{db_path(key.tenant, key.database)}/collections/{cid}{suffix}".removeprefix(API)

    # --- records ---------------------------------------------------------------------

    def scan_ids(self, shard: int, key: CollKey, page: int = 500) -> set[str] | None:
        """Every id on the shard's first replica (None: the collection is gone).

        `get` pages by offset, so a delete behind the cursor would skip an id; pages
        overlap by half, which tolerates that many deletes between two pages.
        """
        ep = self.shards[shard][0]
        path = self._coll_path(shard, ep, key, "/get")
        if path is None:
            return None
        ids: set[str] = set()
        offset = 0
        while True:
            got = self.call(
                shard, ep, "POST", path, {"include": [], "limit": page, "offset": offset}
            )
            if got is None:
                return None
            batch = [str(i) for i in got["ids"]]
            ids.update(batch)
            if len(batch) < page:
                return ids
            offset += page // 2

    def fetch(self, shard: int, key: CollKey, ids: list[str]) -> Records | None:
        """The records with `ids` on the shard's first replica (all fields)."""
        ep = self.shards[shard][0]
        path = self._coll_path(shard, ep, key, "/get")
        if path is None:
            return None
        got = self.call(shard, ep, "POST", path, {"ids": ids, "include": list(RECORD_FIELDS)})
        return dict(got) if got is not None else None

    def upsert(self, shard: int, key: CollKey, records: Records) -> None:
        """Write `records` to every replica of `shard`."""
        if not records["ids"]:
            return
        body: dict[str, Any] = {"ids": records["ids"]}
        for f in RECORD_FIELDS:
            col = records.get(f)
            if col is not None and any(v is not None for v in col):
                body[f] = col
        for ep in self.shards[shard]:
            path = self._coll_path(shard, ep, key, "/upsert")
            if path is not None:
                self.call(shard, ep, "POST", path, body)

    def delete(self, shard: int, key: CollKey, ids: list[str]) -> None:
        """Delete `ids` on every replica of `shard`."""
        if not ids:
            return
        for ep in self.shards[shard]:
            path = self._coll_path(shard, ep, key, "/delete")
            if path is not None:
                self.call(shard, ep, "POST", path, {"ids": ids})

    def max_batch(self) -> int:
        checks = self.call(0, self.shards[0][0], "GET", "/pre-flight-checks") or {}
        size = int(checks.get("max_batch_size") or 1000)
        return max(1, min(size, 1000))
