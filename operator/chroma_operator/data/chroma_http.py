"""Typed calls to one Chroma server's HTTP API v2 (chromadb 1.5.9), or to a router.

Only what moving, digesting, backing up and restoring need. Errors carry Chroma's own
`{"error", "message"}` so callers can print one clear line. Transient failures (connect
errors, 502/503/504, 503 + Retry-After from a router holding a shard) are retried with
backoff: every call here is safe to repeat (reads, upserts, deletes by id).
"""

from __future__ import annotations

import functools
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from chroma_operator.data.records import INCLUDE_ALL, RecordBatch

API = "/api/v2"
DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
_RETRY_STATUS = {502, 503, 504}
# Chroma 1.5 answers a page read that races a delete of one of its records with this
# 500; the same read a moment later succeeds. Reads retry it, a few times.
_READ_RACE = "Error finding id"
_READ_RACE_TRIES = 5


class ChromaCallError(RuntimeError):
    """A call failed: the URL, the status (0 when none came back) and Chroma's message."""

    def __init__(self, method: str, url: str, status: int, message: str) -> None:
        self.method, self.url, self.status, self.message = method, url, status, message
        where = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{method} {url}: {where}: {message}")


@dataclass(frozen=True)
class CollectionRef:
    """Where a collection lives on one server: tenant, database and that server's id."""

    tenant: str
    database: str
    id: str
    name: str = ""

    def path(self) -> str:
        return f"{db_path(self.tenant, self.database)}/collections/{self.id}"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once: loading the CA bundle costs ~50 ms
    per client, and a restore opens one client per shard."""
    return httpx.create_ssl_context()


def db_path(tenant: str, database: str) -> str:
    return f"{API}/tenants/{quote(tenant, safe='')}/databases/{quote(database, safe='')}"


class ChromaHTTP:
    """A synchronous client of one base URL (a Chroma server or a chroma-operator router)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers or {},
            timeout=httpx.Timeout(timeout),
            verify=tls_context(),
        )
        self._preflight: dict[str, Any] | None = None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ChromaHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, ok404: bool = False) -> Any:
        """JSON in, JSON out; retries transient failures; None for a 404 when `ok404`."""
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else {}
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.request(method, path, content=content, headers=headers)
            except httpx.TransportError as exc:
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise ChromaCallError(method, url, 0, f"{type(exc).__name__}: {exc}") from None
            if resp.status_code in _RETRY_STATUS and attempt < self.retries:
                time.sleep(_retry_after(resp, self.backoff * 2**attempt))
                continue
            if resp.status_code == 404 and ok404:
                return None
            if resp.status_code >= 400:
                raise ChromaCallError(method, url, resp.status_code, _error_message(resp))
            return orjson.loads(resp.content) if resp.content else None
        raise AssertionError("unreachable")

    # --- server ----------------------------------------------------------------------

    def version(self) -> str:
        return str(self.request("GET", API + "/version"))

    def preflight(self) -> dict[str, Any]:
        if self._preflight is None:
            self._preflight = dict(self.request("GET", API + "/pre-flight-checks"))
        return self._preflight

    def max_batch_size(self) -> int:
        return int(self.preflight().get("max_batch_size") or 1000)

    def supports_base64(self) -> bool:
        return bool(self.preflight().get("supports_base64_encoding", False))

    # --- databases and collections ----------------------------------------------------

    def list_databases(self, tenant: str) -> list[str]:
        """Database names of a tenant ([] when the tenant does not exist)."""
        body = self.request("GET", f"{API}/tenants/{quote(tenant, safe='')}/databases", ok404=True)
        return [str(d["name"]) for d in body or []]

    def list_collections(self, tenant: str, database: str, page: int = 100) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            path = f"{db_path(tenant, database)}/collections?limit={page}&offset={len(out)}"
            got = self.request("GET", path, ok404=True) or []
            out.extend(got)
            if len(got) < page:
                return out

    def get_collection(self, tenant: str, database: str, name: str) -> dict[str, Any] | None:
        path = f"{db_path(tenant, database)}/collections/{quote(name, safe='')}"
        got = self.request("GET", path, ok404=True)
        return dict(got) if got is not None else None

    def collection_ref(self, tenant: str, database: str, name: str) -> CollectionRef | None:
        got = self.get_collection(tenant, database, name)
        return None if got is None else CollectionRef(tenant, database, str(got["id"]), name)

    def ensure_database(self, tenant: str, database: str) -> bool:
        """Create the tenant and database if missing; True when the database was created."""
        if self.request("GET", f"{API}/tenants/{quote(tenant, safe='')}", ok404=True) is None:
            self.request("POST", API + "/tenants", {"name": tenant})
        if self.request("GET", db_path(tenant, database), ok404=True) is not None:
            return False
        path = f"{API}/tenants/{quote(tenant, safe='')}/databases"
        self.request("POST", path, {"name": database})
        return True

    def delete_database(self, tenant: str, database: str) -> None:
        self.request("DELETE", db_path(tenant, database), ok404=True)

    def create_collection(
        self,
        tenant: str,
        database: str,
        name: str,
        *,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        get_or_create: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "get_or_create": get_or_create}
        if configuration:
            body["configuration"] = configuration
        if metadata:
            body["metadata"] = metadata
        return dict(self.request("POST", f"{db_path(tenant, database)}/collections", body))

    def create_like(
        self, tenant: str, database: str, name: str, model: dict[str, Any]
    ) -> CollectionRef:
        """Create (or get) a collection configured as `model` (another server's copy),
        database included. A configuration this server refuses is retried with only its
        `hnsw` part, the part that decides how records are stored and compared."""
        self.ensure_database(tenant, database)
        config = {k: v for k, v in (model.get("configuration_json") or {}).items() if v}

        def create(configuration: dict[str, Any] | None) -> dict[str, Any]:
            return self.create_collection(
                tenant,
                database,
                name,
                configuration=configuration,
                metadata=model.get("metadata"),
                get_or_create=True,
            )

        try:
            made = create(config)
        except ChromaCallError:
            made = create({"hnsw": config["hnsw"]} if "hnsw" in config else None)
        return CollectionRef(tenant, database, str(made["id"]), name)

    def delete_collection(self, tenant: str, database: str, name: str) -> None:
        path = f"{db_path(tenant, database)}/collections/{quote(name, safe='')}"
        self.request("DELETE", path, ok404=True)

    # --- records -----------------------------------------------------------------------

    def count(self, ref: CollectionRef) -> int:
        return int(self.request("GET", ref.path() + "/count"))

    def get(
        self,
        ref: CollectionRef,
        *,
        offset: int = 0,
        limit: int | None = None,
        ids: list[str] | None = None,
        include: list[str] | None = None,
    ) -> RecordBatch:
        body: dict[str, Any] = {"include": INCLUDE_ALL if include is None else include}
        if ids is not None:
            body["ids"] = ids
        else:
            body["offset"] = offset
            if limit is not None:
                body["limit"] = limit
        return RecordBatch.from_get(self._read("POST", ref.path() + "/get", body))

    def get_ids(self, ref: CollectionRef, *, offset: int, limit: int) -> list[str]:
        body = {"include": [], "offset": offset, "limit": limit}
        return [str(i) for i in self._read("POST", ref.path() + "/get", body)["ids"]]

    def _read(self, method: str, path: str, body: Any) -> Any:
        """A read that retries Chroma's transient read-during-delete error."""
        for attempt in range(_READ_RACE_TRIES):
            try:
                return self.request(method, path, body)
            except ChromaCallError as exc:
                race = exc.status == 500 and _READ_RACE in exc.message
                if not race or attempt == _READ_RACE_TRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def upsert(self, ref: CollectionRef, batch: RecordBatch) -> None:
        if len(batch):
            self.request(
                "POST", ref.path() + "/upsert", batch.to_write_body(self.supports_base64())
            )

    def add(self, ref: CollectionRef, batch: RecordBatch) -> None:
        if len(batch):
            self.request("POST", ref.path() + "/add", batch.to_write_body(self.supports_base64()))

    def delete(self, ref: CollectionRef, ids: list[str]) -> int:
        """Delete ids in pages of max_batch_size; the count Chroma reports."""
        deleted = 0
        size = self.max_batch_size()
        for start in range(0, len(ids), size):
            got = self.request("POST", ref.path() + "/delete", {"ids": ids[start : start + size]})
            deleted += int((got or {}).get("deleted", 0))
        return deleted


def _retry_after(resp: httpx.Response, default: float) -> float:
    try:
        return min(30.0, max(0.05, float(resp.headers.get("retry-after", default))))
    except ValueError:
        return default


def _error_message(resp: httpx.Response) -> str:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict) and "message" in body:
        kind = body.get("error")
        return f"{kind}: {body['message']}" if kind else str(body["message"])
    return resp.text[:300]
