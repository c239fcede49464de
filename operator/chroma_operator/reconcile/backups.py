"""ChromaBackup: run it as a Job, copy the Job's report into its status; and the
bootstrap restore's outcome for a ChromaCluster. The outcome functions are pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chroma_operator.api import conditions as cond
from chroma_operator.api.validate import InvalidResource, parse_cluster
from chroma_operator.build.backup import BACKUP_LABEL, build_backup_job
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile import jobs
from chroma_operator.reconcile.kinds import CHROMA_BACKUP, CHROMA_CLUSTER
from chroma_operator.reconcile.kube import Kube

Obj = dict[str, Any]
FINAL = {"Completed", "Failed"}
RESTORED = "Restored"
_COPIED = ("backupId", "location", "collections", "records", "bytes", "started", "completed")


def backup_outcome(job_name: str, result: Obj | None, now: str) -> Obj:
    """The ChromaBackup status for its finished Job's report (None: no readable report)."""
    if result is None:
        message = f"job {job_name} finished without a readable report (see its logs)"
        return {"phase": "Failed", "job": job_name, "completed": now, "message": message}
    if result.get("status") != "ok":
        message = str(result.get("message") or "the backup failed (see the Job's log)")
        return {"phase": "Failed", "job": job_name, "completed": now, "message": message}
    status: Obj = {"phase": "Completed", "job": job_name}
    status.update({k: result[k] for k in _COPIED if k in result})
    status["message"] = (
        f"{result.get('collections', 0)} collections, {result.get('records', 0)} records, "
        f"{result.get('bytes', 0)} bytes"
        + ("" if result.get("pointInTime", True) else " (not point-in-time)")
    )
    return status


def restore_outcome(job_name: str, result: Obj | None) -> tuple[bool, str, str]:
    """(Restored?, reason, message) for a finished bootstrap restore Job."""
    if result is None:
        return False, "NoResult", f"restore job {job_name} finished without a readable report"
    if result.get("status") != "ok" or not result.get("verified"):
        return False, "RestoreFailed", str(result.get("message") or "the restore failed")
    return (
        True,
        "Verified",
        f"restored backup {result.get('backupId')}: {result.get('collections', 0)} collections, "
        f"{result.get('records', 0)} records; counts and digests match the manifest",
    )


async def start_backup(kube: Kube, backup: Mapping[str, Any], now: str) -> Obj | None:
    """Create the ChromaBackup's Job if needed; the status to publish (None: nothing new)."""
    meta = backup["metadata"]
    status = dict(backup.get("status") or {})
    if status.get("phase") in FINAL:
        return None
    namespace, cluster_name = meta["namespace"], str(backup["spec"]["cluster"])
    cluster = await kube.get(CHROMA_CLUSTER.api_version, "ChromaCluster", namespace, cluster_name)
    if cluster is None:
        message = f"ChromaCluster {cluster_name} not found in {namespace}"
        return {"phase": "Failed", "completed": now, "message": message}
    try:
        parsed = parse_cluster(
            {
                "apiVersion": cluster["apiVersion"],
                "kind": cluster["kind"],
                "metadata": {"name": cluster_name, "namespace": namespace},
                "spec": dict(cluster.get("spec") or {}),
            }
        )
    except InvalidResource as exc:
        return {"phase": "Failed", "completed": now, "message": f"invalid cluster: {exc}"}
    job = build_backup_job(Owner(cluster_name, namespace), parsed.spec, dict(backup))
    name = job["metadata"]["name"]
    if await kube.get("batch/v1", "Job", namespace, name) is None:
        await kube.create(job)
    if status.get("phase") == "Running" and status.get("job") == name:
        return None
    return {"phase": "Running", "job": name, "started": now, "message": f"job {name} running"}


async def publish_backup(kube: Kube, namespace: str, name: str, status: Obj) -> None:
    await kube.patch_status(CHROMA_BACKUP.api_version, CHROMA_BACKUP.kind, namespace, name, status)


async def finish_backup(kube: Kube, namespace: str, job: Mapping[str, Any], now: str) -> Obj | None:
    """The status of the ChromaBackup whose Job finished (None: gone or already recorded)."""
    labels = job["metadata"].get("labels") or {}
    backup_name = labels.get(BACKUP_LABEL)
    if not backup_name:
        return None
    backup = await kube.get(CHROMA_BACKUP.api_version, CHROMA_BACKUP.kind, namespace, backup_name)
    if backup is None or (backup.get("status") or {}).get("phase") in FINAL:
        return None
    job_name = job["metadata"]["name"]
    pods = await kube.list("v1", "Pod", namespace, {"job-name": job_name})
    result = jobs.parse_result(jobs.termination_message(pods))
    out = backup_outcome(job_name, result, now)
    out.setdefault("started", (backup.get("status") or {}).get("started"))
    await publish_backup(kube, namespace, backup_name, out)
    return out


def restore_phase(previous: Mapping[str, Any]) -> str | None:
    return (previous.get("restore") or {}).get("phase")


def gate_ready(status: Obj, restore: Mapping[str, Any], now: str, generation: int | None) -> Obj:
    """A cluster bootstrapped from a backup is not Ready until the restore is verified.

    `status` is what the shards alone say; `restore` is status.restore. Pure.
    """
    from chroma_operator.reconcile import status as st

    phase = restore.get("phase")
    if phase == "Completed":
        return status
    if phase == "Failed":
        reason, message = "RestoreFailed", str(restore.get("message") or "the restore failed")
    elif phase == "Running":
        reason, message = "Restoring", f"restoring {restore.get('from')} (job {restore.get('job')})"
    else:
        reason, message = "WaitingForShards", "the restore starts once every shard is ready"
    if status.get("phase") == "Ready":
        status["phase"], status["reason"], status["message"] = "Provisioning", reason, message
    conditions = status["conditions"]
    conditions = cond.set_condition(conditions, st.READY, False, reason, message, now, generation)
    conditions = cond.set_condition(
        conditions, st.PROGRESSING, phase != "Failed", reason, message, now, generation
    )
    if phase != "Failed":
        conditions = cond.set_condition(
            conditions, RESTORED, False, reason, message, now, generation
        )
    status["conditions"] = conditions
    return status


async def start_restore(kube: Kube, owner: Owner, spec: Any, now: str) -> Obj | None:
    """Create the bootstrap restore Job (shards are ready); status.restore, or None."""
    from chroma_operator.build.backup import build_restore_job, restore_source

    job = build_restore_job(owner, spec)
    if job is None:
        return None
    name = job["metadata"]["name"]
    if await kube.get("batch/v1", "Job", owner.namespace, name) is None:
        await kube.create(job)
    source = restore_source(spec.bootstrap.from_backup)
    return {"phase": "Running", "job": name, "from": source, "started": now}


async def announce_backup(
    kube: Kube, namespace: str, job: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """A finished backup Job's outcome as an Event on its ChromaBackup."""
    backup = {
        "apiVersion": CHROMA_BACKUP.api_version,
        "kind": CHROMA_BACKUP.kind,
        "metadata": {"name": job["metadata"]["labels"][BACKUP_LABEL], "namespace": namespace},
    }
    ok = status.get("phase") == "Completed"
    await kube.post_event(
        backup,
        "Normal" if ok else "Warning",
        "BackupCompleted" if ok else "BackupFailed",
        str(status.get("message")),
    )
