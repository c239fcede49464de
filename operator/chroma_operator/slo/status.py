"""An SLO evaluation as the resource shows it: `status.slo`, the `SLOMet` condition, Events.

Pure functions of (evaluation, what the status said before), so the timer that calls them
stays a thin shell: patch `status.slo`, upsert the condition, post the events.
Values that are unknown are left out rather than written as null (a JSON merge patch
would read null as "delete").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chroma_operator.api.conditions import ConditionStatus, Event, condition, find_condition
from chroma_operator.api.slo_status import ObjectiveStatus, SloAlertStatus, SloStatus
from chroma_operator.slo.results import ObjectiveResult, SloEvaluation

CONDITION_TYPE = "SLOMet"
EVENT_BURN_RATE_HIGH = "SLOBurnRateHigh"
EVENT_BURN_RATE_RECOVERED = "SLOBurnRateRecovered"
EVENT_ROUTERS_UNSCRAPED = "SLORoutersUnreachable"
REASON_NO_ROUTERS = "NoRoutersScraped"


@dataclass(frozen=True)
class SloUpdate:
    """Everything one evaluation changes on the resource."""

    status: dict[str, Any]
    """The new `status.slo`."""
    condition: dict[str, Any]
    """The `SLOMet` entry of `status.conditions` (made by `api.conditions`)."""
    events: tuple[Event, ...]


def iso(ts: float) -> str:
    """RFC 3339 in UTC with a Z, second precision (the form Kubernetes uses)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _r(x: float) -> float:
    """Round so that noise in the 7th digit does not rewrite the status every 30 s."""
    return float(f"{x:.6g}")


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _objective_status(o: ObjectiveResult) -> ObjectiveStatus:
    obj = o.objective
    return ObjectiveStatus(
        name=obj.name,
        type=obj.type,
        target=obj.target,
        window=obj.window,
        threshold_ms=obj.threshold_ms,
        observed_seconds=round(o.slo_window.covered_seconds),
        events=round(o.slo_window.events),
        bad_events=round(o.slo_window.bad_events),
        burn_rates={
            w.window: _r(w.burn_rate) for w in o.windows.values() if w.burn_rate is not None
        },
        alerts=[
            SloAlertStatus(
                severity=p.alert.severity,
                windows=p.alert.name,
                factor=p.alert.factor,
                firing=p.firing,
            )
            for p in o.pairs
        ],
        firing=sorted({p.alert.severity for p in o.pairs if p.firing}),
        sli=None if o.sli is None else _r(o.sli),
        error_budget_remaining=None if o.budget_remaining is None else _r(o.budget_remaining),
        problems=list(o.problems) or None,
    )


def slo_status(evaluation: SloEvaluation) -> dict[str, Any]:
    """The `status.slo` object."""
    return SloStatus(
        evaluated_at=iso(evaluation.at),
        routers=len(evaluation.routers),
        paging=[o.name for o in evaluation.firing("page")],
        objectives=[_objective_status(o) for o in evaluation.objectives],
    ).wire()


def _burn_text(o: ObjectiveResult) -> str:
    parts = [
        f"{p.alert.severity} {p.alert.name} burning {p.long_burn_rate or 0:.3g}x/"
        f"{p.short_burn_rate or 0:.3g}x (limit {p.alert.factor:g}x)"
        for p in o.pairs
        if p.firing
    ]
    return f"{o.name}: " + ", ".join(parts)


def _met_text(o: ObjectiveResult) -> str:
    if o.problems:
        return f"{o.name}: cannot be measured ({o.problems[0]})"
    if o.sli is None or o.budget_remaining is None:
        return f"{o.name}: no events yet"
    return (
        f"{o.name}: {_pct(o.sli)} good (target {_pct(o.objective.target)}), "
        f"{_pct(max(o.budget_remaining, 0.0))} of the error budget left"
    )


WHY_CHARS = 300
"""How much of the first scrape failure the condition quotes."""


