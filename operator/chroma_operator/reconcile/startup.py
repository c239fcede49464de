"""Checks before the operator starts, so it never waits silently.

kopf started with a peering name waits, with only a debug line, until kopf's peering CRD
exists; a user sees an operator that does nothing. This says why, and how to fix it.
"""

from __future__ import annotations

from chroma_operator.install.peering import PEERING_GROUP
from chroma_operator.reconcile.kube import ApiError, Kube


def peering_plural(clusterwide: bool) -> str:
    return "clusterkopfpeerings" if clusterwide else "kopfpeerings"


def peering_warning(clusterwide: bool) -> str:
    crd = f"{peering_plural(clusterwide)}.{PEERING_GROUP}"
    return (
        f"the peering CRD {crd} is not installed: the operator waits for it and reconciles "
        "nothing until it exists. Install the CRDs (`chroma-operator install generate | "
        "kubectl apply -f -`, or the Helm chart), or run a single replica with --standalone."
    )


async def missing_peering(kube: Kube, clusterwide: bool) -> str | None:
    """The warning to log when the peering CRD is absent, else None."""
    try:
        served = await kube.has_api(f"{PEERING_GROUP}/v1", peering_plural(clusterwide))
    except ApiError:
        return None  # cannot tell (e.g. no discovery rights): let kopf decide
    return None if served else peering_warning(clusterwide)
