"""kopf handlers: one idempotent reconcile for create/update/resume, status from children.

Handlers are registered on a given registry (a fresh one per test, the default one in
production), so the same code runs under `chroma-operator run` and in the test suite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from chroma_operator.api import annotations as ann
from chroma_operator.api import conditions as cond
from chroma_operator.api.backup import BACKUP_PLURAL
from chroma_operator.api.models import API_GROUP, API_VERSION, PLURAL
from chroma_operator.api.tuning_state import IndexReload, index_reload, tuning_of
from chroma_operator.api.validate import InvalidResource
from chroma_operator.build import build_all
from chroma_operator.build.jobs import front_url
from chroma_operator.build.meta import Owner
from chroma_operator.build.monitoring import required_crd as monitoring_crd
from chroma_operator.reconcile import (
    backups,
    day2,
    jobs,
    metrics,
    replica_states,
    rollout,
    slo_loop,
)
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile import status as st
from chroma_operator.reconcile.children import (
    STATUS_KINDS,
    autoscaling_condition,
    installable,
    skipped_message,
    sync_events,
)
from chroma_operator.reconcile.context import (
    Context,
    Logger,
    Obj,
    RouterUrl,
    annotations_of,
    emit,
    fetch_cluster,
    parse_body,
    publish,
    utcnow,
)
from chroma_operator.reconcile.job_records import (
    record_repair,
    record_restore,
    record_tuning,
    shard_restarts,
    tuned_hnsw,
)
from chroma_operator.reconcile.kube import Kube, KubeConfig
from chroma_operator.reconcile.moves import start_move
from chroma_operator.reconcile.observers import collect_replica_states, evaluate_slo
from chroma_operator.reconcile.sync import read_children, sync_children
from chroma_operator.reshard.plan import ReshardRefused

JobRecorder = Callable[[Context, str, str, Mapping[str, Any]], Awaitable[bool]]
MANAGED = {"app.kubernetes.io/managed-by": "chroma-operator", "app.kubernetes.io/name": "chroma"}


TUNER_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "tuner"}
"""Jobs from the one-off builder and from the CronJob's template (which has no managed-by)."""


REPAIR_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "repair"}


BACKUP_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "backup"}


RESTORE_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "restore"}


RESHARDING = rs.REFUSED


log = logging.getLogger(__name__)


async def reconcile(ctx: Context, namespace: str, name: str, logger: Logger) -> None:
    """Make the cluster's children match its spec and publish what is observed."""
    with metrics.RECONCILE_SECONDS.time():
        outcome = await _reconcile(ctx, namespace, name, logger)
    metrics.RECONCILES.labels(result=outcome).inc()


