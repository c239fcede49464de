"""The embedding encoder: a Deployment (GPU or CPU) and its Service."""

from __future__ import annotations

from typing import Any

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.images import encoder_image
from chroma_operator.build.meta import Manifest, Owner, metadata, selector_labels
from chroma_operator.build.resources import container_resources
from chroma_operator.build.security import container_security_context, pod_security_context

COMPONENT = "encoder"
MODEL_CACHE_DIR = "/var/cache/models"
DRAIN_DELAY_SECONDS = 5
"""After SIGTERM the pod serves (unready) this long while it leaves the Service's endpoints."""
SHUTDOWN_TIMEOUT_SECONDS = 40
"""Then at most this long to answer what it accepted (a full CPU queue takes about that)."""
TERMINATION_GRACE_SECONDS = DRAIN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 15
"""Kubernetes' SIGKILL comes only after both, with room for the process to exit."""


def encoder_args(
    spec: ChromaClusterSpec, *, port: int | None = None, host: str = "0.0.0.0"
) -> list[str]:
    """The `chroma-operator encoder ...` arguments; the pod and the local runtime share them."""
    enc = spec.encoder
    b = enc.batching
    return [
        "encoder",
        "--model",
        enc.model,
        "--host",
        host,
        "--port",
        str(port if port is not None else enc.port),
        "--device",
        "cuda" if enc.gpu > 0 else "cpu",
        "--dtype",
        enc.dtype,
        "--max-batch-size",
        str(b.max_batch_size),
        "--max-batch-delay-ms",
        str(b.max_batch_delay_ms),
        "--max-client-batch",
        str(b.max_client_batch),
        "--max-queue",
        str(b.max_queue),
        "--auto-truncate" if enc.truncate else "--no-auto-truncate",
    ]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def build_encoder_deployment(owner: Owner, spec: ChromaClusterSpec) -> Manifest:
    enc = spec.encoder
    selector = selector_labels(owner, COMPONENT)
    gpu_limits = {enc.gpu_resource_name: enc.gpu} if enc.gpu > 0 else None
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": pod_security_context(fs_group=False),
        "containers": [
            {
                "name": "encoder",
                "image": encoder_image(spec),
                "imagePullPolicy": spec.image_pull_policy,
                "args": [
                    *encoder_args(spec),
                    "--drain-delay-seconds",
                    str(DRAIN_DELAY_SECONDS),
                    "--shutdown-timeout-seconds",
                    str(SHUTDOWN_TIMEOUT_SECONDS),
                ],
                "env": [
                    {"name": "HF_HUB_OFFLINE", "value": "1"},
                    {"name": "HF_HOME", "value": MODEL_CACHE_DIR},
                ],
                "ports": [{"name": "http", "containerPort": enc.port, "protocol": "TCP"}],
                "resources": container_resources(enc.resources, gpu_limits),
                "securityContext": container_security_context(read_only_root=True),
                # /health answers 200 once the model is loaded (and while draining);
                # /ready only from load to SIGTERM, so a loading or leaving pod gets no traffic.
                "startupProbe": _probe("/health", 5, 60),
                "readinessProbe": _probe("/ready", 5, 1),
                "livenessProbe": _probe("/health", 20, 6),
                "volumeMounts": [
                    {"name": "model-cache", "mountPath": MODEL_CACHE_DIR},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "model-cache", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if enc.gpu > 0:
        pod["tolerations"] = [
            {"key": enc.gpu_resource_name, "operator": "Exists", "effect": "NoSchedule"}
        ]
    if enc.node_selector:
        pod["nodeSelector"] = dict(enc.node_selector)
    deployment: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {"labels": {**selector, "app.kubernetes.io/managed-by": "chroma-operator"}},
            "spec": pod,
        },
    }
    if not enc.autoscaling.enabled:
        # With an autoscaler the field is its alone: never set, so never reset, by us.
        deployment = {"replicas": enc.replicas, **deployment}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, naming.encoder(owner.name), COMPONENT),
        "spec": deployment,
    }


def build_encoder_service(owner: Owner, spec: ChromaClusterSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, naming.encoder(owner.name), COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner, COMPONENT),
            "ports": [
                {"name": "http", "port": spec.encoder.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }
