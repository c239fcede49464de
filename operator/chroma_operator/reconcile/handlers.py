"""kopf handlers: one idempotent reconcile for create/update/resume, status from children.

Handlers are registered on a given registry (a fresh one per test, the default one in
production), so the same code runs under `chroma-operator run` and in the test suite.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import kopf

from chroma_operator.api import annotations as ann
from chroma_operator.api.backup import BACKUP_PLURAL
from chroma_operator.api.models import API_GROUP, API_VERSION, KIND, PLURAL, ChromaCluster
from chroma_operator.api.tuning_state import IndexReload, index_reload
from chroma_operator.api.validate import InvalidResource, parse_cluster
from chroma_operator.build import build_all, required_crd
from chroma_operator.build.autoscaling import required_crd as keda_crd
from chroma_operator.build.config import kubernetes_topology
from chroma_operator.build.jobs import front_url
from chroma_operator.build.meta import Manifest, Owner
from chroma_operator.build.monitoring import required_crd as monitoring_crd
from chroma_operator.build.naming import ANNOTATION_PREFIX
from chroma_operator.build.naming import shard as shard_name
from chroma_operator.build.tuning import VERIFY_ANNOTATION
from chroma_operator.reconcile import (
    backups,
    day2,
    jobs,
    metrics,
    repair,
    replica_states,
    rollout,
    slo_loop,
    tuning,
)
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile import status as st
from chroma_operator.reconcile.kinds import CHROMA_BACKUP, CHROMA_CLUSTER
from chroma_operator.reconcile.kube import Kube, KubeConfig
from chroma_operator.reconcile.sync import SyncResult, read_children, sync_children
from chroma_operator.reshard.plan import ReshardRefused
from chroma_operator.reshard.progress import Progress
from chroma_operator.topology import ShardTopology

Obj = dict[str, Any]
MANAGED = {"app.kubernetes.io/managed-by": "chroma-operator", "app.kubernetes.io/name": "chroma"}
TUNER_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "tuner"}
"""Jobs from the one-off builder and from the CronJob's template (which has no managed-by)."""
REPAIR_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "repair"}
BACKUP_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "backup"}
RESTORE_JOBS = {"app.kubernetes.io/name": "chroma", "app.kubernetes.io/component": "restore"}
RouterUrl = Callable[[Owner], str]
STATUS_KINDS = {"StatefulSet", "Deployment"}
Logger = logging.Logger | logging.LoggerAdapter[Any]
RESHARDING = rs.REFUSED
log = logging.getLogger(__name__)
REPLICAS_RETRY_SECONDS = 30.0


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Context:
    """What every handler shares: the API client and a lock per cluster."""

    kube: Kube
    slo: slo_loop.SloWatch = field(default_factory=slo_loop.SloWatch)
    router_url: RouterUrl = front_url
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    replicas_due: dict[tuple[str, str], float] = field(default_factory=dict)
    moves: dict[tuple[str, str], rs.Move] = field(default_factory=dict)
    router_epochs: rs.RouterEpochs | None = None
    shard_url: rs.ShardUrl = str

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())


def _resource_doc(body: Mapping[str, Any]) -> Obj:
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            # Labels go onto alerts; the tune annotation asks for a tuning Job.
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if k.startswith(ANNOTATION_PREFIX)
            },
        },
        "spec": dict(body.get("spec") or {}),
    }


def _annotations(body: Mapping[str, Any]) -> dict[str, str]:
    return dict((body.get("metadata") or {}).get("annotations") or {})


def _emit(body: Mapping[str, Any], events: list[st.Event]) -> None:
    for ev in events:
        kopf.event(cast(Any, dict(body)), type=ev.type, reason=ev.reason, message=ev.message[:1024])


async def _publish(
    ctx: Context, body: Mapping[str, Any], previous: Mapping[str, Any], status: Obj
) -> None:
    patch = st.status_patch(previous, status)
    if patch:
        meta = body["metadata"]
        await ctx.kube.patch_status(
            CHROMA_CLUSTER.api_version, KIND, meta["namespace"], meta["name"], patch
        )


