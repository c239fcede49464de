"""One repair run: find the replicas from the router, digest, fix what differs, verify.

Per shard, the in-sync replicas are the reference (the router says which: GET
/internal/replicas); every collection (matched by tenant, database and name, since each
replica has its own collection id) is digested on every replica, and only the buckets
that differ are fetched and fixed: missing records copied, records deleted while the
replica was away removed, changed ones overwritten. Then the buckets are digested again
(live writes may land meanwhile) until they agree or the rounds run out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chroma_operator.data.chroma_http import (
    DEFAULT_TENANT,
    ChromaCallError,
    ChromaHTTP,
    CollectionRef,
)
from chroma_operator.data.digest import (
    DEFAULT_BUCKETS,
    Digest,
    EmbeddingMode,
    bucket_ids,
    digest_records,
    fetch_ids,
    mode_for_collection,
    scan,
)
from chroma_operator.data.mover import CollectionSink, RateLimiter, delete_ids
from chroma_operator.data.records import RecordBatch
from chroma_operator.data.tenant_registry import registered_at, tenants_to_cover
from chroma_operator.repair import plan
from chroma_operator.repair.errors import EXIT_UNKNOWN_COLLECTION, RepairError
from chroma_operator.repair.plan import Replica
from chroma_operator.repair.report import CollectionResult, RepairReport
from chroma_operator.repair.reserved import write_reserved
from chroma_operator.repair.routers import discover, notify_repaired

Log = Callable[[str], None]


@dataclass
class Options:
    url: str
    collection: str | None = None
    tenants: Sequence[str] = (DEFAULT_TENANT,)
    dry_run: bool = False
    records_per_second: float = 5_000
    """Records read from or written to replicas per second, all together; 0: no limit."""
    rounds: int = 3
    buckets: int = DEFAULT_BUCKETS
    token: str | None = None
    timeout: float = 30.0
    progress: bool = False
    log: Log = field(default=lambda _msg: None)

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}


class Repairer:
    """State of one run: clients per replica, the shared rate limit and the report."""

    def __init__(self, opts: Options, tenants: list[str]) -> None:
        self.opts = opts
        self.tenants = tenants  # default_tenant, the registered and the named ones
        self.report = RepairReport(dry_run=opts.dry_run)
        self.limiter = RateLimiter(opts.records_per_second or None)
        self.clients: dict[str, ChromaHTTP] = {}
        self.found_collection = False
        self.on_records: Callable[[int], None] = lambda _n: None

    def http(self, replica: Replica) -> ChromaHTTP:
        if replica.endpoint not in self.clients:
            self.clients[replica.endpoint] = ChromaHTTP(
                replica.endpoint, headers=self.opts.headers(), timeout=self.opts.timeout, retries=2
            )
        return self.clients[replica.endpoint]

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    # --- reading, paced ----------------------------------------------------------------

    def _scan(self, replica: Replica, ref: CollectionRef) -> Iterator[RecordBatch]:
        for batch in scan(self.http(replica), ref):
            self._count(len(batch))
            yield batch

    def digest(self, replica: Replica, ref: CollectionRef | None, mode: EmbeddingMode) -> Digest:
        if ref is None:
            return Digest(self.opts.buckets, mode=mode)
        return digest_records(self._scan(replica, ref), self.opts.buckets, mode)

    def bucket_records(
        self, replica: Replica, ref: CollectionRef | None, wanted: list[int]
    ) -> list[RecordBatch]:
        """The records of some buckets: an id-only scan finds them (no embeddings on the
        wire), then they are fetched by id, a page at a time."""
        if ref is None:
            return []
        http = self.http(replica)
        ids = bucket_ids(http, ref, wanted, self.opts.buckets, on_page=self._count)
        out = list(fetch_ids(http, ref, ids))
        self._count(sum(len(b) for b in out))
        return out

    def _count(self, n: int) -> None:
        self.report.records_read += n
        self.on_records(n)
        self.limiter.take(n)

    # --- one shard ---------------------------------------------------------------------

    def repair_shard(self, replicas: list[Replica]) -> None:
        reachable = []
        for r in replicas:
            if r.state == plan.FENCED:
                self.report.warnings.append(f"{r.name} is fenced: left alone")
                continue
            try:
                self.http(r).version()
                reachable.append(r)
            except ChromaCallError as exc:
                self.report.skipped.append(r.name)
                self.report.errors.append(f"{r.name} ({r.endpoint}) did not answer: {exc}; skipped")
        refs = plan.references(reachable)
        if not refs:
            shard = replicas[0].shard
            self.report.errors.append(
                f"shard {shard}: no in-sync replica answered, nothing to repair from; skipped"
            )
            return
        for tenant in self.tenants:
            try:
                databases = self._listings(reachable, tenant)
            except ChromaCallError as exc:
                self.report.errors.append(f"shard {refs[0].shard}: listing failed: {exc}; skipped")
                return
            for database, listings in databases.items():
                names = sorted({n for listing in listings.values() for n in listing})
                if self.opts.collection is not None:
                    names = [n for n in names if n == self.opts.collection]
                for name in names:
                    self.found_collection = True
                    infos = {r: listings[r].get(name) for r in listings}
                    self.repair_collection(reachable, refs, tenant, database, name, infos)

    def _listings(
        self, reachable: list[Replica], tenant: str
    ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """database -> replica name -> collection name -> collection, for one tenant."""
        out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        databases = sorted({d for r in reachable for d in self.http(r).list_databases(tenant)})
        for database in databases:
            out[database] = {
                r.name: {str(c["name"]): c for c in self.http(r).list_collections(tenant, database)}
                for r in reachable
            }
        return out

    # --- one collection ----------------------------------------------------------------

    def repair_collection(
        self,
        reachable: list[Replica],
        refs: list[Replica],
        tenant: str,
        database: str,
        name: str,
        infos: dict[str, dict[str, Any] | None],
    ) -> None:
        holders = [r for r in refs if infos.get(r.name)]
        where = f"{tenant}/{database}/{name}"
        if not holders:
            others = ", ".join(r.name for r in reachable if infos.get(r.name))
            self.report.warnings.append(
                f"{where} is on {others} but on no in-sync replica of its shard: left alone"
            )
            return
        first = infos[holders[0].name] or {}
        mode = mode_for_collection(first)

        def ref_of(r: Replica) -> CollectionRef | None:
            info = infos.get(r.name)
            return CollectionRef(tenant, database, str(info["id"]), name) if info else None

        order = [r.name for r in holders]
        try:
            digests = {r.name: self.digest(r, ref_of(r), mode) for r in holders}
        except ChromaCallError as exc:
            self.report.errors.append(f"{where}: an in-sync replica failed: {exc}; skipped")
            return
        chosen, disagree = plan.bucket_references(digests, order)
        if disagree:
            self.report.disagreements.append(
                f"{where}: in-sync replicas {', '.join(order)} disagree in {len(disagree)} "
                "bucket(s); each bucket repaired from the majority (ties: the first)"
            )
        for target in reachable:
            try:
                self._repair_target(
                    target, holders, digests, chosen, (tenant, database, name), ref_of, infos, mode
                )
            except ChromaCallError as exc:  # a replica failed mid-run: report, go on
                self.report.skipped.append(target.name)
                self.report.errors.append(f"{target.name} {where}: {exc}; skipped")

    def _repair_target(
        self,
        target: Replica,
        holders: list[Replica],
        digests: dict[str, Digest],
        chosen: list[str],
        key: tuple[str, str, str],
        ref_of: Callable[[Replica], CollectionRef | None],
        infos: dict[str, dict[str, Any] | None],
        mode: EmbeddingMode,
    ) -> None:
        """Fix-and-verify rounds for one replica's copy of one collection."""
        tenant, database, name = key
        where = "/".join(key)
        order = [r.name for r in holders]
        by_name = {r.name: r for r in holders}
        by_name[target.name] = target
        first = infos[holders[0].name] or {}
        is_ref = target.name in digests
        result = CollectionResult(target.name, target.shard, tenant, database, name)
        tdigest = digests[target.name] if is_ref else self.digest(target, ref_of(target), mode)
        for round_ in range(1, self.opts.rounds + 1):
            result.rounds = round_
            if round_ > 1:
                tdigest = self.digest(target, ref_of(target), mode)
                if plan.differing_buckets(tdigest, digests, chosen):
                    # Still different: the references may have taken writes meanwhile.
                    digests = {r.name: self.digest(r, ref_of(r), mode) for r in holders}
                    chosen, _ = plan.bucket_references(digests, order)
            diff = plan.differing_buckets(tdigest, digests, chosen)
            if round_ == 1:
                result.buckets_compared = self.opts.buckets
                result.buckets_differing = sum(len(b) for b in diff.values())
            if not diff:
                result.converged = True
                break
            fixed = self._fix(by_name, diff, target, ref_of, infos, first, mode, result)
            if not fixed:  # only Chroma's float noise differs (cosine): nothing to do
                result.converged = True
                break
            if self.opts.dry_run:
                break
        if not is_ref or not result.converged or result.rounds > 1:
            self.report.results.append(result)
            self.opts.log(
                f"{target.name} {where}: {result.buckets_differing} bucket(s) differ; "
                f"{result.copied} copied, {result.removed} removed, "
                f"{result.overwritten} overwritten"
                + ("" if result.converged else " (not converged)")
            )

    def _fix(
        self,
        by_name: dict[str, Replica],
        diff: dict[str, list[int]],
        target: Replica,
        ref_of: Callable[[Replica], CollectionRef | None],
        infos: dict[str, dict[str, Any] | None],
        first: dict[str, Any],
        mode: EmbeddingMode,
        result: CollectionResult,
    ) -> int:
        """Fetch the differing buckets from their references and fix the target (or, in a
        dry run, count what would change). Returns how many records differ."""
        found = 0
        for ref_name, buckets in diff.items():
            ref = by_name[ref_name]
            want = self.bucket_records(ref, ref_of(ref), buckets)
            have = self.bucket_records(target, ref_of(target), buckets)
            ch = plan.changes(want, have, mode)
            found += len(ch)
            result.copied += len(ch.copy)
            result.overwritten += len(ch.overwrite)
            result.removed += len(ch.remove)
            if self.opts.dry_run or not len(ch):
                continue
            tref = ref_of(target) or self._create(target, result, first)
            infos[target.name] = {"id": tref.id, "name": tref.name}
            self._write(target, tref, ch)
        return found

    def _create(
        self, target: Replica, result: CollectionResult, first: dict[str, Any]
    ) -> CollectionRef:
        """The collection on a replica that missed its creation, configured as the reference."""
        ref = self.http(target).create_like(
            result.tenant, result.database, result.collection, first
        )
        result.created = True
        return ref

    def _write(self, target: Replica, ref: CollectionRef, ch: plan.Changes) -> None:
        """Copies upsert; overwrites delete first (Chroma's upsert merges metadata and
        keeps fields given as None); removals delete. Pages of max_batch_size, paced."""
        http = self.http(target)
        size = http.max_batch_size()
        for sink, batch in (
            (CollectionSink(http, ref), ch.copy),
            (CollectionSink(http, ref, replace=True), ch.overwrite),
        ):
            for page in batch.slices(size):
                sink.write(page)
                self.limiter.take(len(page))
        for start in range(0, len(ch.remove), size):
            delete_ids(http, ref, ch.remove[start : start + size])
            self.limiter.take(min(size, len(ch.remove) - start))


