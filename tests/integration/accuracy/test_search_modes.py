"""Exact search, candidates=N and the sampled recall SLI on real shards with a low efSearch.

Two real `chroma run` shards behind the router, HNSW built and searched with small
settings (maxNeighbors 4, efSearch 10) so the approximate answer really misses
neighbours; the test computes the brute-force truth itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from chromadb.errors import InvalidArgumentError
from prometheus_client.parser import text_string_to_metric_families

from chroma_operator.local.chroma_server import ChromaServer
from router_harness import RouterProcess, make_topology, start_servers

pytestmark = pytest.mark.slow

N, DIM, QUERIES, K = 3000, 24, 40, 10
LOW_HNSW = {"space": "cosine", "max_neighbors": 4, "ef_construction": 10, "ef_search": 10}


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, DIM))
    points = centres[rng.integers(0, 30, n)] + 0.35 * rng.normal(size=(n, DIM))
    return points.astype(np.float32)


def cosine_truth(data: np.ndarray, queries: np.ndarray, ids: list[str], k: int) -> list[list[str]]:
    dn = data / np.linalg.norm(data, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    dist = (1.0 - qn @ dn.T).astype(np.float32)
    return [
        [ids[j] for j in sorted(range(len(ids)), key=lambda j: (row[j], ids[j]))[:k]]
        for row in dist
    ]


def recall(got: list[list[str]], truth: list[list[str]]) -> float:
    hits = sum(len(set(g) & set(t)) for g, t in zip(got, truth, strict=True))
    return hits / sum(len(t) for t in truth)


@pytest.fixture(scope="module")
def shards() -> Iterator[list[ChromaServer]]:
    servers = start_servers(2)
    try:
        yield servers
    finally:
        for s in servers:
            s.close()


def router_over(shards: list[ChromaServer], **router: Any) -> RouterProcess:
    topology = make_topology(
        [[s.url] for s in shards],
        hnsw=LOW_HNSW,
        slo={"recall_sample_rate": 1.0, "recall_max_per_second": 1000.0, "recall_k": K},
        cache={"enabled": True},
        **router,
    )
    return RouterProcess(topology).start()


@pytest.fixture(scope="module")
def router(shards: list[ChromaServer]) -> Iterator[RouterProcess]:
    proc = router_over(shards)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def loaded(router: RouterProcess) -> dict[str, Any]:
    data = clustered(N, seed=1)
    ids = [f"r{i:05d}" for i in range(N)]
    groups = [i % 3 for i in range(N)]
    client = router.client()
    coll = client.create_collection("acc" + uuid.uuid4().hex[:8], embedding_function=None)
    for start in range(0, N, 500):
        end = start + 500
        coll.add(
            ids=ids[start:end],
            embeddings=data[start:end].tolist(),
            documents=[f"doc {i}" for i in range(start, end)],
            metadatas=[{"group": g} for g in groups[start:end]],
        )
    queries = clustered(QUERIES, seed=2)
    return {
        "client": client,
        "coll": coll,
        "data": data,
        "ids": ids,
        "groups": groups,
        "queries": queries,
        "truth": cosine_truth(data, queries, ids, K),
    }


def with_mode(router: RouterProcess, name: str, mode: str) -> Any:
    import chromadb

    client = chromadb.HttpClient(
        host="127.0.0.1", port=router.port, headers={"X-Chroma-Search": mode}
    )
    return client.get_collection(name, embedding_function=None)


def recall_metrics(router: RouterProcess, collection: str) -> tuple[float, float, float]:
    """(relevant, missed, samples) from the router's /metrics."""
    text = httpx.get(router.url + "/metrics").text
    values = {"relevant": 0.0, "missed": 0.0, "samples": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("collection") != collection:
                continue
            if s.name == "chroma_router_recall_relevant_total":
                values["relevant"] = s.value
            elif s.name == "chroma_router_recall_missed_total":
                values["missed"] = s.value
            elif s.name == "chroma_router_recall_count":
                values["samples"] = s.value
    return values["relevant"], values["missed"], values["samples"]


def test_exact_mode_returns_the_brute_force_top_k(
    router: RouterProcess, loaded: dict[str, Any]
) -> None:
    coll = with_mode(router, loaded["coll"].name, "exact")
    got = coll.query(
        query_embeddings=loaded["queries"].tolist(), n_results=K, include=["distances", "documents"]
    )
    assert got["ids"] == loaded["truth"]
    assert recall(got["ids"], loaded["truth"]) == 1.0
    for ids, docs in zip(got["ids"], got["documents"], strict=True):
        assert docs == [f"doc {int(i[1:])}" for i in ids]
    for row in got["distances"]:
        assert row == sorted(row)


def test_exact_ids_only_answers_use_cached_vectors_until_a_write(
    router: RouterProcess, loaded: dict[str, Any]
) -> None:
    """ids-and-distances exact queries share one load of the vectors; a write through the
    router makes the next one reload, so it sees the new record."""
    coll = with_mode(router, loaded["coll"].name, "exact")
    queries = loaded["queries"][:8]
    first = coll.query(query_embeddings=queries[:4].tolist(), n_results=K, include=["distances"])
    again = coll.query(query_embeddings=queries[4:].tolist(), n_results=K, include=["distances"])
    assert first["ids"] + again["ids"] == loaded["truth"][:8]
    twin = (queries[0] * 1.0001).tolist()  # nearer to query 0 than any record
    loaded["coll"].add(ids=["twin"], embeddings=[twin], documents=["twin"])
    try:
        after = coll.query(query_embeddings=[queries[0].tolist()], n_results=K, include=[])
        assert after["ids"][0][0] == "twin"
        assert after["ids"][0][1:] == loaded["truth"][0][: K - 1]
    finally:
        loaded["coll"].delete(ids=["twin"])
    gone = coll.query(query_embeddings=[queries[0].tolist()], n_results=K, include=[])
    assert gone["ids"][0] == loaded["truth"][0]


def test_exact_mode_honours_filters(router: RouterProcess, loaded: dict[str, Any]) -> None:
    coll = with_mode(router, loaded["coll"].name, "exact")
    keep = [j for j, g in enumerate(loaded["groups"]) if g == 1]
    truth = cosine_truth(
        loaded["data"][keep], loaded["queries"][:5], [loaded["ids"][j] for j in keep], K
    )
    got = coll.query(
        query_embeddings=loaded["queries"][:5].tolist(), n_results=K, where={"group": 1}
    )
    assert got["ids"] == truth


def test_candidates_lift_recall_over_the_default(
    router: RouterProcess, loaded: dict[str, Any]
) -> None:
    default = loaded["coll"].query(query_embeddings=loaded["queries"].tolist(), n_results=K)
    wide = with_mode(router, loaded["coll"].name, "candidates=100").query(
        query_embeddings=loaded["queries"].tolist(), n_results=K
    )
    r_default = recall(default["ids"], loaded["truth"])
    r_wide = recall(wide["ids"], loaded["truth"])
    assert r_default < 0.97, "efSearch 10 should miss neighbours on this data"
    assert r_wide >= r_default + 0.02
    assert all(len(ids) == K for ids in wide["ids"])


def test_sampled_recall_sli_agrees_with_the_truth(
    shards: list[ChromaServer], loaded: dict[str, Any]
) -> None:
    # A router of its own: the shared one may still be re-running an earlier test's
    # sampled batch, which would land in the middle of this count.
    router = router_over(shards)
    try:
        _check_sampled_recall(router, loaded)
    finally:
        router.stop()


def _check_sampled_recall(router: RouterProcess, loaded: dict[str, Any]) -> None:
    name = loaded["coll"].name
    coll = router.client().get_collection(name, embedding_function=None)
    before = recall_metrics(router, name)
    got: list[list[str]] = []
    truth: list[list[str]] = []
    rng = np.random.default_rng(9)
    for q in range(QUERIES):
        query = loaded["queries"][q] + 0.01 * rng.normal(size=DIM).astype(np.float32)
        # one query per request: each is sampled (rate 1.0) and re-run exactly
        answer = coll.query(query_embeddings=[query.tolist()], n_results=K)
        got.append(answer["ids"][0])
        truth.append(cosine_truth(loaded["data"], query[None, :], loaded["ids"], K)[0])
        deadline = time.monotonic() + 10
        while recall_metrics(router, name)[2] < before[2] + q + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    relevant, missed, samples = recall_metrics(router, name)
    assert samples - before[2] == QUERIES
    sli = 1.0 - (missed - before[1]) / (relevant - before[0])
    assert sli == pytest.approx(recall(got, truth), abs=0.02)
    assert sli < 1.0


def test_cached_approximate_answer_never_answers_exact(
    router: RouterProcess, loaded: dict[str, Any]
) -> None:
    url = f"{router.url}/api/v2/tenants/default_tenant/databases/default_database/collections/{loaded['coll'].id}/query"
    body = {"query_embeddings": [loaded["queries"][0].tolist()], "n_results": K, "include": []}
    first = httpx.post(url, json=body)
    assert httpx.post(url, json=body).headers.get("x-chroma-cache") == "hit"
    exact = httpx.post(url, json=body, headers={"X-Chroma-Search": "exact"})
    assert exact.status_code == 200
    assert exact.headers.get("x-chroma-cache") is None
    assert exact.json()["ids"][0] == loaded["truth"][0]
    assert (
        first.json()["ids"][0] != exact.json()["ids"][0]
        or recall(first.json()["ids"], [loaded["truth"][0]]) == 1.0
    )
    again = httpx.post(url, json=body, headers={"X-Chroma-Search": "exact"})
    assert again.headers.get("x-chroma-cache") == "hit"
    assert again.json() == exact.json()


@pytest.mark.parametrize("value", ["fast", "candidates=0", "candidates=x", "exact=1"])
def test_bad_header_values_are_400(
    router: RouterProcess, loaded: dict[str, Any], value: str
) -> None:
    coll = with_mode(router, loaded["coll"].name, value)
    with pytest.raises(InvalidArgumentError, match="X-Chroma-Search"):
        coll.query(query_embeddings=[loaded["queries"][0].tolist()], n_results=K)


def test_exact_search_is_refused_above_the_limit(
    shards: list[ChromaServer], loaded: dict[str, Any]
) -> None:
    small = router_over(shards, exact_search_max_records=1000)
    try:
        coll = with_mode(small, loaded["coll"].name, "exact")
        with pytest.raises(InvalidArgumentError, match="1,000 records"):
            coll.query(query_embeddings=[loaded["queries"][0].tolist()], n_results=K)
        approx = with_mode(small, loaded["coll"].name, "approximate")
        assert (
            len(
                approx.query(query_embeddings=[loaded["queries"][0].tolist()], n_results=K)["ids"][
                    0
                ]
            )
            == K
        )
    finally:
        small.stop()
