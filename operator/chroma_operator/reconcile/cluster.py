"""One ChromaCluster's reconcile and status refresh: the pipeline's steps in order, with
the calls that read and write the API server between them."""

from __future__ import annotations

from chroma_operator.api import annotations as ann
from chroma_operator.api import conditions as cond
from chroma_operator.api.tuning_state import IndexReload, index_reload, tuning_of
from chroma_operator.api.validate import InvalidResource
from chroma_operator.build import build_all
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile import backups, day2, metrics
from chroma_operator.reconcile import pipeline as step
from chroma_operator.reconcile import status as st
from chroma_operator.reconcile.children import STATUS_KINDS, installable, sync_events
from chroma_operator.reconcile.context import (
    Context,
    Logger,
    Obj,
    annotations_of,
    emit,
    fetch_cluster,
    parse_body,
    publish,
    utcnow,
)
from chroma_operator.reconcile.moves import start_move
from chroma_operator.reconcile.sync import read_children, sync_children

RESHARDING = step.RESHARDING


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
        now = utcnow()
        plan = step.admit(body, previous, now)
        if isinstance(plan, step.Stop):
            if plan.outcome == "paused":
                logger.info("%s", plan.note)
            elif plan.note:
                logger.warning("%s", plan.note)
            await publish(ctx, body, previous, plan.status)
            emit(body, plan.events)
            return plan.outcome
        owner, spec, gen = plan.owner, plan.spec, plan.generation
        # Only the StatefulSets' names matter for reading them.
        live_sts = await read_children(ctx.kube, build_all(plan.cluster, owner), {"StatefulSet"})
        d2 = await day2.prepare(
            ctx.kube, owner, spec, annotations_of(body), previous, live_sts, now
        )
        roll = step.tuning_roll(spec, previous, live_sts, d2.ops.hibernated, name)
        desired, skipped = await installable(
            ctx.kube, step.desired_children(plan, roll, d2, previous, ctx.operator_peer)
        )
        result = await sync_children(ctx.kube, owner, desired)
        if result.writes:
            logger.info(
                "Synced: %d created, %d updated, %d deleted",
                len(result.created),
                len(result.patched),
                len(result.deleted),
            )
        status, events = step.observed_status(plan, previous, result, d2, now)
        if spec.bootstrap is not None and spec.bootstrap.from_backup is not None:
            restore = dict(previous.get("restore") or {})
            if step.restore_due(spec, previous, status):
                restore = await backups.start_restore(ctx.kube, owner, spec, now) or {}
                status["restore"] = restore
                events.append(cond.Event("Normal", "Restoring", f"restoring {restore.get('from')}"))
            status, events = step.with_restore(status, events, restore, now, gen)
        status = step.child_conditions(status, desired, skipped, now, gen)
        status, events = step.with_tuning(status, events, roll)
        # The count records are placed by now (the target once a move has begun).
        status["shardCount"] = plan.layout.placement.shards
        await publish(ctx, body, previous, status)
        emit(body, sync_events(result) + events)
        if plan.layout.wanted:
            start_move(ctx, owner, plan.target.shards, previous, plan.target, reconcile)
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
        spec = parsed.spec
        if previous.get("shardCount") not in (None, spec.shards):
            return False
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
        # Only the children's names matter for reading their status.
        live = await read_children(ctx.kube, build_all(parsed, owner), STATUS_KINDS)
        operation = day2.operation_of(annotations, previous)
        obs = st.observe(owner, spec, live, ann.hibernated(annotations))
        generation = previous.get("observedGeneration")
        now = utcnow()
        status, events = st.next_status(previous, owner, spec, obs, generation, now, operation)
        start_restore = False
        if spec.bootstrap is not None and spec.bootstrap.from_backup is not None:
            # Shards just became ready: the caller reconciles, which starts the restore.
            start_restore = step.restore_due(spec, previous, status)
            restore = dict(previous.get("restore") or {})
            status, events = step.with_restore(status, events, restore, now, generation)
        await publish(ctx, body, previous, status)
        emit(body, events)
        tuning = tuning_of(previous)
        applied = tuning.applied if tuning is not None else None
        upgrading = (previous.get("upgrade") or {}).get("state") == "Rolling"
        return start_restore or index_reload(applied) is IndexReload.PENDING or upgrading
