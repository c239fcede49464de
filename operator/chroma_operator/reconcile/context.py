"""What every handler shares: the context (API client, locks, running moves) and the
small steps of reading a cluster and publishing its status and Events."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from chroma_operator.api import conditions as cond
from chroma_operator.api.models import KIND, ChromaCluster
from chroma_operator.api.validate import InvalidResource, parse_cluster
from chroma_operator.build.jobs import front_url
from chroma_operator.build.meta import Owner
from chroma_operator.build.naming import ANNOTATION_PREFIX
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile import (
    slo_loop,
)
from chroma_operator.reconcile import status as st
from chroma_operator.reconcile.kinds import CHROMA_CLUSTER
from chroma_operator.reconcile.kube import Kube

Obj = dict[str, Any]


RouterUrl = Callable[[Owner], str]


Logger = logging.Logger | logging.LoggerAdapter[Any]


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Context:
    """What every handler shares: the API client and a lock per cluster."""

    kube: Kube
    slo: slo_loop.SloWatch = field(default_factory=slo_loop.SloWatch)
    router_url: RouterUrl = front_url
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    replicas_due: dict[tuple[str, str], float] = field(default_factory=dict)
    moves: dict[tuple[str, str], rs.Move] = field(default_factory=dict)
    router_epochs: rs.RouterEpochs | None = None
    shard_url: rs.ShardUrl = str
    operator_peer: dict[str, Any] | None = None
    """The operator's own pods, for the clusters' NetworkPolicies (`network.operator_peer`)."""

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())


def resource_doc(body: Mapping[str, Any]) -> Obj:
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            # Labels go onto alerts; the tune annotation asks for a tuning Job.
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if k.startswith(ANNOTATION_PREFIX)
            },
        },
        "spec": dict(body.get("spec") or {}),
    }


def annotations_of(body: Mapping[str, Any]) -> dict[str, str]:
    return dict((body.get("metadata") or {}).get("annotations") or {})


def emit(body: Mapping[str, Any], events: Sequence[cond.Event]) -> None:
    """Post Events from inside a kopf handler (kopf batches and posts them)."""
    for ev in events:
        kopf.event(cast(Any, dict(body)), type=ev.type, reason=ev.reason, message=ev.message[:1024])


async def post_events(ctx: Context, body: Mapping[str, Any], events: Sequence[cond.Event]) -> None:
    """Post Events from outside a kopf handler (the SLO loop, background moves)."""
    for ev in events:
        await ctx.kube.post_event(dict(body), ev.type, ev.reason, ev.message)


async def publish(
    ctx: Context, body: Mapping[str, Any], previous: Mapping[str, Any], status: Obj
) -> None:
    patch = st.status_patch(previous, status)
    if patch:
        meta = body["metadata"]
        await ctx.kube.patch_status(
            CHROMA_CLUSTER.api_version, KIND, meta["namespace"], meta["name"], patch
        )


async def fetch_cluster(ctx: Context, namespace: str, name: str) -> Obj | None:
    return await ctx.kube.get(CHROMA_CLUSTER.api_version, KIND, namespace, name)


def parse_body(body: Mapping[str, Any]) -> ChromaCluster | InvalidResource:
    try:
        return parse_cluster(resource_doc(body))
    except InvalidResource as exc:
        return exc
