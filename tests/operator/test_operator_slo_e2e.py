"""End to end: real routers over real Chroma shards, one shard slowed by the network; the
operator's own SLO loop (no Prometheus) turns SLOMet False, emits the Event, recovers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import chromadb
import pytest

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.reconcile.kube import Kube
from kube_emulator import ApiServer, running_operator
from kubectl import cluster_doc, eventually, kubectl_apply
from router_harness import RouterProcess, make_topology, start_servers
from slow_proxy import DelayProxy

NS = "slo"
THRESHOLD_MS = 100.0
DIM = 8


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[list[ChromaServer], DelayProxy, RouterProcess]]:
    shards = start_servers(2)
    proxy = DelayProxy(shards[1].port).start()
    topology = make_topology(
        [[shards[0].url], [proxy.url]],
        cache={"enabled": False},
        slo={"latency_thresholds_ms": [THRESHOLD_MS]},
    )
    router = RouterProcess(topology).start()
    try:
        yield shards, proxy, router
    finally:
        router.stop()
        proxy.stop()
        for s in shards:
            s.stop()


class QueryLoad:
    """Queries through the stock client in a thread, until stopped (bounded in time)."""

    def __init__(self, port: int) -> None:
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        self.collection = client.get_or_create_collection("slo-load")
        ids = [f"id{i}" for i in range(200)]
        self.collection.upsert(
            ids=ids, embeddings=[[float((i * j) % 7) for j in range(DIM)] for i in range(200)]
        )
        self.stop = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 240
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.collection.query(query_embeddings=[[1.0] * DIM], n_results=5)
            self.count += 1
            time.sleep(0.01)

    def __enter__(self) -> QueryLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(30)


def _slo_condition(obj: dict[str, Any] | None) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "SLOMet"), {})


def _events(apiserver: ApiServer, reason: str) -> list[dict[str, Any]]:
    return [
        obj.raw
        for (res, _, _), obj in apiserver.objects.items()
        if res.plural == "events" and not obj.deleted and obj.get("reason") == reason
    ]


async def test_slow_shard_burns_the_budget_and_recovers(
    apiserver: ApiServer,
    kube: Kube,
    cluster: tuple[list[ChromaServer], DelayProxy, RouterProcess],
) -> None:
    _, proxy, router = cluster
    spec = {
        "shards": 2,
        "slo": {
            "evaluationIntervalSeconds": 5,
            "objectives": [
                {
                    "name": "query-latency",
                    "type": "latency",
                    "thresholdMs": THRESHOLD_MS,
                    "target": 0.99,
                }
            ],
        },
    }
    await kubectl_apply(kube, cluster_doc("search", NS, spec))

    def get() -> Any:
        return kube.get("chroma.operator.dev/v1alpha1", "ChromaCluster", NS, "search")

    with (
        QueryLoad(router.port) as load,
        running_operator(
            str(apiserver.url), [NS], metrics_urls=lambda owner, s: [router.url + "/metrics"]
        ),
    ):
        met = await eventually(get, lambda c: _slo_condition(c).get("status") == "True", timeout=30)
        assert _slo_condition(met)["reason"] == "ObjectivesMet"

        proxy.delay = 0.25  # every request to shard 1 now takes > 250 ms
        burning = await eventually(
            get,
            lambda c: "query-latency" in c["status"].get("slo", {}).get("paging", []),
            timeout=60,
        )
        assert _slo_condition(burning)["status"] == "False"
        assert _slo_condition(burning)["reason"] == "BurnRateHigh"
        warning = await eventually(
            lambda: _async(_events(apiserver, "SLOBurnRateHigh")), lambda e: len(e) > 0
        )
        assert warning[0]["type"] == "Warning" and "query-latency" in warning[0]["message"]

        proxy.delay = 0.0
        recovered = await eventually(
            get, lambda c: _slo_condition(c).get("status") == "True", timeout=120
        )
        assert recovered["status"]["slo"]["paging"] == []
        normal = await eventually(
            lambda: _async(_events(apiserver, "SLOBurnRateRecovered")), lambda e: len(e) > 0
        )
        assert normal[0]["type"] == "Normal"
    assert load.count > 100


async def _async(value: Any) -> Any:
    return value
