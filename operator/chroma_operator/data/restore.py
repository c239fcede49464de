"""Verify a backup, and restore one into an empty cluster through its router.

Restore checks everything it can before writing anything: the manifest parses, every
record file has its listed size and sha256, the target's Chroma major version matches,
and the target holds no collection of the backed-up tenants. Then it creates each
collection (the manifest's configuration and metadata) and adds the records, a few pages
in flight at once (loader.py); at the end every collection's count and digest, scanned
back from one replica of each shard, the shards at once (or through the router when the
target is not a chroma-operator router), must equal the manifest's. A failed restore
deletes the collections it created.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chroma_operator.data.backup import (
    BackupError,
    Log,
    load_manifest,
    pick_replica,
    router_topology,
)
from chroma_operator.data.backup_format import CollectionEntry, Manifest, RecordFileSource
from chroma_operator.data.chroma_http import ChromaCallError, ChromaHTTP, CollectionRef
from chroma_operator.data.digest import (
    Digest,
    diff_records,
    digest_collection,
    fetch_bucket_records,
    fetch_buckets,
)
from chroma_operator.data.loader import load_pages
from chroma_operator.data.store import Store


@dataclass
class RestoreResult:
    manifest: Manifest
    records: int
    seconds: float


def verify_files(store: Store, manifest: Manifest, log: Log = lambda _m: None) -> None:
    """Every listed file exists with its size and sha256 (read in full), or BackupError."""
    for c in manifest.collections:
        rel = c.file.path
        if not store.exists(rel):
            raise BackupError(f"{store.url}/{rel}: missing (listed in the manifest)")
        size = store.size(rel)
        if size != c.file.size:
            raise BackupError(
                f"{store.url}/{rel}: {size} bytes, the manifest says {c.file.size} (truncated?)"
            )
        if store.sha256(rel) != c.file.sha256:
            raise BackupError(f"{store.url}/{rel}: sha256 differs from the manifest (corrupted)")
        log(f"ok {rel}")


def _source(store: Store, c: CollectionEntry) -> RecordFileSource:
    return RecordFileSource(store.open(c.file.path), c.count)


def verify_backup(location: str, log: Log = lambda _m: None) -> Manifest:
    """Checksums, then each file's record count and digest against the manifest."""
    store = Store(location)
    manifest = load_manifest(store)
    verify_files(store, manifest, log)
    for c in manifest.collections:
        src = _source(store, c)
        want = Digest.from_json(c.digest)
        got = Digest(want.buckets, mode=want.mode)
        n = 0
        for batch in src.batches():
            got.add(batch)
            n += len(batch)
        if n != c.count:
            raise BackupError(f"{c.file.path}: {n} records, the manifest says {c.count}")
        if got.diff(want):
            raise BackupError(f"{c.file.path}: records do not match the manifest's digest")
    return manifest


def portable_configuration(c: CollectionEntry, manifest: Manifest) -> dict[str, Any] | None:
    """The collection's configuration for a new cluster.

    An embedding function that points at the source cluster's own encoder is left out:
    the target's router puts in its own encoder (or none), not the old cluster's URL.
    """
    config = dict(c.configuration)
    ef = config.get("embedding_function")
    encoder = ((manifest.cluster or {}).get("encoder") or {}).get("url")
    if isinstance(ef, dict) and encoder and ef.get("name") == "huggingface_server":
        url = str((ef.get("config") or {}).get("url") or "")
        if url.startswith(str(encoder).rstrip("/")):
            config.pop("embedding_function")
    return config or None


def major(version: str) -> str:
    return version.strip().lstrip("v").split(".", 1)[0]


def check_target(router: ChromaHTTP, manifest: Manifest) -> None:
    """The target speaks the same Chroma major version and holds none of our tenants' data."""
    target = router.version()
    if major(target) != major(manifest.chroma_version):
        raise BackupError(
            f"the backup was taken from Chroma API {manifest.chroma_version}, the target "
            f"runs {target}: major versions differ"
        )
    busy: list[str] = []
    for tenant in sorted({c.tenant for c in manifest.collections}):
        for database in router.list_databases(tenant):
            names = [str(c["name"]) for c in router.list_collections(tenant, database)]
            busy.extend(f"{tenant}/{database}/{n}" for n in names)
    if busy:
        shown = ", ".join(busy[:5]) + (" ..." if len(busy) > 5 else "")
        raise BackupError(
            f"the target is not empty ({len(busy)} collections: {shown}); "
            "restore only into an empty cluster"
        )


