"""Resharding under the operator: spec.shards 2 -> 3 on real shards through a real router.

The emulator has no kubelet: the test plays it (marks StatefulSets ready, copies the
topology ConfigMap into the router's file with pod names mapped to the real servers).
The operator creates the new shard first, walks every phase only as the router reports
each epoch, refuses a conflicting change mid-move, and reports status and Events.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import chromadb
import httpx
import pytest

from chroma_operator.build import naming
from chroma_operator.build.meta import Owner
from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile.kube import Kube, KubeConfig
from chroma_operator.router.placement import shard_for
from chroma_operator.topology import ShardTopology, Topology
from kube_emulator import ApiServer, running_operator
from kubectl import cluster_doc, eventually, kubectl_apply
from router_harness import RouterProcess, make_topology, start_servers

pytestmark = pytest.mark.slow

NS = "grow"
API = "chroma.operator.dev/v1alpha1"
N = 300


@pytest.fixture(scope="module")
def data_plane() -> Iterator[tuple[list[ChromaServer], RouterProcess]]:
    servers = start_servers(3)
    router = RouterProcess(make_topology([[s.url] for s in servers[:2]])).start()
    try:
        coll = chromadb.HttpClient(host="127.0.0.1", port=router.port).create_collection("docs")
        coll.add(
            ids=[f"r{i}" for i in range(N)],
            embeddings=[[float(i), 1.0, float(i % 5)] for i in range(N)],
            documents=[f"doc {i}" for i in range(N)],
        )
        yield servers, router
    finally:
        router.stop()
        for s in servers:
            s.close()


class Kubelet:
    """Copies the topology ConfigMap into the router's file, as a mount would."""

    def __init__(self, server_url: str, servers: list[ChromaServer], router: RouterProcess):
        self.server_url, self.router = server_url, router
        self.urls = {
            f"http://{naming.pod_host('search', NS, i, 0)}:{naming.CHROMA_PORT}": s.url
            for i, s in enumerate(servers)
        }
        self.hold = threading.Event()  # set: the router "lags" (reports no epoch)
        self.seen: list[int] = []

    def shard_url(self, url: str) -> str:
        return self.urls.get(url, url)

    async def router_epochs(self, owner: Owner, port: int) -> list[int | None]:
        kube = Kube(KubeConfig(server=self.server_url))
        try:
            cm = await kube.get("v1", "ConfigMap", NS, naming.config_map(owner.name))
        finally:
            await kube.aclose()
        t = Topology.from_json(cm["data"]["topology.json"]) if cm else None
        if t is not None:
            shards = [
                ShardTopology(index=s.index, endpoints=[self.shard_url(e) for e in s.endpoints])
                for s in t.shards
            ]
            self.router.write_topology(t.model_copy(update={"shards": shards}))
        if self.hold.is_set():
            return [None]
        async with httpx.AsyncClient() as client:
            epoch = int((await client.get(self.router.url + "/internal/placement")).json()["epoch"])
        self.seen.append(epoch)
        return [epoch]


async def get_cluster(kube: Kube) -> dict[str, Any]:
    obj = await kube.get(API, "ChromaCluster", NS, "search")
    assert obj is not None
    return obj


def status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


async def mark_ready(kube: Kube, name: str) -> None:
    """No StatefulSet controller here: once it exists, write the status it would."""
    await eventually(
        lambda: kube.get("apps/v1", "StatefulSet", NS, name), lambda o: o is not None, 60
    )
    await kube.patch_status("apps/v1", "StatefulSet", NS, name, {"readyReplicas": 1, "replicas": 1})


async def set_shards(kube: Kube, n: int) -> None:
    await kube._call(
        "PATCH",
        f"/apis/{API}/namespaces/{NS}/chromaclusters/search",
        headers={"Content-Type": "application/merge-patch+json"},
        json={"spec": {"shards": n}},
    )


