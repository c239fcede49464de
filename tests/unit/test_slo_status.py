"""status.slo, the SLOMet condition and the Events, from evaluations."""

from __future__ import annotations

import json

from chroma_operator.api.models import ChromaClusterStatus, Condition, Objective
from chroma_operator.slo.objectives import burn_rate_alerts, error_budget, seconds, windows_for
from chroma_operator.slo.status import (
    CONDITION_TYPE,
    condition_fields,
    iso,
    slo_condition,
    slo_events,
    slo_status,
    slo_update,
)
from chroma_operator.slo.window import ObjectiveResult, PairResult, SloEvaluation, WindowSli

T0 = 1_750_000_000.0
LATENCY = Objective(name="query-latency", type="latency", threshold_ms=50, target=0.99)


def _result(objective: Objective, ratio: float | None, events: float = 1000.0) -> ObjectiveResult:
    """An objective whose every window shows the same error ratio."""
    budget = error_budget(objective.target)
    windows = {
        w: WindowSli(
            window=w,
            seconds=seconds(w),
            covered_seconds=600.0,
            events=events if ratio is not None else 0.0,
            bad_events=events * ratio if ratio is not None else 0.0,
            error_ratio=ratio,
            burn_rate=None if ratio is None else ratio / budget,
        )
        for w in windows_for([objective.window])
    }
    pairs = tuple(
        PairResult(
            a,
            windows[a.long_window].burn_rate,
            windows[a.short_window].burn_rate,
            a.fires(windows[a.long_window].burn_rate, windows[a.short_window].burn_rate),
        )
        for a in burn_rate_alerts(objective.window)
    )
    return ObjectiveResult(objective, budget, windows, pairs)


def _evaluation(
    ratio: float | None, at: float = T0, routers: tuple[str, ...] = ("r0",)
) -> SloEvaluation:
    return SloEvaluation(at=at, routers=routers, objectives=(_result(LATENCY, ratio),))


def test_met() -> None:
    ev = _evaluation(0.002)
    assert condition_fields(ev)[:2] == ("True", "ObjectivesMet")
    assert "99.8% good (target 99%)" in condition_fields(ev)[2]
    status = slo_status(ev)
    obj = status["objectives"][0]
    assert obj["sli"] == 0.998
    assert obj["errorBudgetRemaining"] == 0.8
    assert obj["burnRates"]["5m"] == 0.2
    assert obj["firing"] == []
    assert obj["thresholdMs"] == 50
    assert status["evaluatedAt"] == iso(T0) == "2025-06-15T15:06:40Z"
    json.dumps(status)  # plain JSON
    ChromaClusterStatus.model_validate({"slo": status})


def test_unknown_without_routers_or_traffic() -> None:
    assert condition_fields(_evaluation(None, routers=()))[:2] == ("Unknown", "NoRoutersScraped")
    assert condition_fields(_evaluation(None))[:2] == ("Unknown", "NoTraffic")
    # Why nothing was scraped: the first failure, cut short, and how many more.
    failures = {
        "https://b:8080/metrics": "ConnectError: refused",
        "https://a:8080/metrics": "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] " + "x" * 900,
    }
    message = condition_fields(_evaluation(None, routers=()), failures)[2]
    assert message.startswith(
        "no router answered on /metrics: https://a:8080/metrics: ConnectError: [SSL: "
    )
    assert message.endswith(" (and 1 more)") and len(message) < 450
    obj = slo_status(_evaluation(None))["objectives"][0]
    assert "sli" not in obj and "errorBudgetRemaining" not in obj  # absent, never null
    assert obj["burnRates"] == {}


