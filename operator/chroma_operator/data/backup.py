"""Take a backup of a cluster through its router: one replica per shard, held still.

For each shard: pick one replica that answers, ask the router to hold it (detach it from
writes; hints queue meanwhile, or with one replica writes get 503 + Retry-After), copy
every collection of that replica with the mover into the collection's record file, then
release it. A collection's records are the union over shards. `manifest.json` is written
last: a folder without one is an unfinished backup and is removed on failure.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from chroma_operator.data.backup_format import (
    MANIFEST,
    CollectionEntry,
    Manifest,
    RecordFileWriter,
)
from chroma_operator.data.chroma_http import (
    ChromaCallError,
    ChromaHTTP,
    CollectionRef,
    tls_context,
)
from chroma_operator.data.digest import mode_for_space
from chroma_operator.data.mover import CollectionSource, move
from chroma_operator.data.store import Store
from chroma_operator.data.tenant_registry import registered_at, tenants_to_cover

Log = Callable[[str], None]


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message is one line for the user."""


@dataclass
class _Open:
    """A collection being written: its record file and what the manifest needs."""

    writer: RecordFileWriter
    info: dict[str, Any]
    dimension: int | None = None


@dataclass
class BackupResult:
    manifest: Manifest
    location: str
    seconds: float
    warnings: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_backup_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def router_topology(http: ChromaHTTP) -> dict[str, Any]:
    try:
        topo = http.request("GET", "/internal/topology")
    except ChromaCallError as exc:
        if exc.status == 404:
            raise BackupError(
                f"{http.base_url} has no /internal/topology: not a chroma-operator router"
            ) from None
        raise
    if not isinstance(topo, dict) or not topo.get("shards"):
        raise BackupError(f"{http.base_url}/internal/topology: no shards in the answer")
    return topo


def pick_replica(endpoints: list[str], headers: dict[str, str] | None = None) -> str:
    """The first replica that answers its heartbeat."""
    for ep in endpoints:
        try:
            url = ep.rstrip("/") + "/api/v2/heartbeat"
            if httpx.get(url, headers=headers, timeout=5, verify=tls_context()).status_code == 200:
                return ep
        except httpx.HTTPError:
            continue
    raise BackupError(f"no replica of the shard answers ({', '.join(endpoints)})")


def _hold(router: ChromaHTTP, shard: int, replica: str, action: str) -> dict[str, Any] | None:
    """POST /internal/backup/{hold,release}: the router's answer, None when it has no such
    route (an answer's `mode` says how writes fare: `detached` or `blocked`)."""
    try:
        got = router.request(
            "POST", f"/internal/backup/{action}", {"shard": shard, "replica": replica}
        )
    except ChromaCallError as exc:
        if exc.status in (404, 405, 501):
            return None
        raise
    return dict(got) if isinstance(got, dict) else {}


def _configuration(coll: dict[str, Any]) -> dict[str, Any]:
    cfg = coll.get("configuration_json") or {}
    return {k: v for k, v in cfg.items() if v is not None}


