"""Day-2 decisions, pure: fence parsing, the upgrade plan, storage comparisons, builders."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from chroma_operator.api import annotations as ann
from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Operations, build_all, owner_of
from chroma_operator.reconcile import resize, upgrade
from chroma_operator.topology import Topology
from manifests import validate_manifest

OLD, NEW = "chromadb/chroma:1.5.9", "chromadb/chroma:1.5.10"


def _fence(value: Any, shards: int = 2, replicas: int = 2) -> ann.Fence:
    raw = value if isinstance(value, str) else json.dumps(value)
    return ann.parse_fence({ann.FENCED: raw}, shards, replicas)


def test_fence_accepts_known_replicas_in_order() -> None:
    assert _fence(["shard-1-0", "shard-0-1", "shard-0-1"]).replicas == ["shard-0-1", "shard-1-0"]
    assert ann.parse_fence({}, 2, 2) == ann.Fence()
    assert _fence("").replicas == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("[shard-0-1", "not JSON"),
        ({"a": 1}, "JSON list"),
        ([1], "JSON list"),
        (["replica-1"], "not a replica name"),
        (["shard-2-0"], "no replica shard-2-0"),
        (["shard-0-2"], "no replica shard-0-2"),
        (["shard-0-0", "shard-0-1"], "every replica of shard 0"),
    ],
)
def test_fence_refuses_bad_input_naming_it(value: Any, words: str) -> None:
    fence = _fence(value)
    assert not fence.valid and fence.replicas == []
    assert any(words in p for p in fence.problems), fence.problems


def test_hibernation_and_pause_values() -> None:
    assert ann.hibernated({ann.HIBERNATION: "on"}) and ann.hibernated({ann.HIBERNATION: " ON "})
    assert not ann.hibernated({ann.HIBERNATION: "off"}) and not ann.hibernated({})
    assert ann.paused({ann.RECONCILE: "paused"}) and not ann.paused({ann.RECONCILE: "yes"})


def _sts(image: str, generation: int = 1, rolled: bool = True, replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"template": {"spec": {"containers": [{"name": "chroma", "image": image}]}}},
        "status": {
            "observedGeneration": generation if rolled else generation - 1,
            "updatedReplicas": replicas if rolled else 0,
            "readyReplicas": replicas,
        },
    }


def test_upgrade_plan_rolls_one_shard_at_a_time() -> None:
    live = {0: _sts(OLD), 1: _sts(OLD), 2: _sts(OLD)}
    step = upgrade.plan(NEW, 3, 2, live, None, now="t0")
    assert step.images == {0: NEW, 1: OLD, 2: OLD}
    assert step.status is not None and step.status["state"] == "Rolling"
    assert (step.status["from"], step.status["to"], step.status["current"]) == (OLD, NEW, 0)
    assert step.events[0][1] == "Upgrading"

    live[0] = _sts(NEW, generation=2, rolled=False)  # shard 0 in flight
    wait = upgrade.plan(NEW, 3, 2, live, step.status, now="t1")
    assert wait.images == {0: NEW, 1: OLD, 2: OLD} and not wait.events
    assert wait.status is not None and wait.status["startedAt"] == "t0"

    live[0] = _sts(NEW, generation=2)
    nxt = upgrade.plan(NEW, 3, 2, live, wait.status, now="t2")
    assert nxt.images == {0: NEW, 1: NEW, 2: OLD}
    assert nxt.status is not None and nxt.status["shardsDone"] == 1

    live[1], live[2] = _sts(NEW, 2), _sts(NEW, 2)
    done = upgrade.plan(NEW, 3, 2, live, {**nxt.status, "current": 2}, now="t3")
    assert done.status is not None and done.status["state"] == "Done"
    assert done.events == [("Normal", "Upgraded", f"every shard runs {NEW}")]
    assert upgrade.plan(NEW, 3, 2, live, done.status).events == []


def test_upgrade_stops_on_a_failing_pod_and_holds() -> None:
    live = {0: _sts(NEW, 2, rolled=False), 1: _sts(OLD)}
    rolling = {"state": "Rolling", "from": OLD, "to": NEW, "current": 0}
    pods = [
        {
            "metadata": {"name": "c-shard-0-1"},
            "spec": {"containers": [{"name": "chroma", "image": NEW}]},
            "status": {"containerStatuses": [{"name": "chroma", "restartCount": 3}]},
        }
    ]
    failure = upgrade.pod_failure(pods, NEW)
    assert failure is not None and "c-shard-0-1" in failure
    assert upgrade.pod_failure(pods, OLD) is None  # only pods of the new version count
    step = upgrade.plan(NEW, 2, 2, live, rolling, failure)
    assert step.status is not None and step.status["state"] == "Failed"
    assert step.images == {0: NEW, 1: OLD}
    assert step.events[0][:2] == ("Warning", "UpgradeFailed")
    held = upgrade.plan(NEW, 2, 2, {0: _sts(NEW, 2), 1: _sts(OLD)}, step.status)
    assert held.images == {0: NEW, 1: OLD} and held.events == []
    pulled = [
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "chroma", "image": NEW}]},
            "status": {
                "containerStatuses": [
                    {"name": "chroma", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ]
            },
        }
    ]
    assert "ImagePullBackOff" in (upgrade.pod_failure(pulled, NEW) or "")


def test_new_cluster_is_not_an_upgrade() -> None:
    step = upgrade.plan(NEW, 2, 1, {0: None, 1: None}, None)
    assert step.images == {0: NEW, 1: NEW} and step.status is None


def test_storage_quantities_compare_by_value() -> None:
    assert resize.change("2Gi", "1Gi") == "grow"
    assert resize.change("1024Mi", "1Gi") == "same"
    assert resize.change("1G", "1Gi") == "shrink"
    assert resize.change("1.5Gi", "1536Mi") == "same"


def _cluster(spec: dict[str, Any]) -> Any:
    return parse_cluster(
        {
            "apiVersion": "chroma.operator.dev/v1alpha1",
            "kind": "ChromaCluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": spec,
        }
    )


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_day2_manifests_validate_against_kubernetes(version: str) -> None:
    cluster = _cluster(
        {"shards": 2, "replicas": 2, "encoder": {"enabled": True}, "tuning": {"enabled": True}}
    )
    ops = Operations(
        fenced=("shard-0-1",),
        hibernated=True,
        images={0: NEW, 1: OLD},
        storage_sizes={1: "5Gi"},
    )
    out = build_all(cluster, owner_of(cluster, "ns", "uid-1"), ops=ops)
    for manifest in out:
        validate_manifest(manifest, version)
    by = {(m["kind"], m["metadata"]["name"]): m for m in out}
    sts0, sts1 = by[("StatefulSet", "c-shard-0")], by[("StatefulSet", "c-shard-1")]
    assert (
        sts0["spec"]["replicas"] == 0 and by[("Deployment", "c-encoder")]["spec"]["replicas"] == 0
    )
    assert by[("CronJob", "c-tune")]["spec"]["suspend"] is True
    images = [c["image"] for c in sts0["spec"]["template"]["spec"]["containers"]]
    assert NEW in images
    assert OLD in [c["image"] for c in sts1["spec"]["template"]["spec"]["containers"]]
    claim = sts1["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    assert claim == {"storage": "5Gi"}
    topo = Topology.from_json(by[("ConfigMap", "c-config")]["data"]["topology.json"])
    assert topo.fenced == ["shard-0-1"]
    # Nothing overridden: the same objects as without operations.
    plain = build_all(cluster, owner_of(cluster, "ns", "uid-1"))
    assert build_all(cluster, owner_of(cluster, "ns", "uid-1"), ops=Operations()) == plain
