"""HNSW tuning workloads: the CronJob `X-tune` and one-off Jobs `X-tune-<hash>`.

Both run `chroma-operator tune` against the cluster's front Service (the router), so the
tuner sees exactly what clients see, in the Job shape every operator Job shares (`jobs.py`). The compact result goes to the container's
termination message, where the operator reads it back into `status.tuning`.
"""

from __future__ import annotations

from chroma_operator.api.models import ChromaClusterSpec, Tuning
from chroma_operator.build import naming
from chroma_operator.build.jobs import (
    REQUEST_HASH_LENGTH,
    JobKind,
    build_cronjob,
    build_job,
    job_front_url,
    request_job_name,
)
from chroma_operator.build.meta import Manifest, Owner, content_hash
from chroma_operator.tuner.errors import NO_RETRY_EXIT_CODES

COMPONENT = "tuner"
REPORT_DIR = "/tmp/tune"
VERIFY_ANNOTATION = f"{naming.ANNOTATION_PREFIX}/verify"


def tune_cronjob_name(cluster: str) -> str:
    return f"{cluster}-tune"


def tune_job_name(cluster: str, request: str, tuning: Tuning) -> str:
    """`X-tune-<hash>`: a new annotation value or tuning spec is a new Job; the same is not."""
    return request_job_name(cluster, "tune", request, tuning=tuning)


def _measure_args(spec: ChromaClusterSpec) -> list[str]:
    """What both the sweep and the verification measure: recall@k on a held-out sample."""
    t = spec.tuning
    return [
        "--k",
        str(t.k),
        "--target-recall",
        str(t.target_recall),
        "--sample",
        str(t.sample_size),
        "--queries",
        str(t.queries),
    ]


def tune_args(owner: Owner, spec: ChromaClusterSpec) -> list[str]:
    """The `chroma-operator tune` command line for the spec's tuning settings."""
    t = spec.tuning
    args = ["tune", "--url", job_front_url(owner, spec)]
    if t.collection:
        args += ["--collection", t.collection]
    return [
        *args,
        *_measure_args(spec),
        "--grid",
        "M=" + ",".join(str(v) for v in t.grid.max_neighbors),
        "--grid",
        "efc=" + ",".join(str(v) for v in t.grid.ef_construction),
        "--grid",
        "ef=" + ",".join(str(v) for v in t.grid.ef_search),
        "--report",
        f"{REPORT_DIR}/report.json",
        "--plot",
        f"{REPORT_DIR}/recall-latency.png",
        "--no-progress",
        # The Job applies the chosen efSearch itself: it holds the job token, the
        # operator holds no Secrets.
        *(["--apply-ef-search"] if t.apply != "none" else []),
    ]


def verify_args(owner: Owner, spec: ChromaClusterSpec, collection: str) -> list[str]:
    """`tune --verify`: the live recall and latency once an applied result is loaded."""
    return [
        "tune",
        "--url",
        job_front_url(owner, spec),
        "--collection",
        collection,
        "--verify",
        *_measure_args(spec),
        "--report",
        f"{REPORT_DIR}/verify.json",
        "--no-progress",
    ]


def _kind(spec: ChromaClusterSpec) -> JobKind:
    return JobKind(COMPONENT, NO_RETRY_EXIT_CODES, spec.tuning.resources)


def build_tuning_cronjob(owner: Owner, spec: ChromaClusterSpec) -> Manifest | None:
    """CronJob `X-tune` on `tuning.schedule`, or None when scheduled tuning is off."""
    if not spec.tuning.enabled:
        return None
    return build_cronjob(
        owner,
        spec,
        _kind(spec),
        tune_cronjob_name(owner.name),
        spec.tuning.schedule,
        tune_args(owner, spec),
    )


def build_tuning_job(owner: Owner, spec: ChromaClusterSpec, request: str) -> Manifest:
    """One-off Job for a `chroma.operator.dev/tune` annotation value (`request`)."""
    return build_job(
        owner,
        spec,
        _kind(spec),
        tune_job_name(owner.name, request, spec.tuning),
        tune_args(owner, spec),
        {naming.TUNE_ANNOTATION: request},
    )


def build_verify_job(
    owner: Owner, spec: ChromaClusterSpec, token: str, collection: str
) -> Manifest:
    """Job `X-verify-<hash>`: measures what clients get after an applied tuning result has
    been loaded by every shard (`token` names that rollout)."""
    digest = content_hash({"verify": token, "collection": collection})[:REQUEST_HASH_LENGTH]
    return build_job(
        owner,
        spec,
        _kind(spec),
        f"{owner.name}-verify-{digest}",
        verify_args(owner, spec, collection),
        {VERIFY_ANNOTATION: token},
    )