def restore_backup(
    location: str,
    router_url: str,
    *,
    progress: bool = False,
    log: Log = lambda _m: None,
    rate_limit: float | None = None,
    page_size: int | None = None,
    headers: dict[str, str] | None = None,
) -> RestoreResult:
    t0 = time.monotonic()
    store = Store(location)
    manifest = load_manifest(store)
    verify_files(store, manifest)
    created: list[CollectionEntry] = []
    new_databases: list[tuple[str, str]] = []
    with ChromaHTTP(router_url, headers=headers) as router:
        check_target(router, manifest)
        shards = shard_replicas(router, headers)
        size = min(page_size or router.max_batch_size(), router.max_batch_size())
        try:
            total = 0
            loaded: list[tuple[CollectionEntry, CollectionRef]] = []
            for c in manifest.collections:
                if router.ensure_database(c.tenant, c.database):
                    new_databases.append((c.tenant, c.database))
                got = router.create_collection(
                    c.tenant,
                    c.database,
                    c.name,
                    configuration=portable_configuration(c, manifest),
                    metadata=c.metadata,
                )
                created.append(c)
                ref = CollectionRef(c.tenant, c.database, str(got["id"]), c.name)
                stats = load_pages(
                    _source(store, c).pages(size),
                    router,
                    ref,
                    rate_limit=rate_limit,
                    progress=progress,
                    total=c.count,
                    description=f"restore {c.name}",
                )
                total += stats.moved
                loaded.append((c, ref))
                log(f"{c.tenant}/{c.database}/{c.name}: {stats.moved} records loaded")
            # Verified once everything is in: each shard read back once, shards at once.
            for c, ref in loaded:
                _verify_restored(router, ref, store, c, shards, headers)
                log(f"{c.tenant}/{c.database}/{c.name}: {c.count} records, verified")
        except BaseException:
            for c in reversed(created):
                try:
                    router.delete_collection(c.tenant, c.database, c.name)
                except Exception as exc:
                    log(f"warning: could not remove {c.tenant}/{c.database}/{c.name}: {exc}")
            for tenant, database in new_databases:
                try:
                    router.delete_database(tenant, database)
                except Exception as exc:
                    log(f"warning: could not remove database {tenant}/{database}: {exc}")
            raise
    return RestoreResult(manifest, total, time.monotonic() - t0)


def _verify_restored(
    router: ChromaHTTP,
    ref: CollectionRef,
    store: Store,
    c: CollectionEntry,
    shards: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Count and digest of the restored collection must equal the manifest's.

    With the shard replicas known (`shards`: one answering replica per shard) each shard
    is scanned directly and the per-shard digests are merged: linear in the records. A
    scan through the router pages with offset+limit on every shard, quadratic overall.
    """
    want = Digest.from_json(c.digest)
    if shards:
        count, got = _digest_shards(shards, ref, want, headers)
    else:
        count = router.count(ref)
        got = None
    if count != c.count:
        raise BackupError(f"{c.name}: the target holds {count} records, the backup {c.count}")
    page_size = router.max_batch_size()
    if got is None:
        got = digest_collection(router, ref, want.buckets, page_size, want.mode)
    differ = got.diff(want)
    if not differ:
        return
    # Cosine collections drift by an ulp on every copy: recheck those buckets with a tolerance.
    saved: Iterable = fetch_buckets(_source(store, c).batches(), differ, want.buckets)  # type: ignore[type-arg]
    held = fetch_bucket_records(router, ref, differ, want.buckets, page_size)
    bad = diff_records(saved, held, want.mode)
    if bad:
        raise BackupError(
            f"{c.name}: {len(bad)} records differ from the backup after loading (e.g. {bad[0]})"
        )


def _digest_shards(
    shards: list[str], ref: CollectionRef, want: Digest, headers: dict[str, str] | None
) -> tuple[int, Digest]:
    """Records counted and digested on each shard's replica, merged into one digest."""

    def one(url: str) -> tuple[int, Digest]:
        with ChromaHTTP(url, headers=headers) as shard:
            local = shard.collection_ref(ref.tenant, ref.database, ref.name)
            if local is None:
                raise BackupError(f"{ref.name}: missing on shard {url} after loading")
            count = shard.count(local)
            got = digest_collection(shard, local, want.buckets, shard.max_batch_size(), want.mode)
            return count, got

    total = Digest(want.buckets, mode=want.mode)
    count = 0
    with ThreadPoolExecutor(max(1, len(shards)), thread_name_prefix="restore-check") as pool:
        for n, got in pool.map(one, shards):
            count += n
            total = total.merge(got)
    return count, total


def shard_replicas(router: ChromaHTTP, headers: dict[str, str] | None = None) -> list[str] | None:
    """One answering replica per shard from the router's topology (None: not a router)."""
    try:
        topo = router_topology(router)
    except (BackupError, ChromaCallError):
        return None
    return [pick_replica(list(s["endpoints"]), headers) for s in topo["shards"]]