def _summary(verb: str, keys: list[tuple[str, str]]) -> str:
    names = ", ".join(f"{kind} {name}" for kind, name in sorted(keys))
    return f"{verb} {len(keys)} object(s): {names}"


def _sync_events(result: SyncResult) -> list[st.Event]:
    events = []
    if result.created:
        events.append(st.Event("Normal", "Created", _summary("Created", result.created)))
    if result.patched:
        events.append(st.Event("Normal", "Updated", _summary("Updated", result.patched)))
    if result.deleted:
        events.append(st.Event("Normal", "Deleted", _summary("Deleted", result.deleted)))
    for (kind, name), message in result.failed:
        events.append(st.Event("Warning", "ApplyFailed", f"{kind} {name}: {message}"))
    return events


async def _fresh(ctx: Context, namespace: str, name: str) -> Obj | None:
    return await ctx.kube.get(CHROMA_CLUSTER.api_version, KIND, namespace, name)


def _parse(body: Mapping[str, Any]) -> ChromaCluster | InvalidResource:
    try:
        return parse_cluster(_resource_doc(body))
    except InvalidResource as exc:
        return exc


async def _installable(
    kube: Kube, desired: list[Manifest]
) -> tuple[list[Manifest], list[Manifest]]:
    """Split off objects whose CRD (Prometheus Operator's, KEDA's) the cluster does not serve."""
    served: dict[str, bool] = {}
    for api_version, crd in {(m["apiVersion"], c) for m in desired if (c := required_crd(m))}:
        served[crd] = await kube.has_api(api_version, crd.split(".", 1)[0])
    keep = [m for m in desired if served.get(required_crd(m) or "", True)]
    skip = [m for m in desired if not served.get(required_crd(m) or "", True)]
    return keep, skip


def _skipped_message(skipped: list[Manifest]) -> str:
    kinds = sorted({m["kind"] for m in skipped})
    return f"skipped {', '.join(kinds)}: the Prometheus Operator CRDs are not installed"


def _autoscaling_condition(
    conditions: list[Obj],
    desired: list[Manifest],
    skipped: list[Manifest],
    now: str,
    gen: int | None,
) -> list[Obj]:
    """Say whether the encoder's ScaledObject exists or KEDA is missing (HPAs always can)."""
    keda = [m for m in desired + skipped if keda_crd(m)]
    if not keda:  # no ScaledObject wanted (any more): no condition about one
        return [c for c in conditions if c.get("type") != "Autoscaling"]
    missing = any(keda_crd(m) for m in skipped)
    message = (
        "skipped ScaledObject: KEDA's CRD (scaledobjects.keda.sh) is not installed; "
        "the encoder keeps its current replicas"
        if missing
        else "encoder ScaledObject created"
    )
    reason = "KedaMissing" if missing else "Created"
    return st.set_condition(conditions, "Autoscaling", not missing, reason, message, now, gen)


async def reconcile(ctx: Context, namespace: str, name: str, logger: Logger) -> None:
    """Make the cluster's children match its spec and publish what is observed."""
    with metrics.RECONCILE_SECONDS.time():
        outcome = await _reconcile(ctx, namespace, name, logger)
    metrics.RECONCILES.labels(result=outcome).inc()


