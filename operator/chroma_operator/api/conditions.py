"""Conditions and Events: how every part of the operator (reconcile, finished Jobs, the
SLO loop, resharding) says what happened on a resource. Pure; one place for the rules.

Conditions follow the Kubernetes API conventions (type, status, reason, message,
lastTransitionTime, observedGeneration), so Argo CD and Flux read health without custom
code; lastTransitionTime only moves when a condition's status flips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

Obj = dict[str, Any]
ConditionStatus = Literal["True", "False", "Unknown"]
EventType = Literal["Normal", "Warning"]


class Event(NamedTuple):
    """One Kubernetes Event to post on the resource (a tuple: type, reason, message)."""

    type: EventType
    reason: str
    message: str


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Obj | None:
    """The condition of this type, or None."""
    found = next((c for c in conditions or () if c.get("type") == type_), None)
    return None if found is None else dict(found)


def condition(
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: str,
    previous: Mapping[str, Any] | None = None,
    generation: int | None = None,
) -> Obj:
    """One condition; keeps the previous lastTransitionTime unless the status flipped.

    observedGeneration is left out when unknown (a merge patch reads null as "delete")."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    kept = previous is not None and previous.get("status") == value
    out: Obj = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": str(previous.get("lastTransitionTime") or now)
        if kept and previous is not None
        else now,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def upsert(conditions: Sequence[Mapping[str, Any]] | None, new: Obj) -> list[Obj]:
    """`conditions` with `new` in place of any condition of its type (appended last)."""
    return [dict(c) for c in conditions or () if c.get("type") != new["type"]] + [new]


def remove(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> list[Obj]:
    return [dict(c) for c in conditions or () if c.get("type") != type_]


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Obj]:
    """Replace one condition, keeping lastTransitionTime unless the status flipped."""
    previous = find_condition(conditions, type_)
    return upsert(conditions, condition(type_, status, reason, message, now, previous, generation))
