"""The reconcile pass step by step, without an API server: each step is a pure function
of what the pass read (the resource, its status, the live children)."""

from __future__ import annotations

from typing import Any

from chroma_operator.api import annotations as ann
from chroma_operator.api.models import API_GROUP, API_VERSION, KIND
from chroma_operator.api.tuning_state import IndexReload
from chroma_operator.build import Operations, naming
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile import pipeline as step
from chroma_operator.reconcile.day2 import Day2
from chroma_operator.reconcile.sync import SyncResult
from chroma_operator.reshard.plan import begin
from chroma_operator.topology import PlacementTopology

NOW = "2026-01-01T00:00:00Z"
AT = "2025-12-31T23:00:00Z"
Obj = dict[str, Any]


def body(spec: Obj, annotations: dict[str, str] | None = None, status: Obj | None = None) -> Obj:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {
            "name": "c",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 3,
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": status or {},
    }


def plan(spec: Obj, previous: Obj | None = None) -> step.Plan:
    out = step.admit(body(spec), previous or {}, NOW)
    assert isinstance(out, step.Plan)
    return out


def sts(index: int, ready: int, token: str | None = None) -> Obj:
    annotations = {naming.RESTARTED_AT_ANNOTATION: token} if token else {}
    return {
        "metadata": {"name": naming.shard("c", index), "generation": 2},
        "spec": {"template": {"metadata": {"annotations": annotations}}},
        "status": {
            "observedGeneration": 2,
            "readyReplicas": ready,
            "updatedReplicas": ready,
        },
    }


def live(*objs: Obj) -> dict[tuple[str, str], Obj]:
    return {("StatefulSet", o["metadata"]["name"]): o for o in objs}


def no_day2() -> Day2:
    return Day2(ops=Operations(), operation=None)


def applied_tuning(reload: IndexReload) -> Obj:
    return {
        "job": "c-tune-1",
        "status": "ok",
        "collection": "docs",
        "applied": {"efSearch": 40, "collection": "docs", "at": AT, "indexReload": reload.value},
    }


# --- admit ---------------------------------------------------------------------------


def test_admit_stops_a_paused_cluster_without_reading_the_spec() -> None:
    out = step.admit(
        body({"shards": "not a number"}, {ann.RECONCILE: ann.PAUSED_VALUE}),
        {"observedGeneration": 2},
        NOW,
    )
    assert isinstance(out, step.Stop) and out.outcome == "paused"
    assert out.status["phase"] == "Paused"
    assert out.status["conditions"][0]["observedGeneration"] == 2
    assert [e.reason for e in out.events] == ["Paused"]


def test_admit_stops_an_invalid_spec_naming_the_field() -> None:
    out = step.admit(body({"shards": 0}), {}, NOW)
    assert isinstance(out, step.Stop) and out.outcome == "invalid"
    assert out.status["phase"] == "Failed" and "shards" in out.status["message"]
    assert "Invalid ChromaCluster" in out.note
    assert [e.reason for e in out.events] == ["InvalidSpec"]


def test_admit_refuses_a_shard_change_during_a_move() -> None:
    moving = begin(PlacementTopology(shards=2), 3)
    previous = {"resharding": {"placement": moving.model_dump(mode="json", by_alias=True)}}
    out = step.admit(body({"shards": 5}), previous, NOW)
    assert isinstance(out, step.Stop) and out.outcome == "refused"
    assert "in progress" in out.status["message"] and out.note == ""
    assert out.events[0].type == "Warning"


def test_admit_plans_with_the_owner_and_a_narrowed_spec_while_shrinking() -> None:
    p = plan({"shards": 2})
    assert p.owner == Owner(name="c", namespace="ns", uid="u-1") and p.generation == 3
    assert p.spec.shards == 2 and not p.layout.wanted
    shrink = plan({"shards": 2}, {"shardCount": 3})
    assert shrink.target.shards == 2 and shrink.spec.shards == 3 and shrink.layout.wanted


# --- tuning_roll and with_tuning ------------------------------------------------------


def test_tuning_roll_restarts_one_shard_at_a_time_then_verifies() -> None:
    spec = plan({"shards": 2, "tuning": {"apply": "efSearch"}}).spec
    previous = {"tuning": applied_tuning(IndexReload.PENDING)}
    first = step.tuning_roll(spec, previous, live(sts(0, 1), sts(1, 1)), False, "c")
    assert (first.rolling, first.restarts, first.verify) == ("rolling", {0: AT}, None)
    assert first.tuned == {"ef_search": 40}
    waiting = step.tuning_roll(
        spec, {**previous, "shardRestarts": {"0": AT}}, live(sts(0, 0, AT)), False, "c"
    )
    assert waiting.rolling == "rolling" and waiting.restarts == {0: AT}
    done = step.tuning_roll(
        spec,
        {**previous, "shardRestarts": {"0": AT, "1": AT}},
        live(sts(0, 1, AT), sts(1, 1, AT)),
        False,
        "c",
    )
    assert done.rolling == "done" and done.verify == (AT, "docs")
    asleep = step.tuning_roll(spec, previous, {}, True, "c")
    assert asleep.rolling == "idle" and asleep.restarts == {}


