"""Growing shard storage: expand each claim, then recreate the StatefulSet around its pods.

A StatefulSet's volumeClaimTemplates are immutable, so the standard way round is: patch
every PersistentVolumeClaim to the new size (when its StorageClass has
allowVolumeExpansion), delete the StatefulSet with propagationPolicy Orphan (its pods
keep running and serving) and create it again with the new template; the new StatefulSet
adopts the pods. Shrinking is refused by the operator (a volume cannot shrink), with a
Warning that says so: CEL quantity comparison is not available on every API server the
CRD supports, so the CRD does not check it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from chroma_operator.api import conditions as cond
from chroma_operator.build import naming
from chroma_operator.build.meta import Owner
from chroma_operator.build.shards import shard_selector
from chroma_operator.reconcile.kinds import PVC, STORAGE_CLASS
from chroma_operator.reconcile.kube import ApiError, Kube

Obj = dict[str, Any]
Change = Literal["same", "grow", "shrink"]
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity in bytes (the official client's parser: every suffix form)."""
    from kubernetes.utils.quantity import parse_quantity as parse

    return Decimal(parse(text))  # type: ignore[no-untyped-call]


def claim_size(sts: Mapping[str, Any] | None) -> str | None:
    """The storage request of the `data` claim template a live StatefulSet was built with."""
    if sts is None:
        return None
    for claim in sts.get("spec", {}).get("volumeClaimTemplates", []):
        if claim.get("metadata", {}).get("name") == "data":
            size = claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
            return str(size) if size is not None else None
    return None


def change(desired: str, live: str) -> Change:
    want, have = parse_quantity(desired), parse_quantity(live)
    return "same" if want == have else ("grow" if want > have else "shrink")


@dataclass
class ResizeResult:
    """Claim sizes to keep building with (shards not resized), and Events to emit."""

    keep: dict[int, str] = field(default_factory=dict)
    events: list[cond.Event] = field(default_factory=list)
    recreated: list[int] = field(default_factory=list)


async def expandable(kube: Kube, class_name: str | None) -> tuple[bool, str]:
    """Whether claims of this StorageClass (the default one when None) can grow, and why not."""
    try:
        if class_name is None:
            classes = await kube.list_cluster(STORAGE_CLASS.api_version, STORAGE_CLASS.kind)
            default = [
                c
                for c in classes
                if (c.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
                == "true"
            ]
            if not default:
                return False, "no StorageClass is named and the cluster has no default one"
            sc: Obj | None = default[0]
        else:
            sc = await kube.get_cluster(STORAGE_CLASS.api_version, STORAGE_CLASS.kind, class_name)
    except ApiError as exc:
        return False, f"cannot read the StorageClass ({exc.status} {exc.reason}: {exc.message})"
    if sc is None:
        return False, f"StorageClass {class_name} does not exist"
    name = sc["metadata"]["name"]
    if not sc.get("allowVolumeExpansion"):
        return False, f"StorageClass {name} does not set allowVolumeExpansion: true"
    return True, ""


async def resize(
    kube: Kube,
    owner: Owner,
    desired: str,
    class_name: str | None,
    live: Mapping[int, Obj | None],
) -> ResizeResult:
    """Grow what can grow; report what cannot. The caller builds with `keep` and then
    creates the StatefulSets that were deleted (`recreated`)."""
    out = ResizeResult()
    for index, sts in sorted(live.items()):
        size = claim_size(sts)
        if size is None:
            continue
        how = change(desired, size)
        if how == "same":
            continue
        name = naming.shard(owner.name, index)
        if how == "shrink":
            out.keep[index] = size
            out.events.append(
                cond.Event(
                    "Warning",
                    "StorageShrinkRefused",
                    f"spec.storage.size {desired} is smaller than {size} on {name}: volumes "
                    f"cannot shrink; {name} keeps {size} (set the size back to {size} or more)",
                )
            )
            continue
        ok, why = await expandable(kube, class_name)
        if not ok:
            out.keep[index] = size
            out.events.append(
                cond.Event(
                    "Warning",
                    "StorageResizeNotSupported",
                    f"cannot grow {name} from {size} to {desired}: {why}; nothing was changed",
                )
            )
            continue
        claims = await kube.list(
            PVC.api_version, PVC.kind, owner.namespace, shard_selector(owner, index)
        )
        for claim in claims:
            await kube.merge_patch(
                PVC.api_version,
                PVC.kind,
                owner.namespace,
                claim["metadata"]["name"],
                {"spec": {"resources": {"requests": {"storage": desired}}}},
            )
        await kube.delete("apps/v1", "StatefulSet", owner.namespace, name, propagation="Orphan")
        await _gone(kube, owner.namespace, name)
        out.recreated.append(index)
        out.events.append(
            cond.Event(
                "Normal",
                "StorageResized",
                f"{name}: {len(claims)} claim(s) grown from {size} to {desired}; StatefulSet "
                "recreated around its running pods",
            )
        )
    return out


async def _gone(kube: Kube, namespace: str, name: str, timeout: float = 30.0) -> None:
    """Wait until the orphaning delete has finished (the garbage collector removes the
    orphan finalizer first), so the create that follows does not meet the old object."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await kube.get("apps/v1", "StatefulSet", namespace, name) is not None:
        if loop.time() > deadline:
            raise ApiError(409, f"StatefulSet {name} is still being deleted", "Conflict")
        await asyncio.sleep(0.2)
