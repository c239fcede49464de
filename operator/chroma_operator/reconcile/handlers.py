"""kopf handlers: one idempotent reconcile (cluster.py) for create/update/resume, status
from children, finished Jobs into status, ChromaBackups.

Handlers are registered on a given registry (a fresh one per test, the default one in
production), so the same code runs under `chroma-operator run` and in the test suite.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from chroma_operator.api.backup import BACKUP_PLURAL
from chroma_operator.api.models import API_GROUP, API_VERSION, PLURAL
from chroma_operator.build.jobs import front_url
from chroma_operator.build.network import operator_peer
from chroma_operator.reconcile import (
    backups,
    jobs,
    slo_loop,
)
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile.cluster import reconcile, refresh_status
from chroma_operator.reconcile.context import (
    Context,
    Logger,
    RouterUrl,
    utcnow,
)
from chroma_operator.reconcile.job_records import (
    record_repair,
    record_restore,
    record_tuning,
)
from chroma_operator.reconcile.kube import Kube, KubeConfig
from chroma_operator.reconcile.observers import collect_replica_states, evaluate_slo

JobRecorder = Callable[[Context, str, str, Mapping[str, Any]], Awaitable[bool]]
MANAGED = {"app.kubernetes.io/managed-by": "chroma-operator", "app.kubernetes.io/name": "chroma"}


TUNER_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "tuner"}
"""Jobs from the one-off builder and from the CronJob's template (which has no managed-by)."""


REPAIR_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "repair"}


BACKUP_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "backup"}


RESTORE_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "restore"}


log = logging.getLogger(__name__)


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
            operator_peer=operator_peer(os.environ),
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
        await memo.ctx.slo.routers.aclose()
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
