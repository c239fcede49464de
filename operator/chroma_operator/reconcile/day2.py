"""Day-2 operations in one reconcile pass: hibernation, fencing, rolling upgrade, resize.

Each reads the annotations and what runs now, and returns what to build with (the
`Operations` the builders take), what to publish in status and which Events to post.
Pausing is simpler (nothing is built at all) and lives in the handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chroma_operator.api import annotations as ann
from chroma_operator.api import conditions as cond
from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import Operations, naming
from chroma_operator.build.images import chroma_image
from chroma_operator.build.meta import Owner
from chroma_operator.build.shards import shard_selector
from chroma_operator.reconcile import resize, upgrade
from chroma_operator.reconcile import status as st
from chroma_operator.reconcile.kinds import POD
from chroma_operator.reconcile.kube import Kube

Obj = dict[str, Any]
HIBERNATED_MESSAGE = "hibernated: shards and encoder scaled to zero; every volume is kept"


@dataclass
class Day2:
    ops: Operations
    operation: st.Operation | None
    status: Obj = field(default_factory=dict)
    events: list[cond.Event] = field(default_factory=list)


def operation_of(
    annotations: Mapping[str, str], previous: Mapping[str, Any]
) -> st.Operation | None:
    """The operation that names the phase now (for status refreshes between reconciles)."""
    if ann.hibernated(annotations):
        return st.Operation("Hibernated", "Hibernated", HIBERNATED_MESSAGE, ready=False)
    up = previous.get("upgrade") or {}
    if up.get("state") == "Rolling":
        return st.Operation("Upgrading", "Upgrading", str(up.get("message", "")))
    return None


def fence_status(
    annotations: Mapping[str, str], spec: ChromaClusterSpec, previous: Mapping[str, Any]
) -> tuple[list[str], Obj, list[cond.Event]]:
    """The replicas to fence, status.fence, Events. An invalid annotation changes nothing:
    the last valid fence stays in force and a Warning names the problem."""
    before = dict(previous.get("fence") or {})
    applied = list(before.get("replicas") or [])
    fence = ann.parse_fence(annotations, spec.shards, spec.replicas)
    if not fence.valid:
        problem = "; ".join(fence.problems) + "; the fence was not changed"
        events = (
            []
            if before.get("problem") == problem
            else [cond.Event("Warning", "InvalidFence", problem)]
        )
        return applied, {"replicas": applied, "problem": problem}, events
    events = []
    added = [r for r in fence.replicas if r not in applied]
    removed = [r for r in applied if r not in fence.replicas]
    if added:
        events.append(
            cond.Event(
                "Normal",
                "Fenced",
                f"{', '.join(added)} out of reads and writes (writes become hints); "
                "the pods stay up for inspection",
            )
        )
    if removed:
        events.append(
            cond.Event(
                "Normal",
                "Unfenced",
                f"{', '.join(removed)} back in service; the routers replay their hints",
            )
        )
    # No None values: the published status is compared with this, key for key.
    return fence.replicas, {"replicas": fence.replicas}, events


async def _failure(kube: Kube, owner: Owner, previous: Mapping[str, Any], image: str) -> str | None:
    up = previous.get("upgrade") or {}
    if up.get("state") != "Rolling" or up.get("current") is None or up.get("to") != image:
        return None
    pods = await kube.list(
        POD.api_version, POD.kind, owner.namespace, shard_selector(owner, int(up["current"]))
    )
    return upgrade.pod_failure(pods, image)


async def prepare(
    kube: Kube,
    owner: Owner,
    spec: ChromaClusterSpec,
    annotations: Mapping[str, str],
    previous: Mapping[str, Any],
    live: Mapping[tuple[str, str], Obj],
    now: str,
) -> Day2:
    """Decide this pass's day-2 state; the only writes are a resize's (claims, orphaning
    delete), which must happen before the StatefulSets are applied."""
    hibernated = ann.hibernated(annotations)
    fenced, fence, events = fence_status(annotations, spec, previous)
    shards = {i: live.get(("StatefulSet", naming.shard(owner.name, i))) for i in range(spec.shards)}
    desired = chroma_image(spec)
    status: Obj = {"fence": fence}
    images: dict[int, str] = {}
    if not hibernated:  # with no pods running there is nothing to roll: every shard takes it
        failure = await _failure(kube, owner, previous, desired)
        step = upgrade.plan(
            desired, spec.shards, spec.replicas, shards, previous.get("upgrade"), failure, now
        )
        images = step.images
        status["upgrade"] = step.status
        events += step.events
    sized = await resize.resize(
        kube, owner, spec.storage.size, spec.storage.storage_class_name, shards
    )
    said = (previous.get("storage") or {}).get("size") == spec.storage.size and bool(
        (previous.get("storage") or {}).get("kept")
    )
    events += [e for e in sized.events if e.type != "Warning" or not said]
    status["storage"] = {"size": spec.storage.size}
    if sized.keep:
        status["storage"]["kept"] = {str(i): s for i, s in sorted(sized.keep.items())}
    ops = Operations(
        fenced=tuple(fenced),
        hibernated=hibernated,
        images=images,
        storage_sizes=sized.keep,
    )
    operation = operation_of(annotations, status)
    return Day2(ops=ops, operation=operation, status=status, events=events)
