"""Status from what is observed: phase, conditions and the Events worth emitting. Pure.

Conditions and Events are made by `api.conditions`, the one module for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chroma_operator.api import conditions as cond
from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build import naming
from chroma_operator.build.meta import Owner

Obj = dict[str, Any]

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"


@dataclass(frozen=True)
class Operation:
    """A day-2 operation under way that names the phase (Hibernated, Upgrading)."""

    phase: str
    reason: str
    message: str
    ready: bool = True
    """Whether the Ready condition may be True meanwhile (not while hibernated)."""


@dataclass(frozen=True)
class ShardObservation:
    index: int
    replicas: int
    ready_replicas: int
    exists: bool

    @property
    def ready(self) -> bool:
        return self.exists and self.ready_replicas >= self.replicas


@dataclass(frozen=True)
class Observation:
    shards: list[ShardObservation]
    encoder_replicas: int | None = None
    encoder_ready: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ready_shards(self) -> int:
        return sum(s.ready for s in self.shards)

    @property
    def encoder_ok(self) -> bool:
        return self.encoder_replicas is None or self.encoder_ready >= self.encoder_replicas


def observe(
    owner: Owner,
    spec: ChromaClusterSpec,
    live: Mapping[tuple[str, str], Obj],
    hibernated: bool = False,
) -> Observation:
    """Read readiness from the StatefulSets' and the encoder Deployment's own status.

    A hibernated cluster expects no pods: zero ready replicas is what it should have."""
    shards = []
    for i in range(spec.shards):
        sts = live.get(("StatefulSet", naming.shard(owner.name, i)))
        st = (sts or {}).get("status", {}) or {}
        shards.append(
            ShardObservation(
                index=i,
                replicas=0 if hibernated else spec.replicas,
                ready_replicas=int(st.get("readyReplicas", 0) or 0),
                exists=sts is not None,
            )
        )
    auto = spec.encoder.autoscaling
    if not spec.encoder.enabled or (spec.encoder.replicas == 0 and not auto.enabled) or hibernated:
        return Observation(shards=shards)
    dep = live.get(("Deployment", naming.encoder(owner.name)))
    dst = (dep or {}).get("status", {}) or {}
    wanted = spec.encoder.replicas
    if auto.enabled:  # the autoscaler's choice, which the Deployment carries
        wanted = int(((dep or {}).get("spec") or {}).get("replicas") or auto.min_replicas)
    return Observation(
        shards=shards,
        encoder_replicas=wanted,
        encoder_ready=int(dst.get("availableReplicas", 0) or 0),
    )


def endpoints(owner: Owner, spec: ChromaClusterSpec) -> Obj:
    out = {"router": f"{naming.service_host(owner.name, owner.namespace)}:{naming.CHROMA_PORT}"}
    if spec.encoder.enabled:
        host = naming.service_host(naming.encoder(owner.name), owner.namespace)
        out["encoder"] = f"http://{host}:{spec.encoder.port}"
    return out


def next_status(
    previous: Mapping[str, Any],
    owner: Owner,
    spec: ChromaClusterSpec,
    obs: Observation,
    generation: int | None,
    now: str,
    operation: Operation | None = None,
) -> tuple[Obj, list[cond.Event]]:
    """The status to publish and the Events its transitions deserve.

    `operation` (hibernating, upgrading) names the phase while it lasts; readiness is
    still reported in `ready`, `shards` and the Ready condition."""
    prev_phase = previous.get("phase")
    not_ready = [s for s in obs.shards if not s.ready]
    problems = [f"shard {s.index}: {s.ready_replicas}/{s.replicas} ready" for s in not_ready]
    if not obs.encoder_ok:
        problems.append(f"encoder: {obs.encoder_ready}/{obs.encoder_replicas} available")
    problems += obs.errors
    all_ready = not problems

    if all_ready:
        phase, reason, message = "Ready", "AllShardsReady", f"{len(obs.shards)} shards ready"
    elif prev_phase in ("Ready", "Degraded", "Upgrading"):
        phase, reason, message = "Degraded", "ShardsNotReady", "; ".join(problems)
    else:
        phase, reason, message = "Provisioning", "WaitingForShards", "; ".join(problems)
    ready_flag = all_ready and (operation is None or operation.ready)
    if operation is not None:
        phase, reason = operation.phase, operation.reason
        message = operation.message + (f" ({'; '.join(problems)})" if problems else "")

    kept = {
        sh.get("index"): sh["replicaStates"]
        for sh in previous.get("shards") or []
        if sh.get("replicaStates")
    }
    conditions = previous.get("conditions")
    conditions = cond.set_condition(conditions, READY, ready_flag, reason, message, now, generation)
    conditions = cond.set_condition(
        conditions,
        PROGRESSING,
        phase in ("Provisioning", "Upgrading"),
        reason,
        message,
        now,
        generation,
    )
    conditions = cond.set_condition(
        conditions, DEGRADED, phase == "Degraded", reason, message, now, generation
    )
    status: Obj = {
        "phase": phase,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "ready": f"{obs.ready_shards}/{len(obs.shards)}",
        "shardCount": spec.shards,
        "shards": [
            {
                "index": s.index,
                "replicas": s.replicas,
                "readyReplicas": s.ready_replicas,
                # Collected from the routers by another loop: carried over, not observed here.
                **({"replicaStates": kept[s.index]} if s.index in kept else {}),
            }
            for s in obs.shards
        ],
        "endpoints": endpoints(owner, spec),
        "conditions": conditions,
    }
    events: list[cond.Event] = []
    if phase != prev_phase:
        if phase == "Ready":
            events.append(cond.Event("Normal", "Ready", message))
        elif phase == "Degraded":
            events.append(cond.Event("Warning", "Degraded", message))
        elif phase == "Provisioning":
            events.append(cond.Event("Normal", "Provisioning", message))
        elif phase == "Hibernated":
            events.append(cond.Event("Normal", "Hibernated", message))
    elif phase == "Degraded" and message != previous.get("message"):
        events.append(cond.Event("Warning", "Degraded", message))
    return status, events


def failed_status(
    previous: Mapping[str, Any], problems: list[str], generation: int | None, now: str
) -> tuple[Obj, list[cond.Event]]:
    """An unusable spec: say which field, write nothing else."""
    message = "; ".join(problems)
    conditions = previous.get("conditions")
    conditions = cond.set_condition(
        conditions, READY, False, "InvalidSpec", message, now, generation
    )
    conditions = cond.set_condition(
        conditions, PROGRESSING, False, "InvalidSpec", message, now, generation
    )
    status: Obj = {
        "phase": "Failed",
        "reason": "InvalidSpec",
        "message": message,
        "observedGeneration": generation,
        "conditions": conditions,
    }
    events = (
        []
        if previous.get("message") == message
        else [cond.Event("Warning", "InvalidSpec", message)]
    )
    return status, events


def refused_status(
    previous: Mapping[str, Any], reason: str, message: str, generation: int | None, now: str
) -> tuple[Obj, list[cond.Event]]:
    """A change the operator will not make: keep serving, say why, do not move on."""
    conditions = cond.set_condition(
        previous.get("conditions"), PROGRESSING, False, reason, message, now, generation
    )
    status: Obj = {"reason": reason, "message": message, "conditions": conditions}
    events = [] if previous.get("reason") == reason else [cond.Event("Warning", reason, message)]
    return status, events


def paused_status(
    previous: Mapping[str, Any], message: str, generation: int | None, now: str
) -> tuple[Obj, list[cond.Event]]:
    """Reconciliation paused by the user: say so, change nothing else."""
    conditions = cond.set_condition(
        previous.get("conditions"),
        PROGRESSING,
        False,
        "ReconcilePaused",
        message,
        now,
        generation,
    )
    status: Obj = {
        "phase": "Paused",
        "reason": "ReconcilePaused",
        "message": message,
        "conditions": conditions,
    }
    events = [] if previous.get("phase") == "Paused" else [cond.Event("Normal", "Paused", message)]
    return status, events


def _diff(old: Any, new: Any) -> Any:
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return new
    out: Obj = {k: None for k in old.keys() - new.keys()}
    for key, value in new.items():
        if key not in old:
            out[key] = value
        elif old[key] != value:
            out[key] = _diff(old[key], value)
    return out


def status_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> Obj:
    """The merge patch that makes our keys of status equal `new` (None removes a key).

    Only the keys in `new` are ours; others (kopf's bookkeeping) are left alone.
    """
    return {
        k: _diff(previous[k], v) if k in previous else v
        for k, v in new.items()
        if previous.get(k) != v
    }