def create_backup(
    router_url: str,
    dest: str,
    *,
    tenants: list[str] | None = None,
    progress: bool = False,
    log: Log = lambda _m: None,
    rate_limit: float | None = None,
    page_size: int | None = None,
    headers: dict[str, str] | None = None,
) -> BackupResult:
    """Back up every collection of `tenants` (default_tenant always) reachable via the router."""
    started, t0 = now_iso(), time.monotonic()
    warnings: list[str] = []
    backup_id = new_backup_id()
    store = Store(dest).child(backup_id)
    router = ChromaHTTP(router_url, headers=headers)
    open_files: dict[tuple[str, str, str], _Open] = {}
    try:
        topo = router_topology(router)
        version = router.version()
        endpoints = [str(ep) for shard in topo["shards"] for ep in shard["endpoints"]]
        wanted = tenants_to_cover(tenants or [], registered_at(endpoints, headers))
        log(f"tenants: {', '.join(wanted)}")
        point_in_time = True
        for shard in topo["shards"]:
            index, replica = int(shard["index"]), pick_replica(list(shard["endpoints"]), headers)
            held = _hold(router, index, replica, "hold")
            if held is not None:
                log(f"shard {index}: {replica} held ({held.get('mode', '?')}) for the copy")
            else:
                point_in_time = False
                msg = (
                    f"the router cannot hold shard {index} (no /internal/backup/hold): "
                    "its copy is not point-in-time if it is being written"
                )
                warnings.append(msg)
                log(f"warning: {msg}")
            try:
                _copy_shard(
                    ChromaHTTP(replica, headers=headers),
                    index,
                    store,
                    wanted,
                    open_files,
                    progress,
                    log,
                    rate_limit,
                    page_size,
                )
            finally:
                if held is not None:
                    _hold(router, index, replica, "release")
                    log(f"shard {index}: {replica} released")
        entries = []
        for (tenant, database, name), o in sorted(open_files.items()):
            entry = o.writer.close()
            cfg = _configuration(o.info)
            entries.append(
                CollectionEntry(
                    tenant=tenant,
                    database=database,
                    name=name,
                    configuration=cfg,
                    metadata=o.info.get("metadata") or None,
                    embedding_function=cfg.get("embedding_function"),
                    space=(cfg.get("hnsw") or {}).get("space"),
                    dimension=o.writer.dimension or o.info.get("dimension"),
                    count=o.writer.count,
                    digest=o.writer.digest.to_json(),
                    file=entry,
                )
            )
        open_files.clear()
        manifest = Manifest(
            backup_id=backup_id,
            cluster=topo,
            source=str(httpx.URL(router_url).copy_with(username=None, password=None)),
            chroma_version=version,
            started=started,
            completed=now_iso(),
            point_in_time=point_in_time,
            collections=entries,
        )
        store.write_bytes(MANIFEST, manifest.to_json())
        return BackupResult(manifest, store.url, time.monotonic() - t0, warnings)
    except BaseException:
        for o in open_files.values():
            with contextlib.suppress(Exception):
                o.writer.close()
        try:
            store.remove()
        except Exception as exc:
            log(f"warning: could not remove the unfinished backup {store.url}: {exc}")
        raise
    finally:
        router.close()


def _copy_shard(
    replica: ChromaHTTP,
    index: int,
    store: Store,
    tenants: list[str],
    open_files: dict[tuple[str, str, str], _Open],
    progress: bool,
    log: Log,
    rate_limit: float | None,
    page_size: int | None,
) -> None:
    with replica as http:
        batch = http.max_batch_size()
        for tenant in tenants:
            for database in http.list_databases(tenant):
                for coll in http.list_collections(tenant, database):
                    key = (tenant, database, str(coll["name"]))
                    o = open_files.get(key)
                    if o is None:
                        rel = (
                            f"records/{len(open_files):04d}-{_safe(key[1])}-{_safe(key[2])}.parquet"
                        )
                        space = (_configuration(coll).get("hnsw") or {}).get("space")
                        writer = RecordFileWriter(
                            store.open(rel, "wb"),
                            rel,
                            max_batch_size=batch,
                            mode=mode_for_space(space),
                        )
                        o = open_files[key] = _Open(writer, coll)
                    ref = CollectionRef(tenant, database, str(coll["id"]), key[2])
                    stats = move(
                        CollectionSource(http, ref),
                        o.writer,
                        progress=progress,
                        description=f"shard {index} {key[2]}",
                        rate_limit=rate_limit,
                        page_size=page_size,
                    )
                    log(
                        f"shard {index} ({http.base_url}): {tenant}/{database}/{key[2]}: "
                        f"{stats.scanned} records"
                    )


def load_manifest(store: Store) -> Manifest:
    if not store.exists(MANIFEST):
        raise BackupError(f"{store.url}: no {MANIFEST}: not a backup, or one that did not finish")
    try:
        return Manifest.model_validate(orjson.loads(store.read_bytes(MANIFEST)))
    except (orjson.JSONDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise BackupError(f"{store.url}/{MANIFEST} is not a valid manifest: {first}") from None
