"""Conditions and Events, the one module every part of the operator uses."""

from __future__ import annotations

from chroma_operator.api import conditions as cond
from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile.replica_states import transitions
from chroma_operator.reconcile.status import Observation, ShardObservation, next_status
from chroma_operator.slo.status import CONDITION_TYPE, slo_condition
from chroma_operator.slo.window import SloEvaluation

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = cond.set_condition(None, "Ready", False, "Waiting", "0/1", T0, 1)
    assert first == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Waiting",
            "message": "0/1",
            "lastTransitionTime": T0,
            "observedGeneration": 1,
        }
    ]
    same = cond.set_condition(first, "Ready", False, "Waiting", "still 0/1", T1, 2)
    assert same[0]["lastTransitionTime"] == T0 and same[0]["message"] == "still 0/1"
    flipped = cond.set_condition(same, "Ready", True, "AllReady", "1/1", T1, 2)
    assert flipped[0]["status"] == "True" and flipped[0]["lastTransitionTime"] == T1


def test_unknown_status_and_no_generation() -> None:
    c = cond.condition("SLOMet", "Unknown", "NoTraffic", "no events yet", T0)
    assert c["status"] == "Unknown" and "observedGeneration" not in c


def test_upsert_replaces_one_type_and_keeps_the_others() -> None:
    conditions = cond.set_condition(None, "Ready", True, "R", "", T0, 1)
    conditions = cond.set_condition(conditions, "Progressing", False, "P", "", T0, 1)
    replaced = cond.upsert(conditions, cond.condition("Ready", False, "X", "", T1))
    assert [c["type"] for c in replaced] == ["Progressing", "Ready"]
    assert cond.find_condition(replaced, "Ready") == replaced[1]
    assert cond.find_condition(replaced, "Missing") is None
    assert [c["type"] for c in cond.remove(replaced, "Ready")] == ["Progressing"]


def test_events_are_tuples_of_type_reason_message() -> None:
    event = cond.Event("Warning", "Degraded", "shard 0: 0/1 ready")
    assert event == ("Warning", "Degraded", "shard 0: 0/1 ready")
    assert event.type == "Warning" and event.reason == "Degraded"
    assert transitions({}, {"shard-0-1": "stale"})[0].reason == "ReplicaNotInSync"


def test_reconcile_and_the_slo_loop_share_the_rules() -> None:
    """SLOMet and Ready keep their transition time by the same rule (one module)."""
    nothing = SloEvaluation(at=1_767_225_600.0, routers=(), objectives=())
    first = slo_condition(nothing, None, observed_generation=3)
    assert first == cond.condition(
        CONDITION_TYPE, "Unknown", "NoRoutersScraped", first["message"], T0, None, 3
    )
    later = SloEvaluation(at=1_767_225_900.0, routers=(), objectives=())
    assert slo_condition(later, first)["lastTransitionTime"] == T0

    obs = Observation(shards=[ShardObservation(0, 1, 1, exists=True)])
    owner = Owner(name="c", namespace="ns")
    status, events = next_status({}, owner, ChromaClusterSpec(shards=1), obs, 1, T0)
    assert cond.find_condition(status["conditions"], "Ready") == cond.condition(
        "Ready", True, "AllShardsReady", "1 shards ready", T0, None, 1
    )
    assert events == [cond.Event("Normal", "Ready", "1 shards ready")]