def test_with_tuning_moves_to_verifying_with_an_event() -> None:
    spec = plan({"shards": 1}).spec
    previous = {"tuning": applied_tuning(IndexReload.PENDING), "shardRestarts": {"0": AT}}
    done = step.tuning_roll(spec, previous, live(sts(0, 1, AT)), False, "c")
    status, events = step.with_tuning({"phase": "Ready"}, [], done)
    assert status["shardRestarts"] == {"0": AT}
    assert status["tuning"]["applied"]["indexReload"] == "verifying"
    assert status["tuning"]["job"] == "c-tune-1"
    assert [e.reason for e in events] == ["IndexReloaded"] and "efSearch 40" in events[0].message
    idle = step.tuning_roll(spec, {}, {}, False, "c")
    assert step.with_tuning({"phase": "Ready"}, [], idle) == ({"phase": "Ready"}, [])


# --- desired_children and observed_status --------------------------------------------


def test_desired_children_carry_restarts_and_the_verify_job() -> None:
    p = plan({"shards": 2})
    previous = {"tuning": applied_tuning(IndexReload.VERIFYING), "shardRestarts": {"0": AT}}
    roll = step.tuning_roll(p.spec, previous, {}, False, "c")
    desired = step.desired_children(p, roll, no_day2(), previous)
    names = {(m["kind"], m["metadata"]["name"]) for m in desired}
    assert ("StatefulSet", naming.shard("c", 1)) in names
    assert any(k == "Job" and "verify" in n for k, n in names)
    shard0 = next(
        m
        for m in desired
        if m["kind"] == "StatefulSet" and m["metadata"]["name"] == naming.shard("c", 0)
    )
    template = shard0["spec"]["template"]["metadata"]["annotations"]
    assert template[naming.RESTARTED_AT_ANNOTATION] == AT
    plain = step.desired_children(p, step.tuning_roll(p.spec, {}, {}, False, "c"), no_day2(), {})
    assert not any(m["kind"] == "Job" for m in plain)


def test_observed_status_reports_failures_and_day2_events_first() -> None:
    p = plan({"shards": 2})
    result = SyncResult(live=live(sts(0, 1), sts(1, 1)))
    status, events = step.observed_status(p, {}, result, no_day2(), NOW)
    assert status["phase"] == "Ready" and status["ready"] == "2/2"
    assert [e.reason for e in events] == ["Ready"]
    failed = SyncResult(live=live(sts(0, 1), sts(1, 1)), failed=[(("Service", "c"), "denied")])
    d2 = no_day2()
    d2.status = {"fence": {"replicas": []}}
    d2.events = [step.cond.Event("Normal", "Fenced", "x")]
    status, events = step.observed_status(p, {}, failed, d2, NOW)
    assert status["phase"] == "Provisioning" and "Service c: denied" in status["message"]
    assert status["fence"] == {"replicas": []} and events[0].reason == "Fenced"


# --- restore and child conditions -----------------------------------------------------


def test_restore_gates_ready_until_verified() -> None:
    spec = plan(
        {"shards": 1, "bootstrap": {"fromBackup": {"destination": "s3://b/x", "backupId": "b1"}}}
    ).spec
    ready: Obj = {"phase": "Ready", "conditions": []}
    assert step.restore_due(spec, {}, ready)
    assert not step.restore_due(spec, {"restore": {"phase": "Running"}}, ready)
    assert not step.restore_due(plan({"shards": 1}).spec, {}, ready)
    ready_event = [step.cond.Event("Normal", "Ready", "1 shards ready")]
    running, events = step.with_restore(ready, ready_event, {"phase": "Running"}, NOW, 3)
    assert running["phase"] != "Ready" and events == []
    done, events = step.with_restore(ready, ready_event, {"phase": "Completed"}, NOW, 3)
    assert done["phase"] == "Ready" and events == ready_event


def test_child_conditions_say_which_optional_crds_were_missing() -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor"}
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}
    status: Obj = {"conditions": []}
    missing = step.child_conditions(status, [], [monitor, scaled], NOW, 3)["conditions"]
    by_type = {c["type"]: c for c in missing}
    assert by_type["Monitoring"]["reason"] == "PrometheusOperatorMissing"
    assert by_type["Autoscaling"]["reason"] == "KedaMissing"
    present = step.child_conditions(status, [monitor], [], NOW, 3)["conditions"]
    assert [(c["type"], c["status"]) for c in present] == [("Monitoring", "True")]
    assert step.child_conditions(status, [], [], NOW, 3)["conditions"] == []
