"""Finished Jobs into status: tuning (and its verification), repair, bootstrap restore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from chroma_operator.api import conditions as cond
from chroma_operator.api import tuning_state
from chroma_operator.api.tuning_state import IndexReload, TuningStatus, index_reload, tuning_of
from chroma_operator.api.validate import InvalidResource
from chroma_operator.build.meta import Owner
from chroma_operator.build.tuning import VERIFY_ANNOTATION
from chroma_operator.reconcile import (
    backups,
    jobs,
    metrics,
    repair,
    tuning,
)
from chroma_operator.reconcile.context import (
    Context,
    Obj,
    emit,
    fetch_cluster,
    parse_body,
    publish,
    utcnow,
)
from chroma_operator.tuner.apply import apply_ef_search


def shard_restarts(status: Mapping[str, Any]) -> dict[int, str]:
    """Restart token per shard (status.shardRestarts, keyed by index as text)."""
    return {int(k): str(v) for k, v in (status.get("shardRestarts") or {}).items()}


def tuned_hnsw(apply: str, tuning: TuningStatus | None) -> dict[str, int] | None:
    """HNSW defaults a tuning run applied (status.tuning.applied), in the spec's terms."""
    applied = tuning.applied if tuning is not None else None
    if apply == "none" or applied is None or not applied.ef_search:
        return None
    out = {"ef_search": applied.ef_search}
    if apply == "all":
        if applied.max_neighbors:
            out["max_neighbors"] = applied.max_neighbors
        if applied.ef_construction:
            out["ef_construction"] = applied.ef_construction
    return out


async def record_tuning(ctx: Context, namespace: str, name: str, job: Mapping[str, Any]) -> bool:
    """Copy a finished tuning Job's result into status; record the efSearch the Job
    applied (or apply it here, for a Job that did not).

    Returns True when something new was recorded (the caller then reconciles, so the
    topology's defaults follow what was applied)."""
    job_name = job["metadata"]["name"]
    if (job["metadata"].get("annotations") or {}).get(VERIFY_ANNOTATION):
        return await record_verification(ctx, namespace, name, job)
    async with ctx.lock(namespace, name):
        body = await fetch_cluster(ctx, namespace, name)
        if body is None:
            return False
        previous: Obj = dict(body.get("status") or {})
        before = tuning_of(previous)
        if before is not None and before.job == job_name:
            return False  # already recorded
        parsed = parse_body(body)
        if isinstance(parsed, InvalidResource):
            return False
        pods = await ctx.kube.list("v1", "Pod", namespace, {"job-name": job_name})
        result = jobs.parse_result(jobs.termination_message(pods))
        record, ok, reason, message = tuning.tuning_outcome(job_name, result)
        metrics.TUNING_RESULTS.labels(outcome="tuned" if ok else reason).inc()
        events = [
            cond.Event("Normal" if ok else "Warning", "Tuned" if ok else "TuningFailed", message)
        ]
        apply = parsed.spec.tuning.apply
        chosen = record.chosen
        collection = record.collection
        if ok and chosen is not None and chosen.ef_search and collection and apply != "none":
            applied_note = (
                "; efSearch applied to every shard"
                " (a loaded index uses it after the shard restarts)"
            )
            if record.applied_ef_search:  # the Job applied it, with the cluster's job token
                record = tuning_state.applied(record, utcnow())
                message += applied_note
            elif record.apply_error:
                events.append(cond.Event("Warning", "TuningNotApplied", record.apply_error))
            else:  # a Job that did not apply (an older image): the operator does
                owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
                try:
                    await apply_ef_search(ctx.router_url(owner), collection, chosen.ef_search)
                    record = tuning_state.applied(record, utcnow())
                    message += applied_note
                except httpx.HTTPError as exc:
                    record.apply_error = str(exc)
                    events.append(
                        cond.Event(
                            "Warning", "TuningNotApplied", f"could not apply efSearch: {exc}"
                        )
                    )
        conditions = cond.set_condition(
            previous.get("conditions"),
            tuning.TUNED,
            ok,
            reason,
            message,
            utcnow(),
            previous.get("observedGeneration"),
        )
        await publish(ctx, body, previous, {"tuning": record.wire(), "conditions": conditions})
        emit(body, events)
        return True


async def record_verification(
    ctx: Context, namespace: str, name: str, job: Mapping[str, Any]
) -> bool:
    """The verify Job's live measurement into status.tuning.applied.verified: an
    applied efSearch is reported only once what clients get has been measured."""
    async with ctx.lock(namespace, name):
        body = await fetch_cluster(ctx, namespace, name)
        if body is None:
            return False
        previous: Obj = dict(body.get("status") or {})
        record = tuning_of(previous)
        if record is None or record.applied is None:
            return False
        if index_reload(record.applied) is not IndexReload.VERIFYING:
            return False
        pods = await ctx.kube.list("v1", "Pod", namespace, {"job-name": job["metadata"]["name"]})
        result = jobs.parse_result(jobs.termination_message(pods))
        verdict = tuning.verification(record, result)
        record = tuning_state.verified(record, verdict)
        ok, message = verdict.ok, verdict.message
        metrics.TUNING_RESULTS.labels(outcome="verified" if ok else "not-verified").inc()
        conditions = cond.set_condition(
            previous.get("conditions"),
            tuning.TUNED,
            ok,
            "Verified" if ok else "NotVerified",
            message,
            utcnow(),
            previous.get("observedGeneration"),
        )
        await publish(ctx, body, previous, {"tuning": record.wire(), "conditions": conditions})
        emit(
            body,
            [
                cond.Event(
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
        body = await fetch_cluster(ctx, namespace, name)
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
        conditions = cond.set_condition(
            previous.get("conditions"),
            repair.REPAIRED,
            ok,
            reason,
            message,
            utcnow(),
            previous.get("observedGeneration"),
        )
        await publish(ctx, body, previous, {"repair": record, "conditions": conditions})
        emit(
            body,
            [
                cond.Event(
                    "Normal" if ok else "Warning", "Repaired" if ok else "RepairFailed", message
                )
            ],
        )
        return True


async def record_restore(ctx: Context, namespace: str, name: str, job: Mapping[str, Any]) -> bool:
    """A finished bootstrap restore Job: status.restore, the Restored condition, an Event."""
    job_name = job["metadata"]["name"]
    async with ctx.lock(namespace, name):
        body = await fetch_cluster(ctx, namespace, name)
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
        conditions = cond.set_condition(
            previous.get("conditions"),
            backups.RESTORED,
            ok,
            reason,
            message,
            now,
            previous.get("observedGeneration"),
        )
        await publish(ctx, body, previous, {"restore": restore, "conditions": conditions})
        emit(
            body,
            [
                cond.Event(
                    "Normal" if ok else "Warning", "Restored" if ok else "RestoreFailed", message
                )
            ],
        )
        return True
