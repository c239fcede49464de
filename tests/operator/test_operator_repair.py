"""Repair under the operator: the annotation makes a Job, `spec.repair` a CronJob; a real
repair report (from real replicas behind a real router) lands in status.repair with the
Repaired condition and an Event. Replica states collected from the routers land in
status.shards[].replicaStates and the topology ConfigMap."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chroma_operator.build.repair import REPAIR_ANNOTATION
from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.reconcile.kube import Kube
from chroma_operator.repair.run import Options, run_repair
from chroma_operator.topology import Topology
from kube_emulator import ApiServer, events_of, running_operator
from kubectl import cluster_doc, eventually, finish_job, kubectl_annotate, kubectl_apply
from router_harness import RouterProcess, make_topology, start_servers

NS = "repair"
API = "chroma.operator.dev/v1alpha1"


@pytest.fixture(scope="module")
def data_plane() -> Iterator[tuple[list[ChromaServer], RouterProcess]]:
    servers = start_servers(4)
    router = RouterProcess(
        make_topology([[s.url for s in servers[:2]], [s.url for s in servers[2:]]])
    )
    router.start()
    try:
        yield servers, router
    finally:
        router.stop()
        for s in servers:
            s.close()


def _real_report(servers: list[ChromaServer], router: RouterProcess) -> dict[str, Any]:
    """Write through the router, drop records on one replica directly, repair for real."""
    name = f"docs-{uuid.uuid4().hex[:6]}"
    col = router.client().create_collection(name)
    col.add(ids=[f"d{i}" for i in range(60)], embeddings=[[float(i % 5), 1.0] for i in range(60)])
    import chromadb

    replica = chromadb.HttpClient(host="127.0.0.1", port=servers[1].port).get_collection(name)
    gone = replica.get(limit=3)["ids"]
    replica.delete(ids=gone)
    report = run_repair(Options(url=router.url, collection=name, records_per_second=0))
    assert report.converged and report.totals()["copied"] == 3
    return report.compact()


@pytest.mark.slow
async def test_repair_annotation_job_cronjob_and_status(
    apiserver: ApiServer, kube: Kube, data_plane: tuple[list[ChromaServer], RouterProcess]
) -> None:
    servers, router = data_plane
    doc = cluster_doc(
        "search",
        NS,
        {"shards": 2, "replicas": 2, "repair": {"enabled": True, "schedule": "@hourly"}},
    )
    doc["metadata"]["annotations"] = {REPAIR_ANNOTATION: "2026-12-01T21:00"}
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        cron = await eventually(
            lambda: kube.get("batch/v1", "CronJob", NS, "search-repair"), lambda c: c is not None
        )
        assert cron["spec"]["schedule"] == "@hourly"
        assert (
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
            == "repair"
        )
        jobs = await eventually(
            lambda: kube.list("batch/v1", "Job", NS, {"app.kubernetes.io/component": "repair"}),
            lambda items: len(items) == 1,
        )
        job = jobs[0]["metadata"]["name"]
        assert job.startswith("search-repair-")
        assert jobs[0]["metadata"]["annotations"][REPAIR_ANNOTATION] == "2026-12-01T21:00"
        report = _real_report(servers, router)
        await finish_job(kube, NS, job, "repair", report)
        repaired = await eventually(
            lambda: kube.get(API, "ChromaCluster", NS, "search"),
            lambda c: "repair" in (c.get("status") or {}),
        )
        status = repaired["status"]
        assert status["repair"]["job"] == job and status["repair"]["copied"] == 3
        assert status["repair"]["status"] == "ok" and "v" not in status["repair"]
        cond = next(c for c in status["conditions"] if c["type"] == "Repaired")
        assert cond["status"] == "True" and cond["reason"] == "Converged"
        assert "3 copied, 0 removed, 0 overwritten" in cond["message"]
        events = await eventually(
            lambda: events_of(apiserver), lambda evs: "Repaired" in {e["reason"] for e in evs}
        )
        assert next(e for e in events if e["reason"] == "Repaired")["type"] == "Normal"

        # A failed run (a replica down) turns the condition False with a Warning.
        failed = {
            **report,
            "status": "failed",
            "reason": "replica-unreachable",
            "message": "shard-1-1 did not answer",
        }
        await kubectl_annotate(kube, doc, {REPAIR_ANNOTATION: "again"})
        second = await eventually(
            lambda: kube.list("batch/v1", "Job", NS, {"app.kubernetes.io/component": "repair"}),
            lambda items: any(j["metadata"]["name"] != job for j in items),
        )
        job2 = next(j["metadata"]["name"] for j in second if j["metadata"]["name"] != job)
        await finish_job(kube, NS, job2, "repair", failed)
        down = await eventually(
            lambda: kube.get(API, "ChromaCluster", NS, "search"),
            lambda c: c["status"]["repair"]["job"] == job2,
        )
        cond = next(c for c in down["status"]["conditions"] if c["type"] == "Repaired")
        assert cond["status"] == "False" and cond["reason"] == "ReplicaUnreachable"
        await eventually(
            lambda: events_of(apiserver), lambda evs: "RepairFailed" in {e["reason"] for e in evs}
        )

        # Turning scheduled repair off removes the CronJob.
        doc["spec"]["repair"] = {"enabled": False}
        await kubectl_apply(kube, doc)
        await eventually(
            lambda: kube.get("batch/v1", "CronJob", NS, "search-repair"), lambda c: c is None
        )


class RouterStates:
    """Serves GET /internal/replicas in the shape the routers report replica states
    (the route itself is built on another branch); the test sets what it answers."""

    def __init__(self) -> None:
        self.replicas: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == "/internal/replicas"
                body = json.dumps({"replicas": outer.replicas} if found else {}).encode()
                self.send_response(200 if found else 404)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _replica(name: str, state: str, hints: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "shard": int(name.split("-")[1]),
        "endpoint": f"http://{name}:8000",
        "state": state,
        "pending_hints": hints,
    }


async def test_replica_states_reach_status_and_the_topology(
    apiserver: ApiServer, kube: Kube
) -> None:
    a, b = RouterStates(), RouterStates()
    a.replicas = [_replica("shard-0-0", "in-sync"), _replica("shard-0-1", "stale", 7)]
    b.replicas = [
        _replica("shard-0-0", "in-sync"),
        _replica("shard-0-1", "in-sync"),
        _replica("shard-1-1", "repairing"),
    ]
    doc = cluster_doc(
        "states", NS, {"shards": 2, "replicas": 2, "slo": {"evaluationIntervalSeconds": 5}}
    )
    await kubectl_apply(kube, doc)
    try:
        with running_operator(
            str(apiserver.url),
            [NS],
            metrics_urls=lambda owner, spec: [a.url + "/metrics", b.url + "/metrics"],
        ):
            cluster = await eventually(
                lambda: kube.get(API, "ChromaCluster", NS, "states"),
                lambda c: any(
                    s.get("replicaStates") for s in (c.get("status") or {}).get("shards", [])
                ),
                timeout=30,
            )
            shard0 = cluster["status"]["shards"][0]["replicaStates"]
            assert shard0[1] == {
                "name": "shard-0-1",
                "endpoint": "http://shard-0-1:8000",
                "state": "stale",
                "pendingHints": 7,
            }
            assert cluster["status"]["shards"][1]["replicaStates"][0]["state"] == "repairing"
            cm = await eventually(
                lambda: kube.get("v1", "ConfigMap", NS, "states-config"),
                lambda c: (
                    c is not None
                    and Topology.from_json(c["data"]["topology.json"]).replica_states.get(
                        "shard-0-1"
                    )
                    == "stale"
                ),
            )
            assert (
                Topology.from_json(cm["data"]["topology.json"]).replica_states["shard-1-1"]
                == "repairing"
            )
            await eventually(
                lambda: events_of(apiserver),
                lambda evs: "ReplicaNotInSync" in {e["reason"] for e in evs},
            )
            # The hints are replayed and the repair is done: both routers say in-sync.
            a.replicas = [_replica("shard-0-0", "in-sync"), _replica("shard-0-1", "in-sync")]
            b.replicas = [_replica("shard-0-1", "in-sync"), _replica("shard-1-1", "in-sync")]
            await eventually(
                lambda: kube.get("v1", "ConfigMap", NS, "states-config"),
                lambda c: (
                    set(Topology.from_json(c["data"]["topology.json"]).replica_states.values())
                    == {"in-sync"}
                ),
                timeout=30,
            )
            await eventually(
                lambda: events_of(apiserver),
                lambda evs: "ReplicaInSync" in {e["reason"] for e in evs},
            )
            # Reconciles (a spec change) keep what the routers said.
            doc["spec"]["router"] = {"cache": {"ttlSeconds": 5}}
            await kubectl_apply(kube, doc)
            kept = await eventually(
                lambda: kube.get(API, "ChromaCluster", NS, "states"),
                lambda c: c["status"].get("observedGeneration") == c["metadata"]["generation"],
            )
            assert kept["status"]["shards"][0]["replicaStates"][1]["state"] == "in-sync"
    finally:
        a.close()
        b.close()
