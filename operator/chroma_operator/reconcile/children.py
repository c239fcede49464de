"""Applying children: which desired objects can be installed, and what a sync says."""

from __future__ import annotations

from chroma_operator.api import conditions as cond
from chroma_operator.build import required_crd
from chroma_operator.build.autoscaling import required_crd as keda_crd
from chroma_operator.build.meta import Manifest
from chroma_operator.reconcile.context import (
    Obj,
)
from chroma_operator.reconcile.kube import Kube
from chroma_operator.reconcile.sync import SyncResult

STATUS_KINDS = {"StatefulSet", "Deployment"}


def summary(verb: str, keys: list[tuple[str, str]]) -> str:
    names = ", ".join(f"{kind} {name}" for kind, name in sorted(keys))
    return f"{verb} {len(keys)} object(s): {names}"


def sync_events(result: SyncResult) -> list[cond.Event]:
    events = []
    if result.created:
        events.append(cond.Event("Normal", "Created", summary("Created", result.created)))
    if result.patched:
        events.append(cond.Event("Normal", "Updated", summary("Updated", result.patched)))
    if result.deleted:
        events.append(cond.Event("Normal", "Deleted", summary("Deleted", result.deleted)))
    for (kind, name), message in result.failed:
        events.append(cond.Event("Warning", "ApplyFailed", f"{kind} {name}: {message}"))
    return events


async def installable(kube: Kube, desired: list[Manifest]) -> tuple[list[Manifest], list[Manifest]]:
    """Split off objects whose CRD (Prometheus Operator's, KEDA's) the cluster does not serve."""
    served: dict[str, bool] = {}
    for api_version, crd in {(m["apiVersion"], c) for m in desired if (c := required_crd(m))}:
        served[crd] = await kube.has_api(api_version, crd.split(".", 1)[0])
    keep = [m for m in desired if served.get(required_crd(m) or "", True)]
    skip = [m for m in desired if not served.get(required_crd(m) or "", True)]
    return keep, skip


def skipped_message(skipped: list[Manifest]) -> str:
    kinds = sorted({m["kind"] for m in skipped})
    return f"skipped {', '.join(kinds)}: the Prometheus Operator CRDs are not installed"


def autoscaling_condition(
    conditions: list[Obj],
    desired: list[Manifest],
    skipped: list[Manifest],
    now: str,
    gen: int | None,
) -> list[Obj]:
    """Say whether the encoder's ScaledObject exists or KEDA is missing (HPAs always can)."""
    keda = [m for m in desired + skipped if keda_crd(m)]
    if not keda:  # no ScaledObject wanted (any more): no condition about one
        return [c for c in conditions if c.get("type") != "Autoscaling"]
    missing = any(keda_crd(m) for m in skipped)
    message = (
        "skipped ScaledObject: KEDA's CRD (scaledobjects.keda.sh) is not installed; "
        "the encoder keeps its current replicas"
        if missing
        else "encoder ScaledObject created"
    )
    reason = "KedaMissing" if missing else "Created"
    return cond.set_condition(conditions, "Autoscaling", not missing, reason, message, now, gen)