def _why_unscraped(failures: Mapping[str, str] | None) -> str:
    """The first failure, so `kubectl describe` says why (an untrusted CA, a refusal)."""
    if not failures:
        return ""
    url, why = sorted(failures.items())[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return f": {url}: {why[:WHY_CHARS]}{more}"


def condition_fields(
    evaluation: SloEvaluation, failures: Mapping[str, str] | None = None
) -> tuple[ConditionStatus, str, str]:
    """(status, reason, message) of `SLOMet`.

    False while any burn-rate pair fires (page or ticket) or a budget is spent; Unknown
    before any router answered or any event was counted. `failures` (URL -> why) are the
    routers this scrape could not read.
    """
    firing = evaluation.firing()
    if firing:
        return "False", "BurnRateHigh", "; ".join(_burn_text(o) for o in firing)
    exhausted = [
        o
        for o in evaluation.objectives
        if o.budget_remaining is not None and o.budget_remaining <= 0
    ]
    if exhausted:
        return (
            "False",
            "ErrorBudgetExhausted",
            "; ".join(f"{o.name}: error budget spent ({_pct(o.sli or 0)} good)" for o in exhausted),
        )
    if not evaluation.routers:
        return (
            "Unknown",
            REASON_NO_ROUTERS,
            "no router answered on /metrics" + _why_unscraped(failures),
        )
    if not evaluation.has_data:
        return "Unknown", "NoTraffic", "; ".join(_met_text(o) for o in evaluation.objectives)
    return "True", "ObjectivesMet", "; ".join(_met_text(o) for o in evaluation.objectives)


def slo_condition(
    evaluation: SloEvaluation,
    previous: Mapping[str, Any] | None = None,
    *,
    observed_generation: int | None = None,
    failures: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `SLOMet` condition; keeps `lastTransitionTime` while the status is unchanged."""
    status, reason, message = condition_fields(evaluation, failures)
    return condition(
        CONDITION_TYPE, status, reason, message, iso(evaluation.at), previous, observed_generation
    )


def slo_events(
    evaluation: SloEvaluation, previously_paging: Sequence[str] = ()
) -> tuple[Event, ...]:
    """A Warning when an objective starts paging, a Normal event when it stops."""
    before = set(previously_paging)
    events: list[Event] = []
    for o in evaluation.objectives:
        paging = o.firing("page")
        if paging and o.name not in before:
            events.append(Event("Warning", EVENT_BURN_RATE_HIGH, _burn_text(o)))
        elif not paging and o.name in before:
            events.append(
                Event(
                    "Normal",
                    EVENT_BURN_RATE_RECOVERED,
                    f"{o.name}: error budget burn back under the page thresholds",
                )
            )
    return tuple(events)


def slo_update(
    evaluation: SloEvaluation,
    previous_status: Mapping[str, Any] | None,
    *,
    observed_generation: int | None = None,
    failures: Mapping[str, str] | None = None,
) -> SloUpdate:
    """Everything to write after one evaluation, given the resource's current `status`.

    `previous_status` is the whole `status` (it reads `status.slo.paging` and the old
    `SLOMet` condition), so a restarted operator neither repeats nor loses an Event.
    """
    previous_status = previous_status or {}
    previous_slo = previous_status.get("slo") or {}
    previous_condition = find_condition(previous_status.get("conditions"), CONDITION_TYPE)
    new_condition = slo_condition(
        evaluation, previous_condition, observed_generation=observed_generation, failures=failures
    )
    events = slo_events(evaluation, previous_slo.get("paging") or ())
    if failures and _newly_unscraped(new_condition, previous_condition):
        events += (Event("Warning", EVENT_ROUTERS_UNSCRAPED, new_condition["message"]),)
    return SloUpdate(status=slo_status(evaluation), condition=new_condition, events=events)


def _newly_unscraped(now: Mapping[str, Any], before: Mapping[str, Any] | None) -> bool:
    """The SLO check just went blind: routers exist but none could be read (an untrusted
    CA, a refusal). Once per transition, so `kubectl get events` shows it without a
    Warning every interval; a cluster still starting (no routers yet) posts none."""
    was_unscraped = before is not None and before.get("reason") == REASON_NO_ROUTERS
    return now.get("reason") == REASON_NO_ROUTERS and not was_unscraped
