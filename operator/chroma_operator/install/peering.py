"""kopf's peering CRDs and objects: how operator replicas agree which one is active.

kopf pauses an operator started with a peering name until the peering CRD exists, and
coordinates replicas only through an existing peering object (it never creates one).
"""

from __future__ import annotations

from typing import Any

PEERING_GROUP = "kopf.dev"


def _peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{PEERING_GROUP}"},
        "spec": {
            "group": PEERING_GROUP,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def peering_crds() -> list[dict[str, Any]]:
    """ClusterKopfPeering (cluster-wide operators) and KopfPeering (namespaced ones)."""
    return [
        _peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
        _peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
    ]


def peering_objects(name: str, watch_namespaces: list[str]) -> list[dict[str, Any]]:
    """The peering object(s) the replicas meet in: one cluster-wide, or one per namespace."""
    if not watch_namespaces:
        return [
            {
                "apiVersion": f"{PEERING_GROUP}/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": name},
            }
        ]
    return [
        {
            "apiVersion": f"{PEERING_GROUP}/v1",
            "kind": "KopfPeering",
            "metadata": {"name": name, "namespace": ns},
        }
        for ns in watch_namespaces
    ]
