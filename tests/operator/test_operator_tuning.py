"""Tuning under the operator: the annotation makes a Job; its result lands in status and
the chosen efSearch reaches every real shard through a real router."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import chromadb
import pytest

from chroma_operator.build.naming import TUNE_ANNOTATION
from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.reconcile.kube import Kube
from chroma_operator.topology import Topology
from kube_emulator import ApiServer, events_of, running_operator
from kubectl import cluster_doc, eventually, finish_job, kubectl_apply
from router_harness import RouterProcess, make_topology, start_servers

NS = "tune"
API = "chroma.operator.dev/v1alpha1"
RESULT = {
    "v": 1,
    "status": "ok",
    "reason": None,
    "message": "M=16 efc=128 ef=40 meets 0.95",
    "time": "2026-11-25T13:00:00Z",
    "collection": "docs",
    "space": "cosine",
    "k": 10,
    "targetRecall": 0.95,
    "sample": 2000,
    "queries": 200,
    "points": 18,
    "chosen": {
        "maxNeighbors": 16,
        "efConstruction": 128,
        "efSearch": 40,
        "recall": 0.961,
        "p50Ms": 0.11,
        "p99Ms": 0.2,
    },
    "best": {
        "maxNeighbors": 32,
        "efConstruction": 256,
        "efSearch": 320,
        "recall": 0.998,
        "p50Ms": 1.1,
        "p99Ms": 1.9,
    },
    "front": [[16, 128, 40, 0.961, 0.11], [32, 256, 320, 0.998, 1.1]],
}


@pytest.fixture(scope="module")
def data_plane() -> Iterator[tuple[list[ChromaServer], RouterProcess]]:
    shards = start_servers(2)
    router = RouterProcess(make_topology([[s.url] for s in shards])).start()
    try:
        client = chromadb.HttpClient(host="127.0.0.1", port=router.port)
        col = client.create_collection(
            "docs", configuration={"hnsw": {"space": "cosine", "ef_search": 100}}
        )
        col.add(
            ids=[f"d{i}" for i in range(40)],
            embeddings=[[float(i % 7), 1.0, float(i % 3)] for i in range(40)],
        )
        yield shards, router
    finally:
        router.stop()
        for s in shards:
            s.stop()


async def test_tune_annotation_job_result_and_ef_search_applied(
    apiserver: ApiServer, kube: Kube, data_plane: tuple[list[ChromaServer], RouterProcess]
) -> None:
    shards, router = data_plane
    doc = cluster_doc(
        "search", NS, {"shards": 2, "tuning": {"collection": "docs", "apply": "efSearch"}}
    )
    doc["metadata"]["annotations"] = {TUNE_ANNOTATION: "2026-11-25T13:00"}
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS], router_url=lambda owner: router.url):
        jobs = await eventually(
            lambda: kube.list("batch/v1", "Job", NS, {"app.kubernetes.io/component": "tuner"}),
            lambda items: len(items) == 1,
        )
        job = jobs[0]["metadata"]["name"]
        assert job.startswith("search-tune-")
        await finish_job(kube, NS, job, "tuner", RESULT)

        tuned = await eventually(
            lambda: kube.get(API, "ChromaCluster", NS, "search"),
            lambda c: c is not None and "tuning" in (c.get("status") or {}),
        )
        status = tuned["status"]
        assert status["tuning"]["job"] == job
        assert status["tuning"]["chosen"]["efSearch"] == 40
        assert status["tuning"].get("applied", {}).get("efSearch") == 40, status["tuning"]
        cond = next(c for c in status["conditions"] if c["type"] == "Tuned")
        assert cond["status"] == "True" and "efSearch=40" in cond["message"]
        # The topology's default for new collections follows what was applied.
        cm = await eventually(
            lambda: kube.get("v1", "ConfigMap", NS, "search-config"),
            lambda c: (
                c is not None
                and Topology.from_json(c["data"]["topology.json"]).hnsw.ef_search == 40
            ),
        )
        assert cm is not None

        # The applied efSearch reaches loaded indexes by restarting shards one at a time.
        token = status["tuning"]["applied"]["at"]
        for i in range(2):
            sts = await eventually(
                lambda i=i: kube.get("apps/v1", "StatefulSet", NS, f"search-shard-{i}"),
                lambda o: _restart_token(o) == token,
            )
            other = await kube.get("apps/v1", "StatefulSet", NS, f"search-shard-{1 - i}")
            if i == 0:  # the next shard waits until this one is back
                assert _restart_token(other) is None
            await kube.patch_status(
                "apps/v1",
                "StatefulSet",
                NS,
                f"search-shard-{i}",
                {
                    "observedGeneration": sts["metadata"]["generation"],
                    "replicas": 1,
                    "updatedReplicas": 1,
                    "readyReplicas": 1,
                },
            )
        # Once every shard is back, a verify Job measures what clients get now.
        verify_jobs = await eventually(
            lambda: kube.list("batch/v1", "Job", NS, {"app.kubernetes.io/component": "tuner"}),
            lambda items: any(j["metadata"]["name"].startswith("search-verify-") for j in items),
        )
        verify = next(j for j in verify_jobs if j["metadata"]["name"].startswith("search-verify-"))
        args = verify["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--verify" in args and args[args.index("--collection") + 1] == "docs"
        measured = {
            "v": 1,
            "status": "ok",
            "reason": None,
            "message": "live",
            "collection": "docs",
            "verify": {
                "efSearch": 40,
                "exactTruth": True,
                "recall": 0.958,
                "p50Ms": 1.2,
                "p99Ms": 3.1,
            },
        }
        await finish_job(kube, NS, verify["metadata"]["name"], "tuner", measured)
        done = await eventually(
            lambda: kube.get(API, "ChromaCluster", NS, "search"),
            lambda c: c["status"]["tuning"]["applied"].get("indexReload") == "done",
        )
        assert done["status"]["shardRestarts"] == {"0": token, "1": token}
        verified = done["status"]["tuning"]["applied"]["verified"]
        assert (
            verified["ok"] is True
            and verified["recall"] == 0.958
            and verified["predicted"] == 0.961
        )
        cond = next(c for c in done["status"]["conditions"] if c["type"] == "Tuned")
        assert cond["status"] == "True" and cond["reason"] == "Verified"
        # kopf posts Events from a queue: wait for them while the operator still runs.
        wanted = {"Tuned", "IndexReloaded", "TuningVerified"}
        events = await eventually(
            lambda: events_of(apiserver), lambda evs: wanted <= {e["reason"] for e in evs}
        )
        assert next(e for e in events if e["reason"] == "Tuned")["type"] == "Normal"
    # The modify reached every real shard.
    for shard in shards:
        client = chromadb.HttpClient(host="127.0.0.1", port=shard.port)
        config: dict[str, Any] = client.get_collection("docs").configuration_json
        assert config["hnsw"]["ef_search"] == 40


def _restart_token(sts: dict[str, Any] | None) -> str | None:
    template = (sts or {}).get("spec", {}).get("template", {}).get("metadata", {})
    token = (template.get("annotations") or {}).get("chroma.operator.dev/restarted-at")
    return str(token) if token else None


async def test_the_job_applies_ef_search_and_the_operator_records_it(
    apiserver: ApiServer, kube: Kube
) -> None:
    """With `apply: efSearch` the tuning Job applies with its own token (the operator holds
    no Secrets): the operator records what the Job applied, or its refusal, and calls no
    router itself (the one it is given here accepts no connection)."""
    ns = "tune-by-job"
    for name in ("applied", "refused"):
        doc = cluster_doc(
            name, ns, {"shards": 2, "tuning": {"collection": "docs", "apply": "efSearch"}}
        )
        doc["metadata"]["annotations"] = {TUNE_ANNOTATION: "2026-12-02T10:00"}
        await kubectl_apply(kube, doc)
    refusal = "could not apply efSearch 40: Client error '401 Unauthorized'"
    outcomes = {"applied": {"appliedEfSearch": 40}, "refused": {"applyError": refusal}}
    with running_operator(str(apiserver.url), [ns], router_url=lambda owner: "http://127.0.0.1:9"):
        jobs = await eventually(
            lambda: kube.list("batch/v1", "Job", ns, {"app.kubernetes.io/component": "tuner"}),
            lambda items: len(items) == 2,
        )
        for job in jobs:
            args = job["spec"]["template"]["spec"]["containers"][0]["args"]
            assert "--apply-ef-search" in args
            cluster = job["metadata"]["name"].split("-tune-")[0]
            result = {**RESULT, **outcomes[cluster]}
            await finish_job(kube, ns, job["metadata"]["name"], "tuner", result)
        applied = await eventually(
            lambda: kube.get(API, "ChromaCluster", ns, "applied"),
            lambda c: "tuning" in (c.get("status") or {}),
        )
        tuning = applied["status"]["tuning"]
        assert tuning["applied"]["efSearch"] == 40 and tuning["applied"]["indexReload"] == "pending"
        assert "applyError" not in tuning
        refused = await eventually(
            lambda: kube.get(API, "ChromaCluster", ns, "refused"),
            lambda c: "tuning" in (c.get("status") or {}),
        )
        assert "applied" not in refused["status"]["tuning"]
        events = await eventually(
            lambda: events_of(apiserver),
            lambda evs: any(e["reason"] == "TuningNotApplied" for e in evs),
        )
        not_applied = [e for e in events if e["reason"] == "TuningNotApplied"]
        assert [e["message"] for e in not_applied] == [refusal]
        assert not_applied[0]["involvedObject"]["name"] == "refused"