async def _reconcile(ctx: Context, namespace: str, name: str, logger: Logger) -> str:
    async with ctx.lock(namespace, name):
        body = await fetch_cluster(ctx, namespace, name)
        if body is None:
            return "gone"
        previous: Obj = dict(body.get("status") or {})
        generation = body.get("metadata", {}).get("generation")
        now = utcnow()
        if ann.paused(annotations_of(body)):
            logger.info("Reconciliation paused by %s", ann.RECONCILE)
            status, events = st.paused_status(
                previous,
                f"reconciliation paused ({ann.RECONCILE}: {ann.PAUSED_VALUE}): the operator "
                "changes nothing until the annotation is removed",
                previous.get("observedGeneration"),
                now,
            )
            await publish(ctx, body, previous, status)
            emit(body, events)
            return "paused"
        parsed = parse_body(body)
        if isinstance(parsed, InvalidResource):
            logger.warning("Invalid ChromaCluster: %s", parsed)
            status, events = st.failed_status(previous, parsed.problems, generation, now)
            await publish(ctx, body, previous, status)
            emit(body, events)
            return "invalid"
        spec = parsed.spec
        try:
            lay = rs.layout(previous, spec.shards)
        except ReshardRefused as exc:
            message = f"spec.shards: {exc}; nothing was changed"
            status, events = st.refused_status(previous, RESHARDING, message, generation, now)
            await publish(ctx, body, previous, status)
            emit(body, events)
            return "refused"
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
        target_spec = spec
        if lay.statefulsets != spec.shards:  # a shrink keeps the old shards until cleanup
            spec = spec.model_copy(update={"shards": lay.statefulsets})
            parsed = parsed.model_copy(update={"spec": spec})
        moved = "resharding" in previous
        tuning = tuning_of(previous)
        tuned = tuned_hnsw(spec.tuning.apply, tuning)
        restarts = shard_restarts(previous)
        applied = tuning.applied if tuning is not None else None
        rolling: rollout.State = "idle"
        live_sts = await read_children(
            ctx.kube, build_all(parsed, owner, tuned, restarts), {"StatefulSet"}
        )
        d2 = await day2.prepare(
            ctx.kube, owner, spec, annotations_of(body), previous, live_sts, now
        )
        if index_reload(applied) is IndexReload.PENDING and not d2.ops.hibernated:
            restarts, rolling = rollout.advance(
                applied, restarts, spec.shards, spec.replicas, live_sts, name
            )
        verify = None
        if applied is not None and (
            rolling == "done" or index_reload(applied) is IndexReload.VERIFYING
        ):
            verify = (str(applied.at), str(applied.collection))
        states = replica_states.states_of(previous)
        bootstrap = spec.bootstrap.from_backup if spec.bootstrap else None
        desired, skipped = await installable(
            ctx.kube,
            build_all(
                parsed,
                owner,
                tuned,
                restarts,
                verify,
                states,
                placement=lay.placement if moved else None,
                listed_shards=lay.listed if lay.listed != spec.shards else None,
                ops=d2.ops,
                restore=bootstrap is not None and backups.restore_phase(previous) == "Running",
            ),
        )
        result = await sync_children(ctx.kube, owner, desired)
        if result.writes:
            logger.info(
                "Synced: %d created, %d updated, %d deleted",
                len(result.created),
                len(result.patched),
                len(result.deleted),
            )
        obs = st.observe(owner, spec, result.live, d2.ops.hibernated)
        obs.errors.extend(f"{k} {n}: {m}" for (k, n), m in result.failed)
        status, events = st.next_status(previous, owner, spec, obs, generation, now, d2.operation)
        status.update(d2.status)
        events = d2.events + events
        if bootstrap is not None:
            restore = dict(previous.get("restore") or {})
            if not restore and status["phase"] == "Ready":
                restore = await backups.start_restore(ctx.kube, owner, spec, now) or {}
                status["restore"] = restore
                events.append(cond.Event("Normal", "Restoring", f"restoring {restore.get('from')}"))
            status = backups.gate_ready(status, restore, now, generation)
            events = [
                e for e in events if e.reason != "Ready" or restore.get("phase") == "Completed"
            ]
        monitoring = [m for m in desired + skipped if monitoring_crd(m)]
        mon_skipped = [m for m in skipped if monitoring_crd(m)]
        if monitoring:
            status["conditions"] = cond.set_condition(
                status["conditions"],
                "Monitoring",
                not mon_skipped,
                "PrometheusOperatorMissing" if mon_skipped else "Created",
                skipped_message(mon_skipped) if mon_skipped else "monitoring objects created",
                now,
                generation,
            )
        status["conditions"] = autoscaling_condition(
            status["conditions"], desired, skipped, now, generation
        )
        if restarts:
            status["shardRestarts"] = {str(i): t for i, t in sorted(restarts.items())}
        if rolling == "done" and tuning is not None and applied is not None:
            verifying = applied.model_copy(update={"index_reload": IndexReload.VERIFYING.value})
            status["tuning"] = tuning.model_copy(update={"applied": verifying}).wire()
            events.append(
                cond.Event(
                    "Normal",
                    "IndexReloaded",
                    f"every shard restarted with efSearch {applied.ef_search}; "
                    "measuring what clients get now",
                )
            )
        # The count records are placed by now (the target once a move has begun).
        status["shardCount"] = lay.placement.shards
        await publish(ctx, body, previous, status)
        emit(body, sync_events(result) + events)
        if lay.wanted:
            start_move(ctx, owner, target_spec.shards, previous, target_spec, reconcile)
        for verb, keys in (
            ("create", result.created),
            ("patch", result.patched),
            ("delete", result.deleted),
        ):
            if keys:
                metrics.CHILD_WRITES.labels(verb=verb).inc(len(keys))
        return "failed" if result.failed else "ok"


