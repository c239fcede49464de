"""Day-2 annotations end to end: the real operator (kopf) against the KMock emulator.

Hibernate, pause and fence are annotations a user (or `kubectl chroma`) sets; the
operator's answer is read back from the children, the status and the Events.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from test_operator_lifecycle import (
    NS,
    _ready_quickstart,
    child_writes,
    events_for,
    get_cluster,
    mark_ready,
    quickstart,
    status_of,
)

from chroma_operator.reconcile.kube import Kube
from chroma_operator.topology import Topology
from kube_emulator import ApiServer, running_operator
from kubectl import eventually, kubectl_apply

API = "chroma.operator.dev/v1alpha1"
PREFIX = "chroma.operator.dev"


async def annotate(kube: Kube, values: dict[str, str | None], name: str = "quickstart") -> None:
    """`kubectl annotate` (a None value removes the annotation)."""
    await kube.merge_patch(API, "ChromaCluster", NS, name, {"metadata": {"annotations": values}})


async def _events(apiserver: ApiServer, reason: str) -> list[dict[str, Any]]:
    return events_for(apiserver, reason)


async def _sts(kube: Kube, i: int) -> dict[str, Any] | None:
    return await kube.get("apps/v1", "StatefulSet", NS, f"quickstart-shard-{i}")


async def _topology(kube: Kube) -> Topology:
    """The topology the routers read (waiting for the operator to write it first)."""
    cm = await eventually(
        lambda: kube.get("v1", "ConfigMap", NS, "quickstart-config"), lambda c: c is not None
    )
    assert cm is not None
    return Topology.from_json(cm["data"]["topology.json"])


async def test_hibernate_scales_to_zero_keeps_volumes_and_wakes(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    with running_operator(str(apiserver.url), [NS]):
        await _ready_quickstart(apiserver, kube, repo_root)
        claims = {}
        for i in range(2):
            before = await _sts(kube, i)
            assert before is not None
            claims[i] = before["spec"]["volumeClaimTemplates"][0]

        await annotate(kube, {f"{PREFIX}/hibernation": "on"})
        for i in range(2):
            sts = await eventually(
                lambda i=i: _sts(kube, i), lambda s: s is not None and s["spec"]["replicas"] == 0
            )
            assert sts is not None
            # The claims stay: same template, and the retention policy keeps scaled-down PVCs.
            assert sts["spec"]["volumeClaimTemplates"][0] == claims[i]
            assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
        dep = await eventually(
            lambda: kube.get("apps/v1", "Deployment", NS, "quickstart-encoder"),
            lambda d: d is not None and d["spec"]["replicas"] == 0,
        )
        assert dep is not None
        for i in range(2):  # the controllers stop the pods
            await mark_ready(kube, "StatefulSet", f"quickstart-shard-{i}", 0)
        await mark_ready(kube, "Deployment", "quickstart-encoder", 0)
        hibernated = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Hibernated"
        )
        assert "every volume is kept" in status_of(hibernated)["message"]
        await eventually(lambda: _events(apiserver, "Hibernated"), lambda e: len(e) == 1)
        # Stays hibernated through status refreshes.
        await mark_ready(kube, "StatefulSet", "quickstart-shard-1", 0)
        assert status_of(await get_cluster(kube))["phase"] == "Hibernated"

        await annotate(kube, {f"{PREFIX}/hibernation": "off"})
        for i in range(2):
            await eventually(
                lambda i=i: _sts(kube, i), lambda s: s is not None and s["spec"]["replicas"] == 1
            )
        await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Provisioning"
        )
        for i in range(2):
            await mark_ready(kube, "StatefulSet", f"quickstart-shard-{i}", 1)
        await mark_ready(kube, "Deployment", "quickstart-encoder", 1)
        await eventually(lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready")
        after = await _sts(kube, 0)
        assert after is not None and after["spec"]["volumeClaimTemplates"][0] == claims[0]


async def test_pause_changes_nothing_and_resume_applies_the_spec(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    with running_operator(str(apiserver.url), [NS]):
        await _ready_quickstart(apiserver, kube, repo_root)
        await annotate(kube, {f"{PREFIX}/reconcile": "paused"})
        paused = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Paused"
        )
        assert "paused" in status_of(paused)["message"]
        event = await eventually(lambda: _events(apiserver, "Paused"), lambda e: len(e) == 1)
        assert "changes nothing" in event[0]["message"]

        mark = len(list(apiserver))
        doc = quickstart(repo_root)
        doc["spec"]["hnsw"]["efSearch"] = 222
        doc["spec"]["encoder"]["replicas"] = 2
        await kubectl_apply(kube, doc)
        await mark_ready(kube, "StatefulSet", "quickstart-shard-1", 0)  # a child event too
        await eventually(
            lambda: get_cluster(kube), lambda c: c["metadata"]["generation"] >= 2, timeout=5
        )
        await asyncio.sleep(2)  # give a (wrong) reconcile time to write
        assert child_writes(apiserver, mark) == []
        assert status_of(await get_cluster(kube))["phase"] == "Paused"

        await annotate(kube, {f"{PREFIX}/reconcile": None})
        await eventually(
            lambda: kube.get("apps/v1", "Deployment", NS, "quickstart-encoder"),
            lambda d: d is not None and d["spec"]["replicas"] == 2,
        )
        topo = await _topology(kube)
        assert topo.hnsw.ef_search == 222
        resumed = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") != "Paused"
        )
        assert status_of(resumed)["observedGeneration"] == resumed["metadata"]["generation"]


async def test_fence_publishes_replicas_in_the_topology_and_refuses_bad_input(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    doc = quickstart(repo_root)
    doc["spec"]["replicas"] = 2
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        await eventually(lambda: _topology(kube), lambda t: len(t.shards[0].endpoints) == 2)
        assert (await _topology(kube)).fenced == []

        await annotate(kube, {f"{PREFIX}/fenced": json.dumps(["shard-0-1"])})
        topo = await eventually(lambda: _topology(kube), lambda t: t.fenced == ["shard-0-1"])
        assert len(topo.shards[0].endpoints) == 2  # the pod stays up and listed
        sts = await _sts(kube, 0)
        assert sts is not None and sts["spec"]["replicas"] == 2
        fenced = await eventually(
            lambda: get_cluster(kube),
            lambda c: (status_of(c).get("fence") or {}).get("replicas") == ["shard-0-1"],
        )
        assert status_of(fenced)["fence"].get("problem") is None
        await eventually(lambda: _events(apiserver, "Fenced"), lambda e: len(e) == 1)

        # Bad input: a Warning names the problem; the fence in force does not move.
        for bad, words in (
            ("[shard-0-1", "not JSON"),
            (json.dumps(["shard-7-0"]), "no replica shard-7-0"),
            (json.dumps(["shard-1-0", "shard-1-1"]), "every replica of shard 1"),
            (json.dumps({"shard": 0}), "JSON list"),
        ):
            await annotate(kube, {f"{PREFIX}/fenced": bad})
            warned = await eventually(
                lambda: _events(apiserver, "InvalidFence"),
                lambda e, words=words: any(words in x["message"] for x in e),
            )
            assert all(x["type"] == "Warning" for x in warned)
            assert (await _topology(kube)).fenced == ["shard-0-1"]
        problem = await eventually(
            lambda: get_cluster(kube),
            lambda c: "JSON list" in ((status_of(c).get("fence") or {}).get("problem") or ""),
        )
        assert status_of(problem)["fence"]["replicas"] == ["shard-0-1"]

        await annotate(kube, {f"{PREFIX}/fenced": None})
        await eventually(lambda: _topology(kube), lambda t: t.fenced == [])
        await eventually(lambda: _events(apiserver, "Unfenced"), lambda e: len(e) == 1)


async def _rolled(kube: Kube, i: int, replicas: int) -> None:
    """What the StatefulSet controller reports once every pod runs the new template, ready.

    Waits for the StatefulSet first: the operator does not create shards in index order.
    """
    sts = await eventually(lambda: _sts(kube, i), lambda s: s is not None)
    assert sts is not None
    await kube.patch_status(
        "apps/v1",
        "StatefulSet",
        NS,
        f"quickstart-shard-{i}",
        {
            "observedGeneration": sts["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
        },
    )


def _image(sts: dict[str, Any] | None) -> str:
    assert sts is not None
    return next(
        c["image"] for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "chroma"
    )


async def test_upgrade_rolls_one_shard_at_a_time_and_stops_on_a_failing_pod(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    doc = quickstart(repo_root)
    doc["spec"]["replicas"] = 2
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        # Children are written concurrently: wait for both shards, not the last listed.
        for i in range(2):
            await eventually(lambda i=i: _sts(kube, i), lambda s: s is not None)
        for i in range(2):
            await _rolled(kube, i, 2)
        await mark_ready(kube, "Deployment", "quickstart-encoder", 1)
        await eventually(lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready")
        old = _image(await _sts(kube, 0))
        assert old.endswith(":1.5.9")

        doc["spec"]["version"] = "1.5.10"
        await kubectl_apply(kube, doc)
        first = await eventually(lambda: _sts(kube, 0), lambda s: _image(s).endswith(":1.5.10"))
        # The StatefulSet replaces one pod at a time, each ready before the next.
        assert first is not None and first["spec"]["updateStrategy"]["type"] == "RollingUpdate"
        upgrading = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Upgrading"
        )
        up = status_of(upgrading)["upgrade"]
        assert (up["state"], up["current"], up["from"]) == ("Rolling", 0, old)
        assert up["to"].endswith(":1.5.10")
        # Shard 1 waits while shard 0 rolls (status refreshes included).
        await mark_ready(kube, "StatefulSet", "quickstart-shard-0", 1)
        await mark_ready(kube, "StatefulSet", "quickstart-shard-0", 2)
        assert _image(await _sts(kube, 1)) == old

        await _rolled(kube, 0, 2)
        await eventually(lambda: _sts(kube, 1), lambda s: _image(s).endswith(":1.5.10"))
        # The StatefulSet is patched before the status that says so: poll, do not race.
        await eventually(
            lambda: get_cluster(kube),
            lambda c: (status_of(c).get("upgrade") or {}).get("current") == 1,
        )
        await _rolled(kube, 1, 2)
        done = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready"
        )
        assert status_of(done)["upgrade"]["state"] == "Done"
        assert status_of(done)["upgrade"]["shardsDone"] == 2
        await eventually(lambda: _events(apiserver, "Upgraded"), lambda e: len(e) == 1)
        steps = await eventually(lambda: _events(apiserver, "Upgrading"), lambda e: len(e) == 2)
        assert sorted(e["message"][:7] for e in steps) == ["shard 0", "shard 1"]

        # A version whose pod keeps restarting stops the roll; the other shard stays.
        doc["spec"]["version"] = "1.6.0"
        await kubectl_apply(kube, doc)
        await eventually(lambda: _sts(kube, 0), lambda s: _image(s).endswith(":1.6.0"))
        new = _image(await _sts(kube, 0))
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "quickstart-shard-0-1",
                    "namespace": NS,
                    "labels": {
                        "app.kubernetes.io/name": "chroma",
                        "app.kubernetes.io/instance": "quickstart",
                        "app.kubernetes.io/component": "shard",
                        "chroma.operator.dev/shard": "0",
                    },
                },
                "spec": {"containers": [{"name": "chroma", "image": new}]},
            }
        )
        await kube._call(
            "PATCH",
            f"/api/v1/namespaces/{NS}/pods/quickstart-shard-0-1/status",
            headers={"Content-Type": "application/merge-patch+json"},
            json={
                "status": {
                    "containerStatuses": [
                        {"name": "chroma", "ready": False, "restartCount": 3, "image": new}
                    ]
                }
            },
        )
        await mark_ready(kube, "StatefulSet", "quickstart-shard-0", 1)  # the pod went unready
        failed = await eventually(
            lambda: get_cluster(kube),
            lambda c: (status_of(c).get("upgrade") or {}).get("state") == "Failed",
        )
        assert "quickstart-shard-0-1" in status_of(failed)["upgrade"]["message"]
        warning = await eventually(
            lambda: _events(apiserver, "UpgradeFailed"), lambda e: len(e) == 1
        )
        assert warning[0]["type"] == "Warning" and "restarted 3 times" in warning[0]["message"]
        await mark_ready(kube, "StatefulSet", "quickstart-shard-1", 2)  # more passes
        assert _image(await _sts(kube, 1)).endswith(":1.5.10")


async def test_storage_grows_claims_recreates_statefulsets_and_refuses_shrinking(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    sc = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "example.com/csi",
        "allowVolumeExpansion": True,
    }
    await kube._call("POST", "/apis/storage.k8s.io/v1/storageclasses", json=sc)
    with running_operator(str(apiserver.url), [NS]):
        await _ready_quickstart(apiserver, kube, repo_root)
        for i in range(2):  # what the StatefulSet controller creates from the claim template
            sts = await _sts(kube, i)
            assert sts is not None
            template = sts["spec"]["volumeClaimTemplates"][0]
            await kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {
                        "name": f"data-quickstart-shard-{i}-0",
                        "namespace": NS,
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": {**template["spec"], "storageClassName": "standard"},
                }
            )
        uids = {i: (await _sts(kube, i) or {})["metadata"]["uid"] for i in range(2)}
        mark = len(list(apiserver))

        doc = quickstart(repo_root)
        doc["spec"]["storage"]["size"] = "2Gi"
        await kubectl_apply(kube, doc)
        for i in range(2):
            pvc = await eventually(
                lambda i=i: kube.get(
                    "v1", "PersistentVolumeClaim", NS, f"data-quickstart-shard-{i}-0"
                ),
                lambda p: p is not None and p["spec"]["resources"]["requests"]["storage"] == "2Gi",
            )
            assert pvc is not None
            sts = await eventually(
                lambda i=i: _sts(kube, i),
                lambda s: (
                    s is not None
                    and s["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"][
                        "storage"
                    ]
                    == "2Gi"
                ),
            )
            assert sts is not None and sts["metadata"]["uid"] != uids[i]  # a new object
        deletes = [
            r
            for r in list(apiserver)[mark:]
            if r.resource is not None
            and r.resource.plural == "statefulsets"
            and str(r.method).endswith("DELETE")
        ]
        assert len(deletes) == 2
        assert all((r.data or {}).get("propagationPolicy") == "Orphan" for r in deletes)
        resized = await eventually(
            lambda: _events(apiserver, "StorageResized"), lambda e: len(e) >= 1
        )
        assert "1Gi to 2Gi" in resized[0]["message"]

        doc["spec"]["storage"]["size"] = "1536Mi"
        await kubectl_apply(kube, doc)
        refused = await eventually(
            lambda: _events(apiserver, "StorageShrinkRefused"), lambda e: len(e) >= 1
        )
        assert refused[0]["type"] == "Warning" and "cannot shrink" in refused[0]["message"]
        kept = await eventually(
            lambda: get_cluster(kube),
            lambda c: (status_of(c).get("storage") or {}).get("kept") == {"0": "2Gi", "1": "2Gi"},
        )
        assert status_of(kept)["storage"]["size"] == "1536Mi"
        sts0 = await _sts(kube, 0)
        assert sts0 is not None
        assert sts0["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
            "storage": "2Gi"
        }

        await kube._call(
            "PATCH",
            "/apis/storage.k8s.io/v1/storageclasses/standard",
            headers={"Content-Type": "application/merge-patch+json"},
            json={"allowVolumeExpansion": False},
        )
        doc["spec"]["storage"]["size"] = "3Gi"
        await kubectl_apply(kube, doc)
        unsupported = await eventually(
            lambda: _events(apiserver, "StorageResizeNotSupported"), lambda e: len(e) >= 1
        )
        assert "allowVolumeExpansion" in unsupported[0]["message"]
        pvc = await kube.get("v1", "PersistentVolumeClaim", NS, "data-quickstart-shard-0-0")
        assert pvc is not None and pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
