"""NetworkPolicies around a cluster: who may reach the shards, the routers and the encoder.

Chroma's own port on the shard pods is the data, unauthenticated: only the cluster's
own pods (routers, tuning/repair/backup Jobs, all labelled with the cluster's instance)
may reach it. The router port (the API, where tokens are checked) and the encoder port
accept `spec.network.allowFrom`, anywhere when that is empty, and always the cluster's
pods. Egress is not restricted.
"""

from __future__ import annotations

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


def _port(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def _allowed(owner: Owner, spec: ChromaClusterSpec, port: int) -> dict[str, Any]:
    """An ingress rule for `port` from allowFrom plus the cluster's pods; no `from`
    (anywhere) when allowFrom is empty."""
    rule: dict[str, Any] = {"ports": [_port(port)]}
    if spec.network.allow_from:
        peers = [
            p.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
            for p in spec.network.allow_from
        ]
        rule["from"] = [*peers, cluster_pods(owner)]
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


def build_network_policies(owner: Owner, spec: ChromaClusterSpec) -> list[Manifest]:
    if not spec.network.policies:
        return []
    shards = _policy(
        owner,
        f"{owner.name}-shards",
        SHARD_COMPONENT,
        [
            {"ports": [_port(naming.CHROMA_PORT)], "from": [cluster_pods(owner)]},
            _allowed(owner, spec, spec.router.port),
        ],
    )
    out = [shards]
    if spec.encoder.enabled:
        out.append(
            _policy(
                owner,
                naming.encoder(owner.name),
                ENCODER_COMPONENT,
                [_allowed(owner, spec, spec.encoder.port)],
            )
        )
    return out
