"""Replica repair workloads: the CronJob `X-repair` and one-off Jobs `X-repair-<hash>`.

Both run `chroma-operator repair` against the cluster's front Service: the router says
which replicas exist and which are in sync, and the repair talks to each replica. The
compact report goes to the termination message, where the operator reads it back into
`status.repair`.
"""

from __future__ import annotations

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.jobs import (
    JobKind,
    build_cronjob,
    build_job,
    job_front_url,
    request_job_name,
)
from chroma_operator.build.meta import Manifest, Owner
from chroma_operator.repair.errors import NO_RETRY_EXIT_CODES

COMPONENT = "repair"
REPORT_DIR = "/tmp/repair"
REPAIR_ANNOTATION = f"{naming.ANNOTATION_PREFIX}/repair"


def repair_cronjob_name(cluster: str) -> str:
    return f"{cluster}-repair"


def repair_hint(cluster: str, spec: ChromaClusterSpec) -> str:
    """How a replica that needs a repair gets one: the scheduled CronJob (when there is
    one), or now, through the annotation."""
    now = f"kubectl annotate chroma {cluster} {REPAIR_ANNOTATION}=$(date +%s) --overwrite"
    if not spec.repair.enabled:
        return f"Scheduled repair is off (spec.repair.enabled); to repair now: {now}"
    cronjob = repair_cronjob_name(cluster)
    return f"The {cronjob} CronJob repairs it on its schedule; to repair now: {now}"


def repair_job_name(cluster: str, request: str, spec: ChromaClusterSpec) -> str:
    return request_job_name(cluster, "repair", request, repair=spec.repair)


def repair_args(owner: Owner, spec: ChromaClusterSpec) -> list[str]:
    """The `chroma-operator repair` command line for the spec's repair settings."""
    r = spec.repair
    args = ["repair", "--url", job_front_url(owner, spec)]
    if r.collection:
        args += ["--collection", r.collection]
    return [
        *args,
        "--records-per-second",
        str(r.records_per_second),
        "--report",
        f"{REPORT_DIR}/report.json",
        "--no-progress",
    ]


def _kind(spec: ChromaClusterSpec) -> JobKind:
    return JobKind(COMPONENT, NO_RETRY_EXIT_CODES, spec.repair.resources)


def build_repair_cronjob(owner: Owner, spec: ChromaClusterSpec) -> Manifest | None:
    """CronJob `X-repair` on `repair.schedule`, or None when scheduled repair is off."""
    if not spec.repair.enabled:
        return None
    return build_cronjob(
        owner,
        spec,
        _kind(spec),
        repair_cronjob_name(owner.name),
        spec.repair.schedule,
        repair_args(owner, spec),
    )


def build_repair_job(owner: Owner, spec: ChromaClusterSpec, request: str) -> Manifest:
    """One-off Job for a `chroma.operator.dev/repair` annotation value (`request`)."""
    return build_job(
        owner,
        spec,
        _kind(spec),
        repair_job_name(owner.name, request, spec),
        repair_args(owner, spec),
        {REPAIR_ANNOTATION: request},
    )