async def test_grow_two_to_three_walks_every_phase(
    apiserver: ApiServer, kube: Kube, data_plane: tuple[list[ChromaServer], RouterProcess]
) -> None:
    servers, router = data_plane
    kubelet = Kubelet(str(apiserver.url), servers, router)
    await kubectl_apply(
        kube, cluster_doc("search", NS, {"shards": 2, "encoder": {"enabled": False}})
    )
    with running_operator(
        str(apiserver.url),
        [NS],
        router_epochs=kubelet.router_epochs,
        shard_url=kubelet.shard_url,
    ):
        for i in range(2):
            await mark_ready(kube, f"search-shard-{i}")
        await eventually(lambda: get_cluster(kube), lambda c: status(c).get("phase") == "Ready")

        kubelet.hold.set()  # the router lags: the move must wait at its first epoch
        await set_shards(kube, 3)
        # The new shard's StatefulSet comes first; nothing moves until it is ready.
        await eventually(
            lambda: kube.get("apps/v1", "StatefulSet", NS, "search-shard-2"),
            lambda o: o is not None,
        )
        await asyncio.sleep(1.0)
        early = status(await get_cluster(kube)).get("resharding") or {}
        assert (early.get("placement") or {}).get("phase") in (None, "stable")
        await mark_ready(kube, "search-shard-2")
        waiting = await eventually(
            lambda: get_cluster(kube),
            lambda c: (
                (status(c).get("resharding") or {}).get("phase") == "dual-write"
                and "waiting for 1 of 1 routers" in str(status(c)["resharding"].get("paused"))
            ),
        )
        cond = next(c for c in status(waiting)["conditions"] if c["type"] == "Resharding")
        assert cond["status"] == "True" and cond["reason"] == "Paused"

        # A different target mid-move is refused, naming the move in progress.
        await set_shards(kube, 4)
        refused = await eventually(
            lambda: get_cluster(kube),
            lambda c: status(c).get("reason") == "ReshardingRefused",
        )
        assert "from 2 to 3 shards is in progress" in status(refused)["message"]
        assert await kube.get("apps/v1", "StatefulSet", NS, "search-shard-3") is None
        await set_shards(kube, 3)

        kubelet.hold.clear()
        # Done is the condition: the placement reads "stable" a moment earlier, while
        # the engine waits for the routers to apply that last epoch.
        done = await eventually(
            lambda: get_cluster(kube),
            lambda c: (
                (status(c).get("resharding") or {}).get("phase") == "stable"
                and any(
                    cond["type"] == "Resharding" and cond["reason"] == "Done"
                    for cond in status(c).get("conditions", [])
                )
            ),
            timeout=120,
        )
        # Events mark each phase. The last is posted just after the status patch the wait
        # above saw, so wait for it while the operator still runs.
        phases = ("dual-write", "backfill", "verify", "cutover", "cleanup", "done")

        async def reshard_events() -> list[str]:
            return [
                o.raw["message"]
                for (r, _, _), o in apiserver.objects.items()
                if r.plural == "events" and o.raw.get("reason") == "Resharding"
            ]

        await eventually(
            reshard_events, lambda ms: all(any(p in m for m in ms) for p in phases), timeout=15
        )
    rs = status(done)["resharding"]
    # (a merge patch drops null fields: previous_shards is absent once stable)
    assert rs["placement"] == {"epoch": 6, "shards": 3, "phase": "stable"}
    assert abs(rs["recordsMoved"] / N - 1 / 3) <= 0.2 / 3
    assert rs["collectionsDone"] == 1 and rs["doneCollections"] == [
        "default_tenant/default_database/docs"
    ]
    cond = next(c for c in status(done)["conditions"] if c["type"] == "Resharding")
    assert cond["status"] == "False" and cond["reason"] == "Done"
    # Every epoch was seen applied by the router before the next (0 passed while it lagged).
    assert sorted(set(kubelet.seen)) == [1, 2, 3, 4, 5, 6]
    cm = await kube.get("v1", "ConfigMap", NS, "search-config")
    assert cm is not None
    topo = Topology.from_json(cm["data"]["topology.json"])
    assert len(topo.shards) == 3 and topo.current_placement().phase == "stable"
    # The data: every record once, on its owner under 3 shards, readable through the router.
    for i, server in enumerate(servers):
        c = chromadb.HttpClient(host="127.0.0.1", port=server.port).get_collection("docs")
        ids = c.get(include=[])["ids"]
        assert all(shard_for(x, 3) == i for x in ids)
    client = chromadb.HttpClient(host="127.0.0.1", port=router.port).get_collection("docs")
    assert client.count() == N
    got = client.get(ids=["r7", "r100"], include=["documents"])
    assert sorted(got["documents"]) == ["doc 100", "doc 7"]


async def test_router_epochs_are_read_from_every_router_pod(
    kube: Kube, data_plane: tuple[list[ChromaServer], RouterProcess]
) -> None:
    """What the operator waits on between phases: each shard pod's router sidecar, by pod
    IP over plain HTTP; a pod with no IP yet counts as behind (None)."""
    _, router = data_plane
    labels = {"app.kubernetes.io/instance": "epochs", "app.kubernetes.io/component": "shard"}
    for name in ("epochs-shard-0-0", "epochs-shard-1-0"):
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NS, "labels": labels},
                "spec": {"containers": [{"name": "router", "image": "router"}]},
            }
        )
    await kube.patch_status("v1", "Pod", NS, "epochs-shard-0-0", {"podIP": "127.0.0.1"})
    applied = httpx.get(router.url + "/internal/placement").json()["epoch"]
    async with httpx.AsyncClient() as client:
        epochs = await rs.kubernetes_router_epochs(
            kube, client, Owner(name="epochs", namespace=NS), router.port, tls=False
        )
    assert sorted(epochs, key=lambda e: e is None) == [applied, None]
