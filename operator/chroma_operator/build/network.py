"""NetworkPolicies around a cluster: who may reach the shards, the routers and the encoder.

Chroma's own port on the shard pods is the data, unauthenticated: only the cluster's
own pods (routers, tuning/repair/backup Jobs, all labelled with the cluster's instance)
and the operator (resharding moves records shard to shard) may reach it. The router
port (the API, where tokens are checked) and the encoder port accept
`spec.network.allowFrom`, anywhere when that is empty, and always the cluster's pods and
the operator (it scrapes the routers). Egress is not restricted.

The operator's pods are named by the namespace it runs in and its pods' name and instance
labels, which its Deployment passes in as environment (`operator_peer`); an operator run
outside the cluster has none, and the policies name only the cluster's pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.encoder import COMPONENT as ENCODER_COMPONENT
from chroma_operator.build.meta import Manifest, Owner, metadata, selector_labels
from chroma_operator.build.shards import COMPONENT as SHARD_COMPONENT


def cluster_pods(owner: Owner) -> dict[str, Any]:
    """Every pod of this cluster (same namespace): the instance label the builders set."""
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "chroma",
                "app.kubernetes.io/instance": owner.name,
            }
        }
    }


NAMESPACE_ENV = "CHROMA_OPERATOR_NAMESPACE"
NAME_ENV = "CHROMA_OPERATOR_NAME"
INSTANCE_ENV = "CHROMA_OPERATOR_INSTANCE"
"""Set by the operator's Deployment from its own pod (the downward API)."""


def operator_peer(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The operator's pods as a NetworkPolicy peer, from its environment; None outside a
    cluster (any of the three unset)."""
    namespace, name, instance = (env.get(k) for k in (NAMESPACE_ENV, NAME_ENV, INSTANCE_ENV))
    if not (namespace and name and instance):
        return None
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}
        },
    }


def _port(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _ours(owner: Owner, operator: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The cluster's own pods, and the operator's when it runs in the cluster."""
    return [cluster_pods(owner), *([dict(operator)] if operator else [])]


def _allowed(
    owner: Owner, spec: ChromaClusterSpec, port: int, operator: Mapping[str, Any] | None
) -> dict[str, Any]:
    """An ingress rule for `port` from allowFrom plus the cluster's pods and the
    operator; no `from` (anywhere) when allowFrom is empty."""
    rule: dict[str, Any] = {"ports": [_port(port)]}
    if spec.network.allow_from:
        peers = [
            p.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
            for p in spec.network.allow_from
        ]
        rule["from"] = [*peers, *_ours(owner, operator)]
    return rule


def _policy(owner: Owner, name: str, component: str, ingress: list[Any]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(owner, name, component),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner, component)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def build_network_policies(
    owner: Owner, spec: ChromaClusterSpec, operator: Mapping[str, Any] | None = None
) -> list[Manifest]:
    """The policies; `operator` is `operator_peer(...)` of the operator's environment."""
    if not spec.network.policies:
        return []
    shards = _policy(
        owner,
        f"{owner.name}-shards",
        SHARD_COMPONENT,
        [
            {"ports": [_port(naming.CHROMA_PORT)], "from": _ours(owner, operator)},
            _allowed(owner, spec, spec.router.port, operator),
        ],
    )
    out = [shards]
    if spec.encoder.enabled:
        out.append(
            _policy(
                owner,
                naming.encoder(owner.name),
                ENCODER_COMPONENT,
                [_allowed(owner, spec, spec.encoder.port, operator)],
            )
        )
    return out
