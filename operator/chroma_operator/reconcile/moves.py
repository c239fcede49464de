"""Start the resharding engine for a cluster (one move at a time) under the operator."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from chroma_operator.build.config import kubernetes_topology
from chroma_operator.build.meta import Owner
from chroma_operator.build.naming import shard as shard_name
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile import router_http
from chroma_operator.reconcile.context import (
    Context,
    Logger,
)
from chroma_operator.reshard.progress import Progress
from chroma_operator.topology import ShardTopology

Reconcile = Callable[[Context, str, str, Logger], Awaitable[None]]


def start_move(
    ctx: Context,
    owner: Owner,
    target: int,
    previous: Mapping[str, Any],
    spec: Any,
    reconcile: Reconcile,
) -> None:
    """Run the engine for this cluster unless it already runs (one move at a time)."""
    key = (owner.namespace, owner.name)
    running = ctx.moves.get(key)
    if running is not None and not running.task.done():
        return
    loop = asyncio.get_running_loop()
    port = spec.router.port

    async def epochs() -> list[int | None]:
        if ctx.router_epochs is not None:
            return await ctx.router_epochs(owner, port)
        client = await router_http.client_for(ctx.kube, ctx.slo.routers, owner.namespace, spec)
        tls = spec.tls.secret_name is not None
        return await rs.kubernetes_router_epochs(ctx.kube, client, owner, port, tls=tls)

    async def again() -> None:
        await reconcile(ctx, owner.namespace, owner.name, logging.getLogger("chroma_operator"))

    async def shards_ready() -> bool:
        for i in range(target):
            sts = await ctx.kube.get(
                "apps/v1", "StatefulSet", owner.namespace, shard_name(owner.name, i)
            )
            ready = int(((sts or {}).get("status") or {}).get("readyReplicas") or 0)
            if ready < spec.replicas:
                return False
        return True

    runtime = rs.KubeRuntime(ctx.kube, loop, owner, ctx.lock(*key), again, epochs, ctx.shard_url)
    topo = kubernetes_topology(owner, spec.model_copy(update={"shards": max(target, 1)}))
    new_shards = [
        ShardTopology(index=s.index, endpoints=[ctx.shard_url(e) for e in s.endpoints])
        for s in topo.shards
    ]
    saved = previous.get("resharding") or {}
    progress = Progress.from_status(saved) if saved.get("fromShards") else None
    stop = threading.Event()

    async def run() -> None:
        try:
            await rs.drive(runtime, target, new_shards, stop, progress, shards_ready)
        except Exception:
            if stop.is_set():
                return  # the operator is stopping; a restart resumes from status
            logging.getLogger("chroma_operator").exception("resharding stopped; retrying")
            await asyncio.sleep(2.0)
            ctx.moves.pop(key, None)
            await again()

    ctx.moves[key] = rs.Move(stop, asyncio.create_task(run()))
