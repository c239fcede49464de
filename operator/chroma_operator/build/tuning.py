"""HNSW tuning workloads: the CronJob `X-tune` and one-off Jobs `X-tune-<hash>`.

Both run `chroma-operator tune` against the cluster's front Service (the router), so the
tuner sees exactly what clients see. The compact result goes to the container's
termination message, where the operator reads it back into `status.tuning`.
"""

from __future__ import annotations

from typing import Any

from chroma_operator.api.models import ChromaClusterSpec, Tuning
from chroma_operator.build import naming
from chroma_operator.build.images import router_image
from chroma_operator.build.meta import Manifest, Owner, content_hash, metadata, selector_labels
from chroma_operator.build.resources import container_resources
from chroma_operator.build.security import container_security_context, pod_security_context
from chroma_operator.tuner.errors import NO_RETRY_EXIT_CODES

COMPONENT = "tuner"
REPORT_DIR = "/tmp/tune"
BACKOFF_LIMIT = 2
"""Retries for failures that may pass (Chroma unreachable); input errors fail at once."""
TTL_SECONDS_AFTER_FINISHED = 86_400
"""Finished Jobs stay a day: long enough for the operator to read the result back."""
ACTIVE_DEADLINE_SECONDS = 4 * 3600
REQUEST_HASH_LENGTH = 10
VERIFY_ANNOTATION = f"{naming.ANNOTATION_PREFIX}/verify"


def tune_cronjob_name(cluster: str) -> str:
    return f"{cluster}-tune"


def tune_job_name(cluster: str, request: str, tuning: Tuning) -> str:
    """`X-tune-<hash>`: a new annotation value or tuning spec is a new Job; the same is not."""
    digest = content_hash({"request": request, "tuning": tuning.model_dump(by_alias=True)})
    return f"{cluster}-tune-{digest[:REQUEST_HASH_LENGTH]}"


def front_url(owner: Owner) -> str:
    host = naming.service_host(naming.front_service(owner.name), owner.namespace)
    return f"http://{host}:{naming.CHROMA_PORT}"


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
    args = ["tune", "--url", front_url(owner)]
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
    ]


def verify_args(owner: Owner, spec: ChromaClusterSpec, collection: str) -> list[str]:
    """`tune --verify`: the live recall and latency once an applied result is loaded."""
    return [
        "tune",
        "--url",
        front_url(owner),
        "--collection",
        collection,
        "--verify",
        *_measure_args(spec),
        "--report",
        f"{REPORT_DIR}/verify.json",
        "--no-progress",
    ]


def _pod_template(
    owner: Owner, spec: ChromaClusterSpec, args: list[str] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": COMPONENT,
        # The tuner ships in the operator/router image (one slim image for all three).
        "image": router_image(spec),
        "imagePullPolicy": spec.image_pull_policy,
        "args": args if args is not None else tune_args(owner, spec),
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        ],
        "resources": container_resources(spec.tuning.resources),
        "securityContext": container_security_context(read_only_root=True),
        "terminationMessagePath": "/dev/termination-log",
        # The compact result when the tuner wrote one; the log tail if it crashed first.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "metadata": {
            "labels": {
                **selector_labels(owner, COMPONENT),
                "app.kubernetes.io/managed-by": "chroma-operator",
            }
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(fs_group=False),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
        },
    }


def _job_spec(
    owner: Owner, spec: ChromaClusterSpec, args: list[str] | None = None
) -> dict[str, Any]:
    return {
        "backoffLimit": BACKOFF_LIMIT,
        "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
        "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": COMPONENT,
                        "operator": "In",
                        "values": list(NO_RETRY_EXIT_CODES),
                    },
                },
                # Evicted or preempted pods are not the tuner's fault: do not count them.
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": _pod_template(owner, spec, args),
    }


def build_tuning_cronjob(owner: Owner, spec: ChromaClusterSpec) -> Manifest | None:
    """CronJob `X-tune` on `tuning.schedule`, or None when scheduled tuning is off."""
    if not spec.tuning.enabled:
        return None
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(owner, tune_cronjob_name(owner.name), COMPONENT),
        "spec": {
            "schedule": spec.tuning.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": selector_labels(owner, COMPONENT)},
                "spec": _job_spec(owner, spec),
            },
        },
    }


def build_tuning_job(owner: Owner, spec: ChromaClusterSpec, request: str) -> Manifest:
    """One-off Job for a `chroma.operator.dev/tune` annotation value (`request`)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(
            owner,
            tune_job_name(owner.name, request, spec.tuning),
            COMPONENT,
            annotations={naming.TUNE_ANNOTATION: request},
        ),
        "spec": _job_spec(owner, spec),
    }


def build_verify_job(
    owner: Owner, spec: ChromaClusterSpec, token: str, collection: str
) -> Manifest:
    """Job `X-verify-<hash>`: measures what clients get after an applied tuning result has
    been loaded by every shard (`token` names that rollout)."""
    digest = content_hash({"verify": token, "collection": collection})[:REQUEST_HASH_LENGTH]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(
            owner,
            f"{owner.name}-verify-{digest}",
            COMPONENT,
            annotations={VERIFY_ANNOTATION: token},
        ),
        "spec": _job_spec(owner, spec, verify_args(owner, spec, collection)),
    }
