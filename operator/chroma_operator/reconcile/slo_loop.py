"""The operator's own SLO check: scrape the routers, burn rates into status and Events.

One background task for the whole operator (not a kopf timer per cluster: a timer would
put a finalizer on every ChromaCluster). It evaluates each known cluster every
`spec.slo.evaluationIntervalSeconds`, so clusters without Prometheus still get the
`SLOMet` condition and a Warning when the error budget burns too fast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build.config import kubernetes_topology
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile.router_http import RouterClients
from chroma_operator.slo.alertmanager import AlertmanagerNotifier
from chroma_operator.slo.scrape import metrics_urls, scrape_routers
from chroma_operator.slo.status import SloUpdate, slo_update
from chroma_operator.slo.window import SloEvaluator

Key = tuple[str, str]
MetricsUrls = Callable[[Owner, ChromaClusterSpec], list[str]]
TICK_SECONDS = 1.0
log = logging.getLogger(__name__)


def kubernetes_metrics_urls(owner: Owner, spec: ChromaClusterSpec) -> list[str]:
    """Every router's /metrics: the router sidecars by their pod DNS names."""
    return metrics_urls(kubernetes_topology(owner, spec))


@dataclass
class SloState:
    evaluator: SloEvaluator
    notifier: AlertmanagerNotifier | None = None
    due: float = 0.0


@dataclass
class SloWatch:
    """Which clusters to evaluate and the sliding windows kept for each."""

    metrics_urls: MetricsUrls = kubernetes_metrics_urls
    clusters: set[Key] = field(default_factory=set)
    states: dict[Key, SloState] = field(default_factory=dict)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=5.0))
    """For Alertmanager; the routers are called with `routers` (their CA may be private)."""
    routers: RouterClients = field(default_factory=RouterClients)

    def track(self, namespace: str, name: str) -> None:
        self.clusters.add((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        self.clusters.discard((namespace, name))
        self.states.pop((namespace, name), None)

    def state_for(
        self, key: Key, owner: Owner, spec: ChromaClusterSpec, labels: dict[str, str]
    ) -> SloState:
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = SloState(SloEvaluator(spec.slo.objectives))
        state.evaluator.configure(spec.slo.objectives)
        url = spec.slo.alertmanager_url
        if url and (
            state.notifier is None or not state.notifier.endpoint.startswith(url.rstrip("/"))
        ):
            state.notifier = AlertmanagerNotifier(
                url, cluster=owner.name, namespace=owner.namespace, cluster_labels=labels
            )
        elif not url:
            state.notifier = None
        return state


async def evaluate(
    watch: SloWatch,
    owner: Owner,
    spec: ChromaClusterSpec,
    previous_status: dict[str, Any],
    labels: dict[str, str],
    now: float,
    client: httpx.AsyncClient | None = None,
) -> SloUpdate:
    """One evaluation: `status.slo`, the SLOMet condition, and the Events to post.
    `client` calls the routers (default: the operator's trust store)."""
    key = (owner.namespace, owner.name)
    state = watch.state_for(key, owner, spec, labels)
    routers = client or watch.routers.default
    result = await scrape_routers(state.evaluator, routers, watch.metrics_urls(owner, spec), now)
    if result.failed:
        log.debug("SLO scrape of %s/%s skipped %s", owner.namespace, owner.name, result.failed)
    evaluation = state.evaluator.evaluate(now)
    update = slo_update(
        evaluation,
        previous_status,
        observed_generation=previous_status.get("observedGeneration"),
        failures=result.failed,
    )
    if state.notifier is not None:
        try:
            await state.notifier.notify(evaluation, watch.http)
        except httpx.HTTPError as exc:
            log.warning(
                "Alertmanager at %s did not take the alerts: %s", spec.slo.alertmanager_url, exc
            )
    return update


def due(watch: SloWatch, key: Key, now: float) -> bool:
    state = watch.states.get(key)
    return state is None or now >= state.due


def mark_done(watch: SloWatch, key: Key, interval: float, now: float) -> None:
    if key in watch.states:
        watch.states[key].due = now + interval


async def run_forever(
    watch: SloWatch, evaluate_one: Callable[[str, str, float], Any], tick: float = TICK_SECONDS
) -> None:
    """Every tick, evaluate the clusters that are due (each under its own lock)."""
    while True:
        now = time.time()
        for namespace, name in sorted(watch.clusters):
            try:
                await evaluate_one(namespace, name, now)
            except Exception:  # one cluster's failure must not stop the others
                log.exception("SLO evaluation of %s/%s failed", namespace, name)
        await asyncio.sleep(tick)