async def refresh_status(ctx: Context, namespace: str, name: str) -> bool:
    """Recompute status from the children's status alone (no writes to children).

    Returns True when a rolling restart is in progress (the caller reconciles, which
    moves it on to the next shard) or a bootstrap restore is due to start."""
    async with ctx.lock(namespace, name):
        body = await fetch_cluster(ctx, namespace, name)
        if body is None:
            return False
        parsed = parse_body(body)
        previous: Obj = dict(body.get("status") or {})
        if isinstance(parsed, InvalidResource) or previous.get("reason") == RESHARDING:
            return False
        annotations = annotations_of(body)
        if ann.paused(annotations) or previous.get("phase") == "Paused":
            return False  # paused: nothing is published; resumed: the reconcile publishes
        if previous.get("observedGeneration") is None:
            return False  # not reconciled yet: the first reconcile publishes the first status
        if previous.get("shardCount") not in (None, parsed.spec.shards):
            return False
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
        # Only the children's names matter for reading their status.
        live = await read_children(ctx.kube, build_all(parsed, owner), STATUS_KINDS)
        operation = day2.operation_of(annotations, previous)
        obs = st.observe(owner, parsed.spec, live, ann.hibernated(annotations))
        generation = previous.get("observedGeneration")
        now = utcnow()
        status, events = st.next_status(
            previous, owner, parsed.spec, obs, generation, now, operation
        )
        start_restore = False
        spec = parsed.spec
        if spec.bootstrap is not None and spec.bootstrap.from_backup is not None:
            restore = dict(previous.get("restore") or {})
            # Shards just became ready: the caller reconciles, which starts the restore.
            start_restore = not restore and status["phase"] == "Ready"
            status = backups.gate_ready(status, restore, now, generation)
            if restore.get("phase") != "Completed":
                events = [e for e in events if e.reason != "Ready"]
        await publish(ctx, body, previous, status)
        emit(body, events)
        tuning = tuning_of(previous)
        applied = tuning.applied if tuning is not None else None
        upgrading = (previous.get("upgrade") or {}).get("state") == "Rolling"
        return start_restore or index_reload(applied) is IndexReload.PENDING or upgrading


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings: bookkeeping in status (no annotation limits), steady backoff."""
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffBase")
    settings.posting.level = logging.INFO
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60, 120]
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def register(
    registry: kopf.OperatorRegistry,
    config: KubeConfig,
    *,
    metrics_urls: slo_loop.MetricsUrls = slo_loop.kubernetes_metrics_urls,
    router_url: RouterUrl = front_url,
    slo_tick: float = slo_loop.TICK_SECONDS,
    router_epochs: rs.RouterEpochs | None = None,
    shard_url: rs.ShardUrl = str,
) -> None:
    """Attach every handler to `registry`; `config` says where the API server is.

    `metrics_urls` says where a cluster's routers serve /metrics (pod DNS names in a
    cluster; loopback addresses when the routers run as local processes).
    """

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=config.server,
            token=config.token,
            ca_path=config.ca_path,
            certificate_path=config.cert_path,
            private_key_path=config.key_path,
            insecure=config.insecure,
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure(settings)
        ctx = memo.ctx = Context(
            kube=Kube(config),
            slo=slo_loop.SloWatch(metrics_urls=metrics_urls),
            router_url=router_url,
            router_epochs=router_epochs,
            shard_url=shard_url,
        )

        async def watch_one(ns: str, n: str, now: float) -> None:
            await evaluate_slo(ctx, ns, n, now)
            await collect_replica_states(ctx, ns, n, now, log, reconcile)

        memo.slo_task = asyncio.create_task(slo_loop.run_forever(ctx.slo, watch_one, slo_tick))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        rs.stop_all(memo.ctx.moves)
        memo.slo_task.cancel()
        await asyncio.gather(memo.slo_task, return_exceptions=True)
        await memo.ctx.slo.http.aclose()
        await memo.ctx.kube.aclose()

    @kopf.on.event(API_GROUP, API_VERSION, PLURAL, registry=registry)
    async def cluster_seen(
        type: str | None, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        if type == "DELETED":
            memo.ctx.slo.forget(namespace or "default", name)
        else:
            memo.ctx.slo.track(namespace or "default", name)

    @kopf.on.probe(id="api", registry=registry)
    def probe(**_: Any) -> str:
        return utcnow()

    @kopf.on.resume(API_GROUP, API_VERSION, PLURAL, registry=registry)
    @kopf.on.create(API_GROUP, API_VERSION, PLURAL, registry=registry)
    @kopf.on.update(API_GROUP, API_VERSION, PLURAL, registry=registry)
    async def reconcile_cluster(
        name: str, namespace: str | None, memo: Any, logger: Logger, **_: Any
    ) -> None:
        await reconcile(memo.ctx, namespace or "default", name, logger)

    @kopf.on.event("apps", "v1", "statefulsets", labels=MANAGED, registry=registry)
    @kopf.on.event("apps", "v1", "deployments", labels=MANAGED, registry=registry)
    async def child_changed(
        labels: Mapping[str, str], namespace: str | None, memo: Any, logger: Logger, **_: Any
    ) -> None:
        owner = labels.get("app.kubernetes.io/instance")
        if owner and namespace and await refresh_status(memo.ctx, namespace, owner):
            await reconcile(memo.ctx, namespace, owner, logger)

    def on_finished_job(
        handler_id: str, selector: Mapping[str, str], record: JobRecorder, then_reconcile: bool
    ) -> None:
        """A finished Job of one kind goes into its cluster's status (then, maybe, a reconcile)."""

        @kopf.on.event("batch", "v1", "jobs", labels=selector, id=handler_id, registry=registry)
        async def job_changed(
            body: Any,
            labels: Mapping[str, str],
            namespace: str | None,
            memo: Any,
            logger: Logger,
            **_: Any,
        ) -> None:
            cluster = labels.get("app.kubernetes.io/instance")
            if not cluster or not namespace or not jobs.finished(body):
                return
            if await record(memo.ctx, namespace, cluster, body) and then_reconcile:
                await reconcile(memo.ctx, namespace, cluster, logger)

    on_finished_job("tuning_job_changed", TUNER_JOBS, record_tuning, then_reconcile=True)
    on_finished_job("restore_job_changed", RESTORE_JOBS, record_restore, then_reconcile=True)
    on_finished_job("repair_job_changed", REPAIR_JOBS, record_repair, then_reconcile=False)

    @kopf.on.resume(API_GROUP, API_VERSION, BACKUP_PLURAL, registry=registry)
    @kopf.on.create(API_GROUP, API_VERSION, BACKUP_PLURAL, registry=registry)
    async def backup_requested(body: Any, memo: Any, **_: Any) -> None:
        status = await backups.start_backup(memo.ctx.kube, body, utcnow())
        if status is not None:
            meta = body["metadata"]
            await backups.publish_backup(memo.ctx.kube, meta["namespace"], meta["name"], status)
            if status.get("phase") == "Failed":
                await memo.ctx.kube.post_event(
                    dict(body), "Warning", "BackupFailed", str(status.get("message"))
                )

    @kopf.on.event("batch", "v1", "jobs", labels=BACKUP_JOBS, registry=registry)
    async def backup_job_changed(body: Any, namespace: str | None, memo: Any, **_: Any) -> None:
        if not namespace or not jobs.finished(body):
            return
        status = await backups.finish_backup(memo.ctx.kube, namespace, body, utcnow())
        if status is not None:
            await backups.announce_backup(memo.ctx.kube, namespace, body, status)
