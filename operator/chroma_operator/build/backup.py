"""Backup and restore workloads: a ChromaBackup's Job, the scheduled-backup CronJob
`X-backup`, and the bootstrap restore Job `X-restore-<hash>`.

Each runs `chroma-operator backup ...` against the cluster's front Service (the routers)
from the operator image; a `credentialsSecret` becomes the container's environment
(e.g. AWS_ACCESS_KEY_ID for s3://). `backup create` writes its compact report to the
termination message, where the operator reads it back into the ChromaBackup's status.
"""

from __future__ import annotations

from typing import Any

from chroma_operator.api.backup import BACKUP_KIND
from chroma_operator.api.base import resources_of
from chroma_operator.api.models import (
    API_GROUP,
    API_VERSION,
    ChromaClusterSpec,
    FromBackup,
    Resources,
    ScheduledBackup,
)
from chroma_operator.build.jobs import JobKind, build_cronjob, build_job, job_front_url
from chroma_operator.build.meta import Manifest, Owner, content_hash

BACKUP_COMPONENT = "backup"
RESTORE_COMPONENT = "restore"
BACKUP_LABEL = f"{API_GROUP}/backup"
"""On a ChromaBackup's Job: the ChromaBackup's name (how its result finds its way back)."""
NO_RETRY_EXIT_CODES = (1, 2)
"""1: the backup or restore failed for a reason it already retried (one line says why);
2: bad arguments. Neither passes on a retry; a crash or eviction may."""
RESOURCES: Resources = resources_of("250m", "512Mi", "2Gi")


def _kind(component: str) -> JobKind:
    return JobKind(component, NO_RETRY_EXIT_CODES, RESOURCES)


def _with_credentials(manifest: Manifest, secret: str | None) -> Manifest:
    """Every key of the Secret as an environment variable of the Job's container."""
    if secret:
        spec = manifest["spec"]
        template = (
            spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
        )
        for c in template["spec"]["containers"]:
            c["envFrom"] = [{"secretRef": {"name": secret}}]
    return manifest


def create_args(
    owner: Owner, spec: ChromaClusterSpec, destination: str, keep: int = 0, max_age_days: int = 0
) -> list[str]:
    args = [
        "backup",
        "create",
        "--url",
        job_front_url(owner, spec),
        "--to",
        destination,
        "--no-progress",
    ]
    if keep:
        args += ["--keep", str(keep)]
    if max_age_days:
        args += ["--max-age-days", str(max_age_days)]
    return args


def backup_job_name(backup: str) -> str:
    return f"{backup}-backup"


def build_backup_job(
    owner: Owner,
    spec: ChromaClusterSpec,
    backup: dict[str, Any],
) -> Manifest:
    """The Job that takes the backup a ChromaBackup (`backup`, the object) asks for.

    It belongs to the ChromaBackup (deleting that removes the Job), not to the cluster.
    """
    meta = backup["metadata"]
    bspec = backup["spec"]
    job = build_job(
        Owner(owner.name, owner.namespace),
        spec,
        _kind(BACKUP_COMPONENT),
        backup_job_name(meta["name"]),
        create_args(owner, spec, str(bspec["destination"])),
        {BACKUP_LABEL: meta["name"]},
    )
    job["metadata"]["labels"][BACKUP_LABEL] = meta["name"]
    if meta.get("uid"):
        job["metadata"]["ownerReferences"] = [
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": BACKUP_KIND,
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return _with_credentials(job, bspec.get("credentialsSecret"))


def backup_cronjob_name(cluster: str) -> str:
    return f"{cluster}-backup"


def build_backup_cronjob(owner: Owner, spec: ChromaClusterSpec) -> Manifest | None:
    """CronJob `X-backup`: `backup create` on schedule, then prune by retention."""
    b: ScheduledBackup | None = spec.backup
    if b is None:
        return None
    cron = build_cronjob(
        owner,
        spec,
        _kind(BACKUP_COMPONENT),
        backup_cronjob_name(owner.name),
        b.schedule,
        create_args(owner, spec, b.destination, b.retention.keep, b.retention.max_age_days or 0),
    )
    return _with_credentials(cron, b.credentials_secret)


def restore_source(f: FromBackup) -> str:
    return f"{f.destination.rstrip('/')}/{f.backup_id}"


def restore_job_name(cluster: str, f: FromBackup) -> str:
    return f"{cluster}-restore-{content_hash(f.model_dump(by_alias=True))[:10]}"


def build_restore_job(owner: Owner, spec: ChromaClusterSpec) -> Manifest | None:
    """The bootstrap Job: restore `bootstrap.fromBackup` through the routers, verified."""
    f = spec.bootstrap.from_backup if spec.bootstrap else None
    if f is None:
        return None
    args = ["backup", "restore", "--from", restore_source(f), "--url", job_front_url(owner, spec)]
    job = build_job(
        owner,
        spec,
        _kind(RESTORE_COMPONENT),
        restore_job_name(owner.name, f),
        [*args, "--no-progress"],
        {f"{API_GROUP}/restore-from": restore_source(f)},
    )
    return _with_credentials(job, f.credentials_secret)