def run_repair(opts: Options) -> RepairReport:
    """The whole run; raises RepairError only when it cannot start."""
    started = time.monotonic()
    topology, shards, source = discover(opts)
    endpoints = [r.endpoint for replicas in shards for r in replicas]
    tenants = tenants_to_cover(opts.tenants, registered_at(endpoints, opts.headers()))
    opts.log("tenants: " + ", ".join(tenants))
    repairer = Repairer(opts, tenants)
    repairer.report.reference = source
    if source == "first-replica":
        repairer.report.warnings.append(
            "the router reports no replica states (no /internal/replicas): the first "
            "replica of each shard is the reference"
        )
    bar = _progress(opts.progress)
    if bar is not None:
        task = bar.add_task("repair: records read", total=None)
        repairer.on_records = lambda n: bar.advance(task, n)
    try:
        for replicas in shards:
            opts.log(
                f"shard {replicas[0].shard}: " + ", ".join(f"{r.name} {r.state}" for r in replicas)
            )
            repairer.repair_shard(replicas)
        if not opts.dry_run:
            write_reserved(repairer, shards)
    finally:
        repairer.close()
        if bar is not None:
            bar.stop()
    if opts.collection is not None and not repairer.found_collection:
        raise RepairError(
            f"collection {opts.collection!r} is on no replica", EXIT_UNKNOWN_COLLECTION
        )
    notify_repaired(opts, topology, shards, repairer.report)
    repairer.report.seconds = time.monotonic() - started
    return repairer.report


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f}"),
        TimeElapsedColumn(),
        transient=True,
    )
    bar.start()
    return bar
