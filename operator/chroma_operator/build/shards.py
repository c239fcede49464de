"""Per shard: a StatefulSet (chroma + router sidecar), its headless Service, and a PDB."""

from __future__ import annotations

from typing import Any

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.config import chroma_config_yaml, chroma_server_config
from chroma_operator.build.images import chroma_image, router_image
from chroma_operator.build.meta import Manifest, Owner, content_hash, metadata, selector_labels
from chroma_operator.build.resources import container_resources
from chroma_operator.build.security import container_security_context, pod_security_context
from chroma_operator.topology import CHROMA_CONFIG_KEY, TOPOLOGY_KEY

COMPONENT = "shard"


def shard_selector(owner: Owner, index: int) -> dict[str, str]:
    return {**selector_labels(owner, COMPONENT), naming.SHARD_LABEL: str(index)}


def _http_probe(
    path: str, port: str, period: int, failures: int, scheme: str = "HTTP"
) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": scheme},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _chroma_container(spec: ChromaClusterSpec, image: str | None) -> dict[str, Any]:
    return {
        "name": "chroma",
        "image": image or chroma_image(spec),
        "imagePullPolicy": spec.image_pull_policy,
        "args": ["run", f"{naming.CHROMA_CONFIG_DIR}/{CHROMA_CONFIG_KEY}"],
        "ports": [{"name": "chroma", "containerPort": naming.CHROMA_PORT, "protocol": "TCP"}],
        "resources": container_resources(spec.resources),
        "securityContext": container_security_context(read_only_root=True),
        "startupProbe": _http_probe("/api/v2/heartbeat", "chroma", 5, 60),
        "readinessProbe": _http_probe("/api/v2/heartbeat", "chroma", 10, 3),
        "livenessProbe": _http_probe("/api/v2/heartbeat", "chroma", 20, 6),
        "volumeMounts": [
            {"name": "data", "mountPath": naming.DATA_DIR},
            {"name": "chroma-config", "mountPath": naming.CHROMA_CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def router_args(topology_path: str, port: int, host: str = "0.0.0.0") -> list[str]:
    """The `chroma-operator router ...` arguments; the pod and the local runtime share them."""
    return ["router", "--topology", topology_path, "--host", host, "--port", str(port)]


def router_secret_volumes(spec: ChromaClusterSpec) -> list[tuple[dict[str, Any], str]]:
    """The auth and TLS Secrets as (volume, mount path), whole (no subPath: rotations
    reach the files, and the router re-reads the tokens file when it changes)."""
    out = []
    for name, secret, path in (
        ("auth", spec.auth.secret_name, naming.AUTH_DIR),
        ("tls", spec.tls.secret_name, naming.TLS_DIR),
    ):
        if secret:
            volume = {"name": name, "secret": {"secretName": secret, "defaultMode": 0o440}}
            out.append((volume, path))
    return out


def _router_container(spec: ChromaClusterSpec) -> dict[str, Any]:
    port = spec.router.port
    scheme = naming.router_scheme(spec.tls.secret_name is not None).upper()
    secrets = [
        {"name": vol["name"], "mountPath": path, "readOnly": True}
        for vol, path in router_secret_volumes(spec)
    ]
    return {
        "name": "router",
        "image": router_image(spec),
        "imagePullPolicy": spec.image_pull_policy,
        "args": router_args(f"{naming.CONFIG_DIR}/{TOPOLOGY_KEY}", port),
        "ports": [{"name": "router", "containerPort": port, "protocol": "TCP"}],
        "resources": container_resources(spec.router.resources),
        "securityContext": container_security_context(read_only_root=True),
        # Readiness is the router's own health, not every shard's: one shard down must
        # not take every router out of the front Service (partial results need them).
        "readinessProbe": _http_probe("/healthz", "router", 5, 3, scheme),
        "livenessProbe": _http_probe("/healthz", "router", 20, 3, scheme),
        "volumeMounts": [
            # The whole directory, not a subPath, so ConfigMap updates reach the file.
            {"name": "topology", "mountPath": naming.CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *secrets,
            # Hint logs must outlive the router (and the pod): a subPath of the pod's
            # own PersistentVolumeClaim, not an emptyDir.
            {"name": "data", "mountPath": naming.HINTS_DIR, "subPath": naming.HINTS_SUBPATH},
        ],
    }


def build_statefulset(
    owner: Owner,
    spec: ChromaClusterSpec,
    index: int,
    restart_token: str | None = None,
    *,
    replicas: int | None = None,
    image: str | None = None,
    storage_size: str | None = None,
) -> Manifest:
    """`restart_token` (from status, when a rollout asked for it) restarts the shard's pods
    once: a changed pod-template annotation is a rolling restart by the StatefulSet.

    The operator overrides the spec per shard while a day-2 operation is under way:
    `replicas` (0 when hibernated), `image` (the version this shard runs during a rolling
    upgrade) and `storage_size` (the claim size the live StatefulSet was built with)."""
    name = naming.shard(owner.name, index)
    template_annotations = {
        naming.CONFIG_HASH_ANNOTATION: content_hash(chroma_config_yaml(chroma_server_config(spec)))
    }
    if restart_token:
        template_annotations[naming.RESTARTED_AT_ANNOTATION] = restart_token
    selector = shard_selector(owner, index)
    claim: dict[str, Any] = {
        "metadata": {"name": "data", "labels": selector},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage_size or spec.storage.size}},
        },
    }
    if spec.storage.storage_class_name:
        claim["spec"]["storageClassName"] = spec.storage.storage_class_name
    config_volume_items = {
        "chroma-config": CHROMA_CONFIG_KEY,
        "topology": TOPOLOGY_KEY,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(owner, name, COMPONENT, extra_labels={naming.SHARD_LABEL: str(index)}),
        "spec": {
            "serviceName": name,
            "replicas": spec.replicas if replicas is None else replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {
                    "labels": {**selector, "app.kubernetes.io/managed-by": "chroma-operator"},
                    # A change of Chroma's own settings needs a restart; topology changes
                    # are reloaded by the router and must not restart anything.
                    "annotations": template_annotations,
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "terminationGracePeriodSeconds": 30,
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": selector},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [_chroma_container(spec, image), _router_container(spec)],
                    "volumes": [
                        {
                            "name": vol,
                            "configMap": {
                                "name": naming.config_map(owner.name),
                                "items": [{"key": key, "path": key}],
                            },
                        }
                        for vol, key in config_volume_items.items()
                    ]
                    + [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
                    + [vol for vol, _ in router_secret_volumes(spec)],
                },
            },
            "volumeClaimTemplates": [claim],
        },
    }


def build_headless_service(owner: Owner, spec: ChromaClusterSpec, index: int) -> Manifest:
    """Gives every shard pod a stable DNS name, published before it is ready."""
    name = naming.shard(owner.name, index)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, name, COMPONENT, extra_labels={naming.SHARD_LABEL: str(index)}),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": shard_selector(owner, index),
            "ports": [
                {
                    "name": "chroma",
                    "port": naming.CHROMA_PORT,
                    "targetPort": "chroma",
                    "protocol": "TCP",
                },
                {
                    "name": "router",
                    "port": spec.router.port,
                    "targetPort": "router",
                    "protocol": "TCP",
                },
            ],
        },
    }


def build_pdb(owner: Owner, spec: ChromaClusterSpec, index: int) -> Manifest | None:
    """Keep at least one replica of a shard up through voluntary disruptions."""
    if spec.replicas < 2:
        return None
    name = naming.shard(owner.name, index)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, name, COMPONENT, extra_labels={naming.SHARD_LABEL: str(index)}),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": shard_selector(owner, index)}},
    }
