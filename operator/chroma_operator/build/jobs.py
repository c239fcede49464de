"""Operator-run batch work (tuning, repair): one Job shape, one CronJob shape.

Each kind of Job runs one `chroma-operator` subcommand from the operator/router image
against the cluster's front Service (through its auth and TLS, when the spec has them)
and writes a compact JSON result to the container's termination message, where the
operator reads it back into status. What differs between kinds (component, arguments,
resources, which exit codes are final) is a `JobKind`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from chroma_operator.api.models import ChromaClusterSpec, Resources
from chroma_operator.build import naming
from chroma_operator.build.images import router_image
from chroma_operator.build.meta import Manifest, Owner, content_hash, metadata, selector_labels
from chroma_operator.build.resources import container_resources
from chroma_operator.build.security import container_security_context, pod_security_context

BACKOFF_LIMIT = 2
"""Retries for failures that may pass (Chroma unreachable); input errors fail at once."""
TTL_SECONDS_AFTER_FINISHED = 86_400
"""Finished Jobs stay a day: long enough for the operator to read the result back."""
ACTIVE_DEADLINE_SECONDS = 4 * 3600
REQUEST_HASH_LENGTH = 10


@dataclass(frozen=True)
class JobKind:
    """What makes one kind of operator Job: its component label (also the container
    name), the exit codes that must not be retried, and its resources."""

    component: str
    no_retry_exit_codes: tuple[int, ...]
    resources: Resources


def front_url(owner: Owner, tls: bool = False) -> str:
    host = naming.service_host(naming.front_service(owner.name), owner.namespace)
    return f"{naming.router_scheme(tls)}://{host}:{naming.CHROMA_PORT}"


def job_front_url(owner: Owner, spec: ChromaClusterSpec) -> str:
    """The routers as a Job reaches them: HTTPS when the spec has TLS."""
    return front_url(owner, spec.tls.secret_name is not None)


def cluster_credentials(
    spec: ChromaClusterSpec,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts, env) that take a Job through the routers' auth and TLS.

    Auth: `auth.jobToken` as `CHROMA_TOKEN`, which every Job command reads. TLS: only
    `ca.crt` of the TLS Secret (never the key), trusted when the Secret has one
    (`CHROMA_CA_FILE`, see `cli.trust_cluster_ca`; without it, the system's trust).
    """
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    env: list[dict[str, Any]] = []
    ref = spec.auth.job_token
    if spec.auth.secret_name and ref is not None:
        secret = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        env.append({"name": "CHROMA_TOKEN", "valueFrom": secret})
    if spec.tls.secret_name:
        ca = {"key": naming.TLS_CA_KEY, "path": naming.TLS_CA_KEY}
        volumes.append(
            {
                "name": "tls-ca",
                "secret": {
                    "secretName": spec.tls.secret_name,
                    "items": [ca],
                    "defaultMode": 0o444,
                    "optional": True,  # a publicly trusted certificate comes without ca.crt
                },
            }
        )
        mounts.append({"name": "tls-ca", "mountPath": naming.TLS_DIR, "readOnly": True})
        env.append({"name": naming.CA_FILE_ENV, "value": f"{naming.TLS_DIR}/{naming.TLS_CA_KEY}"})
    return volumes, mounts, env


def request_job_name(cluster: str, suffix: str, request: str, **settings: BaseModel) -> str:
    """`X-<suffix>-<hash>`: a new annotation value or new settings is a new Job; the same is not."""
    payload = {"request": request, **{k: v.model_dump(by_alias=True) for k, v in settings.items()}}
    return f"{cluster}-{suffix}-{content_hash(payload)[:REQUEST_HASH_LENGTH]}"


def pod_template(
    owner: Owner, spec: ChromaClusterSpec, kind: JobKind, args: list[str]
) -> dict[str, Any]:
    volumes, mounts, env = cluster_credentials(spec)
    container: dict[str, Any] = {
        "name": kind.component,
        # Every Job ships in the operator/router image (one slim image for all of them).
        "image": router_image(spec),
        "imagePullPolicy": spec.image_pull_policy,
        "args": args,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
            *env,
        ],
        "resources": container_resources(kind.resources),
        "securityContext": container_security_context(read_only_root=True),
        "terminationMessagePath": "/dev/termination-log",
        # The compact result when the program wrote one; the log tail if it crashed first.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
    }
    return {
        "metadata": {
            "labels": {
                **selector_labels(owner, kind.component),
                "app.kubernetes.io/managed-by": "chroma-operator",
            }
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(fs_group=False),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, *volumes],
        },
    }


def job_spec(
    owner: Owner, spec: ChromaClusterSpec, kind: JobKind, args: list[str]
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
                        "containerName": kind.component,
                        "operator": "In",
                        "values": list(kind.no_retry_exit_codes),
                    },
                },
                # Evicted or preempted pods are not the program's fault: do not count them.
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
            ]
        },
        "template": pod_template(owner, spec, kind, args),
    }


def build_cronjob(
    owner: Owner,
    spec: ChromaClusterSpec,
    kind: JobKind,
    name: str,
    schedule: str,
    args: list[str],
) -> Manifest:
    """A CronJob that runs `args` on `schedule`, never two at once."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(owner, name, kind.component),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": selector_labels(owner, kind.component)},
                "spec": job_spec(owner, spec, kind, args),
            },
        },
    }


def build_job(
    owner: Owner,
    spec: ChromaClusterSpec,
    kind: JobKind,
    name: str,
    args: list[str],
    annotations: dict[str, str],
) -> Manifest:
    """A one-off Job (an annotation asked for it; `annotations` say which request)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(owner, name, kind.component, annotations=annotations),
        "spec": job_spec(owner, spec, kind, args),
    }