def test_burning_and_exhausted() -> None:
    status, reason, message = condition_fields(_evaluation(0.2))
    assert (status, reason) == ("False", "BurnRateHigh")
    assert "page 1h/5m burning 20x/20x (limit 14.4x)" in message
    # spent budget without a fast burn: a 30-day window at 1.2 % against 1 % is 1.2x,
    # which the 3d/6h ticket pair (1x) catches; with only ratio data on the SLO window:
    spent = _result(LATENCY, 0.012)
    quiet = ObjectiveResult(
        spent.objective,
        spent.budget,
        spent.windows,
        tuple(PairResult(p.alert, p.long_burn_rate, p.short_burn_rate, False) for p in spent.pairs),
    )
    ev = SloEvaluation(at=T0, routers=("r0",), objectives=(quiet,))
    assert condition_fields(ev)[:2] == ("False", "ErrorBudgetExhausted")


def test_condition_keeps_transition_time_and_validates() -> None:
    first = slo_condition(_evaluation(0.0, T0), None, observed_generation=3)
    assert first["type"] == CONDITION_TYPE
    assert first["lastTransitionTime"] == iso(T0)
    assert first["observedGeneration"] == 3
    Condition.model_validate(first)
    same = slo_condition(_evaluation(0.001, T0 + 30), first)
    assert same["lastTransitionTime"] == iso(T0)
    flipped = slo_condition(_evaluation(0.5, T0 + 60), same)
    assert flipped["status"] == "False"
    assert flipped["lastTransitionTime"] == iso(T0 + 60)


def test_events_once_per_transition() -> None:
    assert slo_events(_evaluation(0.0)) == ()
    (warning,) = slo_events(_evaluation(0.5))
    assert (warning.type, warning.reason) == ("Warning", "SLOBurnRateHigh")
    assert "query-latency" in warning.message
    assert slo_events(_evaluation(0.5), ["query-latency"]) == ()
    (normal,) = slo_events(_evaluation(0.0), ["query-latency"])
    assert (normal.type, normal.reason) == ("Normal", "SLOBurnRateRecovered")
    # a ticket-level burn alone is no page: no Event (the condition still says False)
    ticket_only = _evaluation(0.04)  # 4x: the ticket pairs, not the page ones
    assert ticket_only.firing("ticket") and not ticket_only.firing("page")
    assert slo_events(ticket_only) == ()


def test_update_reads_the_previous_status() -> None:
    burning = slo_update(_evaluation(0.5, T0), None)
    assert [e.reason for e in burning.events] == ["SLOBurnRateHigh"]
    previous = {
        "slo": burning.status,
        "conditions": [{"type": "Ready", "status": "True"}, burning.condition],
    }
    again = slo_update(_evaluation(0.5, T0 + 30), previous)
    assert again.events == ()
    assert again.condition["lastTransitionTime"] == iso(T0)
    over = slo_update(
        _evaluation(0.0, T0 + 60), {"slo": again.status, "conditions": [again.condition]}
    )
    assert [e.reason for e in over.events] == ["SLOBurnRateRecovered"]
    assert over.condition["status"] == "True"


def test_a_warning_event_when_routers_exist_but_none_could_be_scraped() -> None:
    failures = {"https://r0:8000/metrics": "CERTIFICATE_VERIFY_FAILED"}
    blind = slo_update(_evaluation(None, T0, routers=()), None, failures=failures)
    (event,) = blind.events
    assert (event.type, event.reason) == ("Warning", "SLORoutersUnreachable")
    assert "CERTIFICATE_VERIFY_FAILED" in event.message
    previous = {"conditions": [blind.condition]}
    still = slo_update(_evaluation(None, T0 + 30, routers=()), previous, failures=failures)
    assert still.events == ()  # once per transition, not every interval
    starting = slo_update(_evaluation(None, T0, routers=()), None, failures={})
    assert starting.events == ()  # no router to scrape yet: nothing to warn about
    back = slo_update(_evaluation(0.0, T0 + 60), previous)
    again = slo_update(
        _evaluation(None, T0 + 90, routers=()), {"conditions": [back.condition]}, failures=failures
    )
    assert [e.reason for e in again.events] == ["SLORoutersUnreachable"]
