"""Plain manifests for `kubectl apply`: the same objects the Helm chart renders.

`tests/chart/` renders the chart at the same settings and compares object by object, so a
change here without the matching change in `charts/chroma-operator/` fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chroma_operator import __version__
from chroma_operator.api.backup_crd import build_backup_crd
from chroma_operator.api.crd import build_crd
from chroma_operator.api.models import DEFAULT_OPERATOR_IMAGE
from chroma_operator.build.network import INSTANCE_ENV, NAME_ENV, NAMESPACE_ENV
from chroma_operator.build.security import container_security_context, pod_security_context
from chroma_operator.install.peering import peering_crds, peering_objects
from chroma_operator.reconcile.rbac import cluster_scoped_rules, operator_rules

Manifest = dict[str, Any]

HEALTH_PORT = 8080
METRICS_PORT = 8081
HEALTH_PATH = "/healthz"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
MANAGED_BY = "chroma-operator-install"


@dataclass(frozen=True)
class InstallOptions:
    """What `chroma-operator install generate` (and the chart's values) can change."""

    name: str = "chroma-operator"
    namespace: str = "chroma-operator"
    watch_namespaces: tuple[str, ...] = ()
    image: str = DEFAULT_OPERATOR_IMAGE
    replicas: int = 1
    peering_name: str = "chroma-operator"
    create_namespace: bool = True
    install_crds: bool = True
    resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        }
    )

    @property
    def ha(self) -> bool:
        return self.replicas > 1


def selector_labels(opts: InstallOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": "chroma-operator", "app.kubernetes.io/instance": opts.name}


def common_labels(opts: InstallOptions) -> dict[str, str]:
    return {
        **selector_labels(opts),
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _meta(opts: InstallOptions, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = common_labels(opts)
    return meta


def operator_args(opts: InstallOptions) -> list[str]:
    """`chroma-operator run` flags; an HA replica's peering priority is its pod index."""
    args = ["run"]
    if opts.watch_namespaces:
        for ns in opts.watch_namespaces:
            args += ["--namespace", ns]
    else:
        args.append("--all-namespaces")
    args += [
        "--peering",
        opts.peering_name,
        "--liveness",
        f"http://0.0.0.0:{HEALTH_PORT}{HEALTH_PATH}",
        "--metrics-port",
        str(METRICS_PORT),
        "--log-format",
        "json",
    ]
    if opts.ha:
        # Equal priorities make kopf pause every replica; distinct ones give one leader.
        args += ["--priority", "$(POD_INDEX)"]
    return args


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def pod_template(opts: InstallOptions) -> dict[str, Any]:
    probe = {"httpGet": {"path": HEALTH_PATH, "port": "http"}, "timeoutSeconds": 5}
    container: dict[str, Any] = {
        "name": "operator",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "args": operator_args(opts),
    }
    # Who the operator is, for the clusters' NetworkPolicies (build/network.py).
    container["env"] = [
        _field_env(NAMESPACE_ENV, "metadata.namespace"),
        _field_env(NAME_ENV, "metadata.labels['app.kubernetes.io/name']"),
        _field_env(INSTANCE_ENV, "metadata.labels['app.kubernetes.io/instance']"),
    ]
    if opts.ha:
        container["env"].append(_field_env("POD_INDEX", f"metadata.labels['{POD_INDEX_LABEL}']"))
    container.update(
        {
            "ports": [
                {"name": "http", "containerPort": HEALTH_PORT, "protocol": "TCP"},
                {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            ],
            "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
            "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
            "resources": opts.resources,
            "securityContext": container_security_context(read_only_root=True),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    )
    return {
        "metadata": {"labels": common_labels(opts)},
        "spec": {
            "serviceAccountName": opts.name,
            "automountServiceAccountToken": True,
            "securityContext": pod_security_context(fs_group=False),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


def build_workload(opts: InstallOptions) -> Manifest:
    """One replica: a Deployment. HA: a StatefulSet, whose pods know their index (priority)."""
    spec: dict[str, Any] = {
        "replicas": opts.replicas,
        "selector": {"matchLabels": selector_labels(opts)},
    }
    if opts.ha:
        spec.update({"serviceName": opts.name, "podManagementPolicy": "Parallel"})
        kind = "StatefulSet"
    else:
        # Never two operators at once during a rollout.
        spec["strategy"] = {"type": "Recreate"}
        kind = "Deployment"
    spec["template"] = pod_template(opts)
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": _meta(opts, opts.name, opts.namespace),
        "spec": spec,
    }


def build_rbac(opts: InstallOptions) -> list[Manifest]:
    """ClusterRole + binding, or in namespaced mode a Role + RoleBinding per namespace only."""
    subject = [{"kind": "ServiceAccount", "name": opts.name, "namespace": opts.namespace}]
    if not opts.watch_namespaces:
        return [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _meta(opts, opts.name),
                "rules": operator_rules() + cluster_scoped_rules(),
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _meta(opts, opts.name),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": opts.name,
                },
                "subjects": subject,
            },
        ]
    out: list[Manifest] = []
    for ns in opts.watch_namespaces:
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(opts, opts.name, ns),
                "rules": operator_rules(),
            }
        )
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(opts, opts.name, ns),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": opts.name,
                },
                "subjects": subject,
            }
        )
    return out


def build_service(opts: InstallOptions) -> Manifest:
    """The operator's health and metrics ports (also the HA StatefulSet's serviceName)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(opts, opts.name, opts.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(opts),
            "ports": [
                {"name": "http", "port": HEALTH_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                },
            ],
        },
    }


def build_pdb(opts: InstallOptions) -> Manifest:
    """HA only: a node drain never takes every operator replica at once."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(opts, opts.name, opts.namespace),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(opts)}},
    }


def build_install(opts: InstallOptions | None = None) -> list[Manifest]:
    """Every object of a plain-manifest install, in `kubectl apply` order."""
    opts = opts or InstallOptions()
    out: list[Manifest] = []
    if opts.create_namespace:
        out.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(opts, opts.namespace)}
        )
    if opts.install_crds:
        out.append(build_crd())
        out.append(build_backup_crd())
        out += peering_crds()
    out.append(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(opts, opts.name, opts.namespace),
        }
    )
    out += build_rbac(opts)
    out.append(build_service(opts))
    out.append(build_workload(opts))
    if opts.ha:
        out.append(build_pdb(opts))
    for obj in peering_objects(opts.peering_name, list(opts.watch_namespaces)):
        obj["metadata"]["labels"] = common_labels(opts)
        out.append(obj)
    return out