async def _reconcile(ctx: Context, namespace: str, name: str, logger: Logger) -> str:
    async with ctx.lock(namespace, name):
        body = await _fresh(ctx, namespace, name)
        if body is None:
            return "gone"
        previous: Obj = dict(body.get("status") or {})
        generation = body.get("metadata", {}).get("generation")
        now = utcnow()
        if ann.paused(_annotations(body)):
            logger.info("Reconciliation paused by %s", ann.RECONCILE)
            status, events = st.paused_status(
                previous,
                f"reconciliation paused ({ann.RECONCILE}: {ann.PAUSED_VALUE}): the operator "
                "changes nothing until the annotation is removed",
                previous.get("observedGeneration"),
                now,
            )
            await _publish(ctx, body, previous, status)
            _emit(body, events)
            return "paused"
        parsed = _parse(body)
        if isinstance(parsed, InvalidResource):
            logger.warning("Invalid ChromaCluster: %s", parsed)
            status, events = st.failed_status(previous, parsed.problems, generation, now)
            await _publish(ctx, body, previous, status)
            _emit(body, events)
            return "invalid"
        spec = parsed.spec
        try:
            lay = rs.layout(previous, spec.shards)
        except ReshardRefused as exc:
            message = f"spec.shards: {exc}; nothing was changed"
            status, events = st.refused_status(previous, RESHARDING, message, generation, now)
            await _publish(ctx, body, previous, status)
            _emit(body, events)
            return "refused"
        owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
        target_spec = spec
        if lay.statefulsets != spec.shards:  # a shrink keeps the old shards until cleanup
            spec = spec.model_copy(update={"shards": lay.statefulsets})
            parsed = parsed.model_copy(update={"spec": spec})
        moved = "resharding" in previous
        tuned = tuned_hnsw(spec.tuning.apply, previous.get("tuning"))
        restarts = shard_restarts(previous)
        applied = dict((previous.get("tuning") or {}).get("applied") or {})
        rolling: rollout.State = "idle"
        live_sts = await read_children(
            ctx.kube, build_all(parsed, owner, tuned, restarts), {"StatefulSet"}
        )
        d2 = await day2.prepare(ctx.kube, owner, spec, _annotations(body), previous, live_sts, now)
        if index_reload(applied) is IndexReload.PENDING and not d2.ops.hibernated:
            restarts, rolling = rollout.advance(
                applied, restarts, spec.shards, spec.replicas, live_sts, name
            )
        verify = None
        if rolling == "done" or index_reload(applied) is IndexReload.VERIFYING:
            verify = (str(applied["at"]), str(applied["collection"]))
        states = replica_states.states_of(previous)
        bootstrap = spec.bootstrap.from_backup if spec.bootstrap else None
        desired, skipped = await _installable(
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
                events.append(st.Event("Normal", "Restoring", f"restoring {restore.get('from')}"))
            status = backups.gate_ready(status, restore, now, generation)
            events = [
                e for e in events if e.reason != "Ready" or restore.get("phase") == "Completed"
            ]
        monitoring = [m for m in desired + skipped if monitoring_crd(m)]
        mon_skipped = [m for m in skipped if monitoring_crd(m)]
        if monitoring:
            status["conditions"] = st.set_condition(
                status["conditions"],
                "Monitoring",
                not mon_skipped,
                "PrometheusOperatorMissing" if mon_skipped else "Created",
                _skipped_message(mon_skipped) if mon_skipped else "monitoring objects created",
                now,
                generation,
            )
        status["conditions"] = _autoscaling_condition(
            status["conditions"], desired, skipped, now, generation
        )
        if restarts:
            status["shardRestarts"] = {str(i): t for i, t in sorted(restarts.items())}
        if rolling == "done":
            status["tuning"] = {
                **previous["tuning"],
                "applied": {**applied, "indexReload": IndexReload.VERIFYING.value},
            }
            events.append(
                st.Event(
                    "Normal",
                    "IndexReloaded",
                    f"every shard restarted with efSearch {applied.get('efSearch')}; "
                    "measuring what clients get now",
                )
            )
        # The count records are placed by now (the target once a move has begun).
        status["shardCount"] = lay.placement.shards
        await _publish(ctx, body, previous, status)
        _emit(body, _sync_events(result) + events)
        if lay.wanted:
            start_move(ctx, owner, target_spec.shards, previous, target_spec)
        for verb, keys in (
            ("create", result.created),
            ("patch", result.patched),
            ("delete", result.deleted),
        ):
            if keys:
                metrics.CHILD_WRITES.labels(verb=verb).inc(len(keys))
        return "failed" if result.failed else "ok"


def start_move(
    ctx: Context, owner: Owner, target: int, previous: Mapping[str, Any], spec: Any
) -> None:
    """Run the engine for this cluster unless it already runs (one move at a time)."""
    key = (owner.namespace, owner.name)
    running = ctx.moves.get(key)
    if running is not None and not running.task.done():
        return
    loop = asyncio.get_running_loop()
    port = spec.router.port

    async def epochs() -> list[int | None]:
        if ctx.router_epochs is not None:
            return await ctx.router_epochs(owner, port)
        return await rs.kubernetes_router_epochs(ctx.kube, owner, port)

    async def again() -> None:
        await reconcile(ctx, owner.namespace, owner.name, logging.getLogger("chroma_operator"))

    async def shards_ready() -> bool:
        for i in range(target):
            sts = await ctx.kube.get(
                "apps/v1", "StatefulSet", owner.namespace, shard_name(owner.name, i)
            )
            ready = int(((sts or {}).get("status") or {}).get("readyReplicas") or 0)
            if ready < spec.replicas:
                return False
        return True

    runtime = rs.KubeRuntime(ctx.kube, loop, owner, ctx.lock(*key), again, epochs, ctx.shard_url)
    topo = kubernetes_topology(owner, spec.model_copy(update={"shards": max(target, 1)}))
    new_shards = [
        ShardTopology(index=s.index, endpoints=[ctx.shard_url(e) for e in s.endpoints])
        for s in topo.shards
    ]
    saved = previous.get("resharding") or {}
    progress = Progress.from_status(saved) if saved.get("fromShards") else None
    stop = threading.Event()

    async def run() -> None:
        try:
            await rs.drive(runtime, target, new_shards, stop, progress, shards_ready)
        except Exception:
            if stop.is_set():
                return  # the operator is stopping; a restart resumes from status
            logging.getLogger("chroma_operator").exception("resharding stopped; retrying")
            await asyncio.sleep(2.0)
            ctx.moves.pop(key, None)
            await again()

    ctx.moves[key] = rs.Move(stop, asyncio.create_task(run()))


async def refresh_status(ctx: Context, namespace: str, name: str) -> bool:
    """Recompute status from the children's status alone (no writes to children).

    Returns True when a rolling restart is in progress (the caller reconciles, which
    moves it on to the next shard) or a bootstrap restore is due to start."""
    async with ctx.lock(namespace, name):
        body = await _fresh(ctx, namespace, name)
        if body is None:
            return False
        parsed = _parse(body)
        previous: Obj = dict(body.get("status") or {})
        if isinstance(parsed, InvalidResource) or previous.get("reason") == RESHARDING:
            return False
        annotations = _annotations(body)
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
        await _publish(ctx, body, previous, status)
        _emit(body, events)
        applied = (previous.get("tuning") or {}).get("applied") or {}
        upgrading = (previous.get("upgrade") or {}).get("state") == "Rolling"
        return start_restore or index_reload(applied) is IndexReload.PENDING or upgrading


def shard_restarts(status: Mapping[str, Any]) -> dict[int, str]:
    """Restart token per shard (status.shardRestarts, keyed by index as text)."""
    return {int(k): str(v) for k, v in (status.get("shardRestarts") or {}).items()}


def tuned_hnsw(apply: str, tuning: Mapping[str, Any] | None) -> dict[str, int] | None:
    """HNSW defaults a tuning run applied (status.tuning.applied), in the spec's terms."""
    applied = (tuning or {}).get("applied") or {}
    if apply == "none" or not applied.get("efSearch"):
        return None
    out = {"ef_search": int(applied["efSearch"])}
    if apply == "all":
        for src, dst in (("maxNeighbors", "max_neighbors"), ("efConstruction", "ef_construction")):
            if applied.get(src):
                out[dst] = int(applied[src])
    return out


async def record_tuning(ctx: Context, namespace: str, name: str, job: Mapping[str, Any]) -> bool:
    """Copy a finished tuning Job's result into status; apply efSearch when asked.

    Returns True when something new was recorded (the caller then reconciles, so the
    topology's defaults follow what was applied)."""
    job_name = job["metadata"]["name"]
    if (job["metadata"].get("annotations") or {}).get(VERIFY_ANNOTATION):
        return await record_verification(ctx, namespace, name, job)
    async with ctx.lock(namespace, name):
        body = await _fresh(ctx, namespace, name)
        if body is None:
            return False
        previous: Obj = dict(body.get("status") or {})
        if (previous.get("tuning") or {}).get("job") == job_name:
            return False  # already recorded
        parsed = _parse(body)
        if isinstance(parsed, InvalidResource):
            return False
        pods = await ctx.kube.list("v1", "Pod", namespace, {"job-name": job_name})
        result = jobs.parse_result(jobs.termination_message(pods))
        record, ok, reason, message = tuning.tuning_outcome(job_name, result)
        metrics.TUNING_RESULTS.labels(outcome="tuned" if ok else reason).inc()
        events = [
            st.Event("Normal" if ok else "Warning", "Tuned" if ok else "TuningFailed", message)
        ]
        apply = parsed.spec.tuning.apply
        if ok and result is not None and apply != "none":
            chosen = result["chosen"]
            owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
            try:
                await tuning.apply_ef_search(
                    ctx.router_url(owner), str(result["collection"]), int(chosen["efSearch"])
                )
                record["applied"] = {
                    "efSearch": chosen["efSearch"],
                    "maxNeighbors": chosen.get("maxNeighbors"),
                    "efConstruction": chosen.get("efConstruction"),
                    "collection": result["collection"],
                    "at": utcnow(),
                    "indexReload": IndexReload.PENDING.value,
                }
                message += "; efSearch applied to every shard (a loaded index uses it after the shard restarts)"
            except httpx.HTTPError as exc:
                record["applyError"] = str(exc)
                events.append(
                    st.Event("Warning", "TuningNotApplied", f"could not apply efSearch: {exc}")
                )
        generation = previous.get("observedGeneration")
        conditions = st.set_condition(
            list(previous.get("conditions", [])),
            tuning.TUNED,
            ok,
            reason,
            message,
            utcnow(),
            generation,
        )
        await _publish(ctx, body, previous, {"tuning": record, "conditions": conditions})
        _emit(body, events)
        return True


async def record_verification(
    ctx: Context, namespace: str, name: str, job: Mapping[str, Any]
) -> bool:
    """The verify Job's live measurement into status.tuning.applied.verified: an
    applied efSearch is reported only once what clients get has been measured."""
    async with ctx.lock(namespace, name):
        body = await _fresh(ctx, namespace, name)
        if body is None:
            return False
        previous: Obj = dict(body.get("status") or {})
        record = dict(previous.get("tuning") or {})
        applied = dict(record.get("applied") or {})
        if index_reload(applied) is not IndexReload.VERIFYING:
            return False
        pods = await ctx.kube.list("v1", "Pod", namespace, {"job-name": job["metadata"]["name"]})
        result = jobs.parse_result(jobs.termination_message(pods))
        verdict = tuning.verification(record, result)
        applied.update(indexReload=IndexReload.DONE.value, verified=verdict)
        record["applied"] = applied
        ok = bool(verdict.get("ok"))
        message = str(verdict.get("message", ""))
        metrics.TUNING_RESULTS.labels(outcome="verified" if ok else "not-verified").inc()
        conditions = st.set_condition(
            list(previous.get("conditions", [])),
            tuning.TUNED,
            ok,
            "Verified" if ok else "NotVerified",
            message,
            utcnow(),
            previous.get("observedGeneration"),
        )
        await _publish(ctx, body, previous, {"tuning": record, "conditions": conditions})
        _emit(
            body,
            [
                st.Event(
                    "Normal" if ok else "Warning",
                    "TuningVerified" if ok else "TuningNotVerified",
                    message,
                )
            ],
        )
        return True


async def record_repair(ctx: Context, namespace: str, name: str, job: Mapping[str, Any]) -> bool:
    """Copy a finished repair Job's report into status.repair, the Repaired condition and
    an Event; False when that Job was already recorded."""
    job_name = job["metadata"]["name"]
    async with ctx.lock(namespace, name):
        body = await _fresh(ctx, namespace, name)
        if body is None:
            return False
        previous: Obj = dict(body.get("status") or {})
        if (previous.get("repair") or {}).get("job") == job_name:
            return False
        pods = await ctx.kube.list("v1", "Pod", namespace, {"job-name": job_name})
        result = jobs.parse_result(jobs.termination_message(pods))
        record, ok, reason, message = repair.repair_outcome(job_name, result)
        metrics.REPAIR_RESULTS.labels(outcome="converged" if ok else reason).inc()
        if result is not None and not result.get("dryRun"):
            for action in ("copied", "removed", "overwritten"):
                metrics.REPAIRED_RECORDS.labels(action=action).inc(int(result.get(action) or 0))
        conditions = st.set_condition(
            list(previous.get("conditions", [])),
            repair.REPAIRED,
            ok,
            reason,
            message,
            utcnow(),
            previous.get("observedGeneration"),
        )
        await _publish(ctx, body, previous, {"repair": record, "conditions": conditions})
        _emit(
            body,
            [
                st.Event(
                    "Normal" if ok else "Warning", "Repaired" if ok else "RepairFailed", message
                )
            ],
        )
        return True


async def record_restore(ctx: Context, namespace: str, name: str, job: Mapping[str, Any]) -> bool:
    """A finished bootstrap restore Job: status.restore, the Restored condition, an Event."""
    job_name = job["metadata"]["name"]
    async with ctx.lock(namespace, name):
        body = await _fresh(ctx, namespace, name)
        if body is None:
            return False
        previous: Obj = dict(body.get("status") or {})
        restore = dict(previous.get("restore") or {})
        if restore.get("job") != job_name or restore.get("phase") != "Running":
            return False
        pods = await ctx.kube.list("v1", "Pod", namespace, {"job-name": job_name})
        result = jobs.parse_result(jobs.termination_message(pods))
        ok, reason, message = backups.restore_outcome(job_name, result)
        now = utcnow()
        restore.update(
            {"phase": "Completed" if ok else "Failed", "completed": now, "message": message}
        )
        if result is not None:
            restore.update(
                {k: result[k] for k in ("backupId", "records", "collections") if k in result}
            )
        conditions = st.set_condition(
            list(previous.get("conditions", [])),
            backups.RESTORED,
            ok,
            reason,
            message,
            now,
            previous.get("observedGeneration"),
        )
        await _publish(ctx, body, previous, {"restore": restore, "conditions": conditions})
        _emit(
            body,
            [
                st.Event(
                    "Normal" if ok else "Warning", "Restored" if ok else "RestoreFailed", message
                )
            ],
        )
        return True


async def evaluate_slo(ctx: Context, namespace: str, name: str, now: float) -> None:
    """Scrape this cluster's routers when its interval is due; publish SLOMet and Events."""
    key = (namespace, name)
    if not slo_loop.due(ctx.slo, key, now):
        return
    body = await _fresh(ctx, namespace, name)
    if body is None:
        ctx.slo.forget(namespace, name)
        return
    parsed = _parse(body)
    if isinstance(parsed, InvalidResource) or not parsed.spec.slo.objectives:
        return
    owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
    labels = dict(body.get("metadata", {}).get("labels") or {})
    previous = dict(body.get("status") or {})
    slo_status, condition, events = await slo_loop.evaluate(
        ctx.slo, owner, parsed.spec, previous, labels, now
    )
    slo_loop.mark_done(ctx.slo, key, parsed.spec.slo.evaluation_interval_seconds, now)
    async with ctx.lock(namespace, name):
        fresh = await _fresh(ctx, namespace, name)
        if fresh is None:
            return
        current = dict(fresh.get("status") or {})
        conditions = slo_loop.with_condition(list(current.get("conditions", [])), condition)
        await _publish(ctx, fresh, current, {"slo": slo_status, "conditions": conditions})
    for type_, reason, message in events:  # not in a kopf handler: post Events ourselves
        await ctx.kube.post_event(fresh, type_, reason, message)


async def collect_replica_states(
    ctx: Context, namespace: str, name: str, now: float, logger: Logger
) -> None:
    """Every SLO interval: the routers' replica states into status.shards[].replicaStates,
    Events for changes, and a reconcile so the topology ConfigMap carries them."""
    key = (namespace, name)
    if ctx.replicas_due.get(key, 0.0) > now:
        return
    body = await _fresh(ctx, namespace, name)
    if body is None:
        ctx.replicas_due.pop(key, None)
        return
    parsed = _parse(body)
    if isinstance(parsed, InvalidResource):
        ctx.replicas_due[key] = now + REPLICAS_RETRY_SECONDS
        return
    ctx.replicas_due[key] = now + parsed.spec.slo.evaluation_interval_seconds
    if parsed.spec.replicas < 2:
        return
    owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
    before = replica_states.states_of(body.get("status") or {})
    views = await replica_states.collect(
        ctx.slo.http, ctx.slo.metrics_urls(owner, parsed.spec), before
    )
    if views is None:
        return
    async with ctx.lock(namespace, name):
        fresh = await _fresh(ctx, namespace, name)
        if fresh is None or not (fresh.get("status") or {}).get("shards"):
            return
        current = dict(fresh.get("status") or {})
        shards = replica_states.with_replicas(current["shards"], views)
        await _publish(ctx, fresh, current, {"shards": shards})
    after = {n: v.state for n, v in views.items()}
    for type_, reason, message in replica_states.transitions(before, after):
        await ctx.kube.post_event(fresh, type_, reason, message)
    if after != before:
        await reconcile(ctx, namespace, name, logger)


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
            await collect_replica_states(ctx, ns, n, now, log)

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

    @kopf.on.event("batch", "v1", "jobs", labels=TUNER_JOBS, registry=registry)
    async def tuning_job_changed(
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
        if await record_tuning(memo.ctx, namespace, cluster, body):
            await reconcile(memo.ctx, namespace, cluster, logger)

    @kopf.on.event("batch", "v1", "jobs", labels=RESTORE_JOBS, registry=registry)
    async def restore_job_changed(
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
        if await record_restore(memo.ctx, namespace, cluster, body):
            await reconcile(memo.ctx, namespace, cluster, logger)

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
        if status is None:
            return
        from chroma_operator.build.backup import BACKUP_LABEL

        backup = {
            "apiVersion": CHROMA_BACKUP.api_version,
            "kind": CHROMA_BACKUP.kind,
            "metadata": {
                "name": body["metadata"]["labels"][BACKUP_LABEL],
                "namespace": namespace,
            },
        }
        ok = status.get("phase") == "Completed"
        await memo.ctx.kube.post_event(
            backup,
            "Normal" if ok else "Warning",
            "BackupCompleted" if ok else "BackupFailed",
            str(status.get("message")),
        )

    @kopf.on.event("batch", "v1", "jobs", labels=REPAIR_JOBS, registry=registry)
    async def repair_job_changed(
        body: Any, labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any
    ) -> None:
        cluster = labels.get("app.kubernetes.io/instance")
        if cluster and namespace and jobs.finished(body):
            await record_repair(memo.ctx, namespace, cluster, body)
