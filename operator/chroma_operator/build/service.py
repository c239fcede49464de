"""The cluster's front door: Service `X` on Chroma's port, backed by every router."""

from __future__ import annotations

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.meta import Manifest, Owner, metadata, selector_labels
from chroma_operator.build.shards import COMPONENT as SHARD_COMPONENT


def build_front_service(owner: Owner, spec: ChromaClusterSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, naming.front_service(owner.name), "router"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner, SHARD_COMPONENT),
            "ports": [
                {
                    "name": "http",
                    "port": naming.CHROMA_PORT,
                    "targetPort": "router",
                    "protocol": "TCP",
                },
                {
                    "name": "metrics",
                    "port": spec.router.port,
                    "targetPort": "router",
                    "protocol": "TCP",
                },
            ],
        },
    }
