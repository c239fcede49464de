"""Replica states from several routers: worst state wins, silence never improves a replica,
status and topology carry them."""

from __future__ import annotations

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.build.config import build_config_map
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile import replica_states as rs
from chroma_operator.reconcile.status import Observation, ShardObservation, next_status
from chroma_operator.topology import Topology


def _r(name: str, state: str, hints: int = 0) -> dict[str, object]:
    shard = int(name.split("-")[1])
    return {
        "name": name,
        "shard": shard,
        "endpoint": f"http://{name}",
        "state": state,
        "pending_hints": hints,
    }


def test_worst_state_wins_and_hints_add_up() -> None:
    a = [_r("shard-0-0", "in-sync"), _r("shard-0-1", "stale", 3)]
    b = [_r("shard-0-0", "in-sync"), _r("shard-0-1", "in-sync", 0), _r("shard-1-1", "repairing")]
    views = rs.aggregate([a, b], {}, complete=True)
    assert views["shard-0-1"].state == "stale" and views["shard-0-1"].pending_hints == 3
    assert views["shard-0-0"].state == "in-sync"
    assert views["shard-1-1"].state == "repairing" and views["shard-1-1"].shard == 1


def test_a_silent_router_never_makes_a_replica_look_better() -> None:
    now = [_r("shard-0-1", "in-sync")]
    assert rs.aggregate([now], {"shard-0-1": "stale"}, complete=False)["shard-0-1"].state == "stale"
    assert (
        rs.aggregate([now], {"shard-0-1": "stale"}, complete=True)["shard-0-1"].state == "in-sync"
    )


def test_parse_report_and_urls() -> None:
    assert rs.parse_report('{"replicas": [{"name": "shard-0-0", "state": "stale"}]}') == [
        {"name": "shard-0-0", "state": "stale"}
    ]
    assert rs.parse_report("not json") == [] and rs.parse_report("[1]") == []
    assert rs.replicas_urls(["http://r:8000/metrics"]) == ["http://r:8000/internal/replicas"]


def test_status_carries_states_across_a_refresh_and_into_the_topology() -> None:
    views = rs.aggregate([[_r("shard-0-0", "in-sync"), _r("shard-0-1", "stale", 2)]], {}, True)
    shards = [
        {"index": 0, "replicas": 2, "readyReplicas": 2},
        {"index": 1, "replicas": 2, "readyReplicas": 2},
    ]
    published = rs.with_replicas(shards, views)
    assert published[0]["replicaStates"][1] == {
        "name": "shard-0-1",
        "endpoint": "http://shard-0-1",
        "state": "stale",
        "pendingHints": 2,
    }
    assert "replicaStates" not in published[1]
    spec = ChromaClusterSpec(replicas=2)
    owner = Owner("docs", "search")
    obs = Observation(shards=[ShardObservation(i, 2, 2, True) for i in range(2)])
    status, _ = next_status({"shards": published}, owner, spec, obs, 1, "now")
    assert status["shards"][0]["replicaStates"] == published[0]["replicaStates"]
    states = rs.states_of(status)
    assert states == {"shard-0-0": "in-sync", "shard-0-1": "stale"}
    topo = Topology.from_json(build_config_map(owner, spec, states)["data"]["topology.json"])
    assert topo.replica_states == states
    assert (
        Topology.from_json(build_config_map(owner, spec)["data"]["topology.json"]).replica_states
        == {}
    )


def test_transitions_name_what_changed() -> None:
    events = rs.transitions({"shard-0-1": "stale"}, {"shard-0-1": "in-sync", "shard-1-0": "fenced"})
    assert events == [
        ("Normal", "ReplicaInSync", "replica shard-0-1 is in sync again (was stale)"),
        ("Warning", "ReplicaNotInSync", "replica shard-1-0 is fenced (was in-sync)"),
    ]
