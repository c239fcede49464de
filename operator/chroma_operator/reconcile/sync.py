"""Make the live children equal the desired ones: create, apply drifted, delete stale.

Drift is judged by the spec-hash annotation the builders stamp, so a second pass with
nothing changed reads but never writes. Objects are handled concurrently (bounded), and
one object's failure is reported, not fatal to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chroma_operator.build.meta import Manifest, Owner
from chroma_operator.build.naming import SPEC_HASH_ANNOTATION
from chroma_operator.reconcile.kinds import CHILD_KINDS, Kind
from chroma_operator.reconcile.kube import ApiError, Kube

Obj = dict[str, Any]
Key = tuple[str, str]
T = TypeVar("T")

CONCURRENCY = 16
SWEPT_KINDS: tuple[Kind, ...] = tuple(k for k in CHILD_KINDS if k.kind != "Job")
"""Kinds whose stale objects are deleted; tuning Jobs clean themselves up (TTL)."""


@dataclass
class SyncResult:
    created: list[Key] = field(default_factory=list)
    patched: list[Key] = field(default_factory=list)
    deleted: list[Key] = field(default_factory=list)
    failed: list[tuple[Key, str]] = field(default_factory=list)
    live: dict[Key, Obj] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return len(self.created) + len(self.patched) + len(self.deleted)


def key_of(obj: Obj) -> Key:
    return obj["kind"], obj["metadata"]["name"]


def spec_hash(obj: Obj | None) -> str | None:
    if obj is None:
        return None
    value = obj.get("metadata", {}).get("annotations", {}).get(SPEC_HASH_ANNOTATION)
    return str(value) if value is not None else None


async def _bounded(items: Iterable[T], fn: Callable[[T], Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(item: T) -> None:
        async with gate:
            await fn(item)

    await asyncio.gather(*(run(i) for i in items))


def _owned_by(obj: Obj, owner: Owner) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences", [])
    return any(r.get("uid") == owner.uid and r.get("kind") == "ChromaCluster" for r in refs)


async def sync_children(kube: Kube, owner: Owner, desired: list[Manifest]) -> SyncResult:
    result = SyncResult()

    async def converge(want: Manifest) -> None:
        key = key_of(want)
        meta = want["metadata"]
        try:
            live = await kube.get(want["apiVersion"], want["kind"], meta["namespace"], meta["name"])
            if live is None:
                live = await kube.create(want)
                result.created.append(key)
            elif spec_hash(live) != spec_hash(want):
                live = await kube.apply(want)
                result.patched.append(key)
            result.live[key] = live
        except ApiError as exc:
            result.failed.append((key, exc.message))

    await _bounded(desired, converge)
    await _sweep(kube, owner, {key_of(m) for m in desired}, result)
    return result


async def _sweep(kube: Kube, owner: Owner, wanted: set[Key], result: SyncResult) -> None:
    labels = {
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/managed-by": "chroma-operator",
    }

    async def sweep_kind(kind: Kind) -> None:
        try:
            items = await kube.list(kind.api_version, kind.kind, owner.namespace, labels)
        except ApiError as exc:
            if exc.status in (403, 404):  # kind not installed (e.g. no Prometheus Operator)
                return
            raise
        for item in items:
            key = (kind.kind, item["metadata"]["name"])
            if key in wanted or not _owned_by(item, owner):
                continue
            await kube.delete(kind.api_version, kind.kind, owner.namespace, key[1])
            result.deleted.append(key)

    await _bounded(SWEPT_KINDS, sweep_kind)


async def read_children(kube: Kube, desired: list[Manifest], kinds: set[str]) -> dict[Key, Obj]:
    """Fetch the live objects of the given kinds (for status), without writing anything."""
    live: dict[Key, Obj] = {}

    async def fetch(want: Manifest) -> None:
        meta = want["metadata"]
        obj = await kube.get(want["apiVersion"], want["kind"], meta["namespace"], meta["name"])
        if obj is not None:
            live[key_of(want)] = obj

    await _bounded([m for m in desired if m["kind"] in kinds], fetch)
    return live
