"""The steps of one reconcile pass, each a pure function of what was read.

`cluster.reconcile` runs them in order with the few calls that touch the API server in
between (read the StatefulSets, day-2 preparation, apply children, start a restore,
publish), so every decision here is unit-tested without an API server:

admit             paused, invalid, or a refused shard change end the pass; else a Plan
tuning_roll       where an applied efSearch's rolling restart stands
desired_children  every object to apply, from the plan, the roll and the day-2 state
observed_status   phase, shards, conditions and Events from the applied children
with_restore      a cluster bootstrapped from a backup is Ready only once restored
child_conditions  Monitoring and Autoscaling: whether optional CRDs were there
with_tuning       restart tokens, indexReload moving to verifying, its Event
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chroma_operator.api import annotations as ann
from chroma_operator.api import conditions as cond
from chroma_operator.api.models import ChromaCluster, ChromaClusterSpec
from chroma_operator.api.tuning_state import (
    IndexReload,
    TuningStatus,
    index_reload,
    reloaded,
    tuning_of,
)
from chroma_operator.api.validate import InvalidResource
from chroma_operator.build import build_all
from chroma_operator.build.meta import Manifest, Owner
from chroma_operator.build.monitoring import required_crd as monitoring_crd
from chroma_operator.reconcile import backups, replica_states, rollout
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile import status as st
from chroma_operator.reconcile.children import autoscaling_condition, skipped_message
from chroma_operator.reconcile.context import Obj, annotations_of, parse_body
from chroma_operator.reconcile.day2 import Day2
from chroma_operator.reconcile.job_records import shard_restarts, tuned_hnsw
from chroma_operator.reconcile.sync import SyncResult
from chroma_operator.reshard.plan import ReshardRefused

RESHARDING = rs.REFUSED


@dataclass(frozen=True)
class Stop:
    """A pass that ends before any child is touched: what to publish, and why."""

    outcome: str
    """paused, invalid or refused (the reconcile metric's label)."""
    status: Obj
    events: list[cond.Event]
    note: str = ""
    """What the operator logs (nothing for a refused change: its Event says it)."""


@dataclass(frozen=True)
class Plan:
    """What this pass builds for."""

    owner: Owner
    cluster: ChromaCluster
    """The resource, its spec narrowed to the StatefulSets the layout keeps (a shrink
    keeps the old shards until the move is cleaned up)."""
    target: ChromaClusterSpec
    """The spec as asked (what a move heads for)."""
    layout: rs.Layout
    generation: int | None

    @property
    def spec(self) -> ChromaClusterSpec:
        return self.cluster.spec


def admit(body: Mapping[str, Any], previous: Mapping[str, Any], now: str) -> Stop | Plan:
    """Step 1: a paused, invalid or refused resource stops here with its status."""
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    if ann.paused(annotations_of(body)):
        message = (
            f"reconciliation paused ({ann.RECONCILE}: {ann.PAUSED_VALUE}): the operator "
            "changes nothing until the annotation is removed"
        )
        status, events = st.paused_status(
            previous, message, previous.get("observedGeneration"), now
        )
        return Stop("paused", status, events, f"Reconciliation paused by {ann.RECONCILE}")
    parsed = parse_body(body)
    if isinstance(parsed, InvalidResource):
        status, events = st.failed_status(previous, parsed.problems, generation, now)
        return Stop("invalid", status, events, f"Invalid ChromaCluster: {parsed}")
    spec = parsed.spec
    try:
        lay = rs.layout(previous, spec.shards)
    except ReshardRefused as exc:
        message = f"spec.shards: {exc}; nothing was changed"
        status, events = st.refused_status(previous, RESHARDING, message, generation, now)
        return Stop("refused", status, events)
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid"))
    if lay.statefulsets != spec.shards:
        narrowed = spec.model_copy(update={"shards": lay.statefulsets})
        parsed = parsed.model_copy(update={"spec": narrowed})
    return Plan(owner, parsed, spec, lay, generation)


@dataclass(frozen=True)
class TuningRoll:
    """An applied tuning result's restart, one shard at a time."""

    tuning: TuningStatus | None
    tuned: dict[str, int] | None
    """HNSW defaults for collections created from now on (spec terms)."""
    restarts: dict[int, str]
    rolling: rollout.State = "idle"
    verify: tuple[str, str] | None = None
    """(applied at, collection) while the verify Job should exist."""


def tuning_roll(
    spec: ChromaClusterSpec,
    previous: Mapping[str, Any],
    live: Mapping[tuple[str, str], Obj],
    hibernated: bool,
    cluster: str,
) -> TuningRoll:
    """Step 2: restart the next shard once the last one is rolled; verify when all are."""
    tuning = tuning_of(previous)
    applied = tuning.applied if tuning is not None else None
    restarts = shard_restarts(previous)
    rolling: rollout.State = "idle"
    if index_reload(applied) is IndexReload.PENDING and not hibernated:
        restarts, rolling = rollout.advance(
            applied, restarts, spec.shards, spec.replicas, live, cluster
        )
    verify = None
    if applied is not None and (
        rolling == "done" or index_reload(applied) is IndexReload.VERIFYING
    ):
        verify = (str(applied.at), str(applied.collection))
    return TuningRoll(tuning, tuned_hnsw(spec.tuning.apply, tuning), restarts, rolling, verify)


def desired_children(
    plan: Plan,
    roll: TuningRoll,
    d2: Day2,
    previous: Mapping[str, Any],
    operator_peer: dict[str, Any] | None = None,
) -> list[Manifest]:
    """Step 3: every object the cluster should own now."""
    spec, lay = plan.spec, plan.layout
    bootstrap = spec.bootstrap.from_backup if spec.bootstrap else None
    return build_all(
        plan.cluster,
        plan.owner,
        roll.tuned,
        roll.restarts,
        roll.verify,
        replica_states.states_of(previous),
        placement=lay.placement if "resharding" in previous else None,
        listed_shards=lay.listed if lay.listed != spec.shards else None,
        ops=d2.ops,
        restore=bootstrap is not None and backups.restore_phase(previous) == "Running",
        operator_peer=operator_peer,
    )


def observed_status(
    plan: Plan, previous: Mapping[str, Any], result: SyncResult, d2: Day2, now: str
) -> tuple[Obj, list[cond.Event]]:
    """Step 4: what the applied children say, with the day-2 state on top."""
    obs = st.observe(plan.owner, plan.spec, result.live, d2.ops.hibernated)
    obs.errors.extend(f"{k} {n}: {m}" for (k, n), m in result.failed)
    status, events = st.next_status(
        previous, plan.owner, plan.spec, obs, plan.generation, now, d2.operation
    )
    status.update(d2.status)
    return status, d2.events + events


def restore_due(spec: ChromaClusterSpec, previous: Mapping[str, Any], status: Obj) -> bool:
    """A bootstrap restore starts once every shard is ready, once."""
    wanted = spec.bootstrap is not None and spec.bootstrap.from_backup is not None
    return wanted and not previous.get("restore") and status.get("phase") == "Ready"


def with_restore(
    status: Obj,
    events: Sequence[cond.Event],
    restore: Mapping[str, Any],
    now: str,
    generation: int | None,
) -> tuple[Obj, list[cond.Event]]:
    """Step 5: not Ready (and no Ready Event) until the restore is verified."""
    status = backups.gate_ready(dict(status), restore, now, generation)
    done = restore.get("phase") == "Completed"
    return status, [e for e in events if e.reason != "Ready" or done]


def child_conditions(
    status: Obj,
    desired: list[Manifest],
    skipped: list[Manifest],
    now: str,
    generation: int | None,
) -> Obj:
    """Step 6: Monitoring (Prometheus Operator CRDs) and Autoscaling (KEDA) conditions."""
    conditions = status["conditions"]
    monitoring = [m for m in desired + skipped if monitoring_crd(m)]
    missing = [m for m in skipped if monitoring_crd(m)]
    if monitoring:
        conditions = cond.set_condition(
            conditions,
            "Monitoring",
            not missing,
            "PrometheusOperatorMissing" if missing else "Created",
            skipped_message(missing) if missing else "monitoring objects created",
            now,
            generation,
        )
    conditions = autoscaling_condition(conditions, desired, skipped, now, generation)
    return {**status, "conditions": conditions}


def with_tuning(
    status: Obj, events: Sequence[cond.Event], roll: TuningRoll
) -> tuple[Obj, list[cond.Event]]:
    """Step 7: restart tokens; once every shard restarted, indexReload becomes verifying."""
    status, events = dict(status), list(events)
    if roll.restarts:
        status["shardRestarts"] = {str(i): t for i, t in sorted(roll.restarts.items())}
    applied = roll.tuning.applied if roll.tuning is not None else None
    if roll.rolling == "done" and roll.tuning is not None and applied is not None:
        status["tuning"] = reloaded(roll.tuning).wire()
        events.append(
            cond.Event(
                "Normal",
                "IndexReloaded",
                f"every shard restarted with efSearch {applied.ef_search}; "
                "measuring what clients get now",
            )
        )
    return status, events
