"""Resharding under the operator: the layout a reconcile builds and the engine's runtime.

`status.resharding.placement` is the authority for the placement; the topology ConfigMap
follows it. A change of `spec.shards` creates the new shards' StatefulSets first; once
they are ready the engine (in a thread) walks the phases, publishing each placement
through status + a reconcile, and reporting progress, a `Resharding` condition and an
Event per phase. A restarted operator finds the placement in status and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from chroma_operator.api import conditions as cond
from chroma_operator.api.models import KIND
from chroma_operator.build import naming
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile.kinds import CHROMA_CLUSTER
from chroma_operator.reconcile.kube import Kube
from chroma_operator.reshard.engine import Engine
from chroma_operator.reshard.plan import begin, check_target, moving, shard_span
from chroma_operator.reshard.progress import Progress
from chroma_operator.topology import TOPOLOGY_KEY, PlacementTopology, ShardTopology, Topology

log = logging.getLogger("chroma_operator.reshard")

CONDITION = "Resharding"
REFUSED = "ReshardingRefused"
Obj = dict[str, Any]
RouterEpochs = Callable[[Owner, int], Awaitable[list[int | None]]]
ShardUrl = Callable[[str], str]


@dataclass(frozen=True)
class Layout:
    """What a reconcile builds: the placement in force, StatefulSets, shards listed."""

    placement: PlacementTopology
    statefulsets: int
    listed: int
    target: int

    @property
    def wanted(self) -> bool:
        """Whether the engine has work: a move runs or `spec.shards` asks for one."""
        return moving(self.placement) or self.target != self.placement.shards


def current_placement(status: Mapping[str, Any], spec_shards: int) -> PlacementTopology:
    saved = (status.get("resharding") or {}).get("placement")
    if saved:
        return PlacementTopology.model_validate(saved)
    return PlacementTopology(shards=int(status.get("shardCount") or spec_shards))


def layout(status: Mapping[str, Any], target: int) -> Layout:
    """The layout for `target` shards; raises `ReshardRefused` before anything changes."""
    cur = current_placement(status, target)
    if target != cur.shards or moving(cur):
        check_target(cur, target)
    return Layout(cur, max(shard_span(cur), target), shard_span(cur), target)


def router_base(pod: Obj, namespace: str, port: int, tls: bool) -> str | None:
    """Where the operator reaches one router sidecar: its pod IP over HTTP; over HTTPS its
    pod DNS name, which is what the certificate names. None before the pod has one."""
    if not tls:
        ip = (pod.get("status") or {}).get("podIP")
        return f"http://{ip}:{port}" if ip else None
    spec = pod.get("spec") or {}
    host, subdomain = spec.get("hostname"), spec.get("subdomain")
    if not host or not subdomain:
        return None
    return f"https://{host}.{subdomain}.{namespace}.svc.{naming.CLUSTER_DOMAIN}:{port}"


async def kubernetes_router_epochs(
    kube: Kube, client: httpx.AsyncClient, owner: Owner, port: int, *, tls: bool
) -> list[int | None]:
    """Each router sidecar's applied epoch; a pod without an answer is None.

    `GET /internal/placement` needs no token (the operator holds none); `client` trusts
    the cluster's CA when it has one of its own (`router_http`)."""
    labels = {"app.kubernetes.io/instance": owner.name, "app.kubernetes.io/component": "shard"}
    pods = await kube.list("v1", "Pod", owner.namespace, labels)
    out: list[int | None] = []
    for pod in pods:
        base = router_base(pod, owner.namespace, port, tls)
        try:
            if base is None:
                raise ValueError("no address yet")
            r = await client.get(base + "/internal/placement", timeout=2.0)
            out.append(int(r.json()["epoch"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            out.append(None)
    return out


def resharding_status(progress: Progress, placement: PlacementTopology) -> Obj:
    return {**progress.as_status(), "placement": placement.model_dump(mode="json")}


class KubeRuntime:
    """The engine's runtime against the API server; called from the engine's thread."""

    def __init__(
        self,
        kube: Kube,
        loop: asyncio.AbstractEventLoop,
        owner: Owner,
        lock: asyncio.Lock,
        reconcile: Callable[[], Awaitable[None]],
        router_epochs: Callable[[], Awaitable[list[int | None]]],
        shard_url: ShardUrl,
        report_every: float = 1.0,
    ) -> None:
        self.kube, self.loop, self.owner, self.lock = kube, loop, owner, lock
        self._reconcile, self._epochs, self.shard_url = reconcile, router_epochs, shard_url
        self.report_every = report_every
        self._last = 0.0
        self._last_paused: str | None = None

    def _run(self, coro: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout=120)

    def topology(self) -> Topology:
        cm = self._run(
            self.kube.get(
                "v1", "ConfigMap", self.owner.namespace, naming.config_map(self.owner.name)
            )
        )
        t = Topology.from_json(cm["data"][TOPOLOGY_KEY])
        shards = [
            ShardTopology(index=s.index, endpoints=[self.shard_url(e) for e in s.endpoints])
            for s in t.shards
        ]
        return t.model_copy(update={"shards": shards})

    def publish(self, topology: Topology) -> None:
        placement = topology.current_placement()
        self._run(self._patch({"resharding": {"placement": placement.model_dump(mode="json")}}))
        self._run(self._reconcile())

    def router_epochs(self) -> list[int | None]:
        return list(self._run(self._epochs()))

    def report(self, progress: Progress, event: str | None = None) -> None:
        now = time.monotonic()
        # A pause that ends is reported at once: the condition must not say Paused after.
        lifted = progress.paused != self._last_paused
        if event is None and not lifted and now - self._last < self.report_every:
            return
        self._last, self._last_paused = now, progress.paused
        self._run(self._report(progress, event))

    async def _patch(self, status: Obj) -> None:
        await self.kube.patch_status(
            CHROMA_CLUSTER.api_version, KIND, self.owner.namespace, self.owner.name, status
        )

    async def _report(self, progress: Progress, event: str | None) -> None:
        async with self.lock:
            body = await self.kube.get(
                CHROMA_CLUSTER.api_version, KIND, self.owner.namespace, self.owner.name
            )
            if body is None:
                return
            previous = body.get("status") or {}
            saved = (previous.get("resharding") or {}).get("placement")
            placement = PlacementTopology.model_validate(saved) if saved else None
            active = placement is not None and moving(placement)
            new: Obj = {**progress.as_status()}
            if placement is not None:
                new["placement"] = placement.model_dump(mode="json")
                new["phase"] = placement.phase
                new["epoch"] = placement.epoch
            message = event or progress.paused or f"phase {new['phase']}"
            reason = "Paused" if progress.paused else ("Moving" if active else "Done")
            conditions = cond.set_condition(
                previous.get("conditions"),
                CONDITION,
                active,
                reason,
                message,
                st_now(),
                (body.get("metadata") or {}).get("generation"),
            )
            await self._patch({"resharding": new, "conditions": conditions})
            if event:
                kind = "Warning" if progress.paused else "Normal"
                await self.kube.post_event(body, kind, "Resharding", event)


def st_now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Move:
    """One running engine: its thread's stop flag and the asyncio task awaiting it."""

    stop: threading.Event
    task: asyncio.Task[None]


async def drive(
    runtime: KubeRuntime,
    target: int,
    new_shards: list[ShardTopology],
    stop: threading.Event,
    progress: Progress | None,
    shards_ready: Callable[[], Awaitable[bool]],
) -> None:
    """Wait for the new shards to be ready, then run the engine to the end of the move."""
    engine = Engine(runtime, stop=stop, progress=progress)
    placement = await asyncio.to_thread(lambda: runtime.topology().current_placement())
    if not moving(placement):
        while not await shards_ready():
            if stop.is_set():
                return
            await asyncio.sleep(0.5)
        await asyncio.to_thread(engine.start, target, new_shards)
    await asyncio.to_thread(engine.run)


def start_placement(status: Mapping[str, Any], target: int) -> PlacementTopology:
    return begin(current_placement(status, target), target)


def stop_all(moves: Mapping[tuple[str, str], Move]) -> None:
    for move in moves.values():
        move.stop.set()
        with contextlib.suppress(Exception):
            move.task.cancel()
