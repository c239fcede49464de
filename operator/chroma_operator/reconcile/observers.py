"""Timed observation of running clusters: SLO burn rates and replica states from the
routers, published into status (and Events) without touching children."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chroma_operator.api import conditions as cond
from chroma_operator.api.validate import InvalidResource
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile import (
    replica_states,
    router_http,
    slo_loop,
)
from chroma_operator.reconcile.context import (
    Context,
    Logger,
    fetch_cluster,
    parse_body,
    post_events,
    publish,
)

Reconcile = Callable[[Context, str, str, Logger], Awaitable[None]]


REPLICAS_RETRY_SECONDS = 30.0


async def evaluate_slo(ctx: Context, namespace: str, name: str, now: float) -> None:
    """Scrape this cluster's routers when its interval is due; publish SLOMet and Events."""
    key = (namespace, name)
    if not slo_loop.due(ctx.slo, key, now):
        return
    body = await fetch_cluster(ctx, namespace, name)
    if body is None:
        ctx.slo.forget(namespace, name)
        return
    parsed = parse_body(body)
    if isinstance(parsed, InvalidResource) or not parsed.spec.slo.objectives:
        return
    owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
    labels = dict(body.get("metadata", {}).get("labels") or {})
    previous = dict(body.get("status") or {})
    client = await router_http.client_for(ctx.kube, ctx.slo.routers, namespace, parsed.spec)
    update = await slo_loop.evaluate(ctx.slo, owner, parsed.spec, previous, labels, now, client)
    slo_loop.mark_done(ctx.slo, key, parsed.spec.slo.evaluation_interval_seconds, now)
    async with ctx.lock(namespace, name):
        fresh = await fetch_cluster(ctx, namespace, name)
        if fresh is None:
            return
        current = dict(fresh.get("status") or {})
        conditions = cond.upsert(current.get("conditions"), update.condition)
        await publish(ctx, fresh, current, {"slo": update.status, "conditions": conditions})
    await post_events(ctx, fresh, update.events)  # not in a kopf handler: post them ourselves


async def collect_replica_states(
    ctx: Context, namespace: str, name: str, now: float, logger: Logger, reconcile: Reconcile
) -> None:
    """Every SLO interval: the routers' replica states into status.shards[].replicaStates,
    Events for changes, and a reconcile so the topology ConfigMap carries them."""
    key = (namespace, name)
    if ctx.replicas_due.get(key, 0.0) > now:
        return
    body = await fetch_cluster(ctx, namespace, name)
    if body is None:
        ctx.replicas_due.pop(key, None)
        return
    parsed = parse_body(body)
    if isinstance(parsed, InvalidResource):
        ctx.replicas_due[key] = now + REPLICAS_RETRY_SECONDS
        return
    ctx.replicas_due[key] = now + parsed.spec.slo.evaluation_interval_seconds
    if parsed.spec.replicas < 2:
        return
    owner = Owner(name=name, namespace=namespace, uid=body["metadata"].get("uid"))
    before = replica_states.states_of(body.get("status") or {})
    client = await router_http.client_for(ctx.kube, ctx.slo.routers, namespace, parsed.spec)
    views = await replica_states.collect(client, ctx.slo.metrics_urls(owner, parsed.spec), before)
    if views is None:
        return
    async with ctx.lock(namespace, name):
        fresh = await fetch_cluster(ctx, namespace, name)
        if fresh is None or not (fresh.get("status") or {}).get("shards"):
            return
        current = dict(fresh.get("status") or {})
        shards = replica_states.with_replicas(current["shards"], views)
        await publish(ctx, fresh, current, {"shards": shards})
    after = {n: v.state for n, v in views.items()}
    await post_events(ctx, fresh, replica_states.transitions(before, after))
    if after != before:
        await reconcile(ctx, namespace, name, logger)
