"""Operations: the cache across two routers, metrics, topology reload, collection defaults."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import chromadb
import httpx
import pytest
from chromadb.utils.embedding_functions import HuggingFaceEmbeddingServer

from chroma_operator.data.chroma_http import ChromaHTTP
from chroma_operator.data.tenant_registry import registered_at
from chroma_operator.local.chroma_server import ChromaServer, free_port
from chroma_operator.topology import Topology
from router_harness import RouterProcess, http_client, make_topology, new_tenant

pytestmark = pytest.mark.slow

SLO_MS = [25.0, 50.0, 200.0]


def topo(shards: list[ChromaServer], **router: Any) -> Topology:
    return make_topology([[s.url] for s in shards], **router)


@pytest.fixture(scope="module")
def pair_of_routers(shards: list[ChromaServer]) -> Iterator[tuple[RouterProcess, RouterProcess]]:
    ports = [free_port(), free_port()]
    peers = [f"http://127.0.0.1:{p}" for p in ports]
    t = topo(
        shards,
        peers=peers,
        cache={"enabled": True, "ttl_seconds": 300, "max_entries": 1000},
        slo={"latency_thresholds_ms": SLO_MS},
    )
    a, b = RouterProcess(t, ports[0]).start(), RouterProcess(t, ports[1]).start()
    yield a, b
    a.stop()
    b.stop()


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def query(router: RouterProcess, cid: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{router.url}/api/v2/tenants/default_tenant/databases/default_database/"
        f"collections/{cid}/query",
        json={"query_embeddings": [[1.0, 0.0]], "n_results": 10, "include": ["distances"]},
        headers=headers or {},
    )


def test_cache_hit_then_invalidated_by_a_write_through_the_other_router(
    pair_of_routers: tuple[RouterProcess, RouterProcess], name: str
) -> None:
    a, b = pair_of_routers
    col_a = a.client().create_collection(name)
    col_a.add(ids=["p", "q"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    cid = str(col_a.id)
    hits = metric(a.url, "chroma_router_cache_hits_total")
    first = query(a, cid)
    second = query(a, cid)
    assert first.json() == second.json()
    assert "X-Chroma-Cache" not in first.headers and second.headers["X-Chroma-Cache"] == "hit"
    assert metric(a.url, "chroma_router_cache_hits_total") == hits + 1
    bypass = query(a, cid, {"Cache-Control": "no-cache"})
    assert "X-Chroma-Cache" not in bypass.headers
    assert metric(a.url, "chroma_router_cache_hits_total") == hits + 1

    b.client().get_collection(name).add(ids=["r"], embeddings=[[0.9, 0.1]])
    after = query(a, cid)
    assert "X-Chroma-Cache" not in after.headers
    assert after.json()["ids"] == [["p", "r", "q"]]
    assert metric(a.url, 'chroma_router_cache_invalidations_total{source="peer"}') >= 1
    # Through the stock client too: the cached answer now includes the new record.
    got = col_a.query(query_embeddings=[[1.0, 0.0]], n_results=10, include=["distances"])
    assert got["ids"] == [["p", "r", "q"]]


def test_metrics_have_slo_bounds_shard_latency_and_in_flight(
    pair_of_routers: tuple[RouterProcess, RouterProcess], name: str
) -> None:
    a, _ = pair_of_routers
    col = a.client().create_collection(name)
    col.add(ids=["x"], embeddings=[[1.0, 2.0]])
    col.query(query_embeddings=[[1.0, 2.0]], n_results=1)
    text = httpx.get(a.url + "/metrics").text
    route = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}/query"
    for ms in SLO_MS:
        bound = repr(ms / 1000)
        assert (
            f'chroma_router_request_duration_seconds_bucket{{le="{bound}",method="POST",'
            f'route="{route}",status="200"}}'
        ) in text
    assert 'chroma_router_shard_request_duration_seconds_count{shard="2"}' in text
    assert "chroma_router_requests_in_flight" in text
    assert "chroma_router_cache_misses_total" in text


def test_topology_reload(shards: list[ChromaServer]) -> None:
    proc = RouterProcess(topo(shards[:2])).start()
    try:
        assert httpx.get(proc.url + "/healthz").json()["shards"] == 2
        proc.write_topology(topo(shards))
        deadline = time.monotonic() + 10
        while httpx.get(proc.url + "/healthz").json()["shards"] != 3:
            assert time.monotonic() < deadline, "topology was not reloaded"
            time.sleep(0.1)
        (proc.topology_path).write_text("{not json")
        time.sleep(0.5)
        assert httpx.get(proc.url + "/healthz").json()["shards"] == 3
        assert httpx.get(proc.url + "/readyz").status_code == 200
    finally:
        proc.stop()


def test_collection_defaults_from_topology(shards: list[ChromaServer], name: str) -> None:
    t = topo(
        shards,
        hnsw={"space": "cosine", "ef_search": 77, "max_neighbors": 24},
        encoder={"url": "http://127.0.0.1:9/", "model": "all-MiniLM-L6-v2"},
    )
    proc = RouterProcess(t).start()
    try:
        client = proc.client()
        col = client.create_collection(name)
        for s in shards:
            cfg = http_client(s.port).get_collection(name).configuration_json
            assert cfg["hnsw"]["space"] == "cosine"
            assert cfg["hnsw"]["ef_search"] == 77 and cfg["hnsw"]["max_neighbors"] == 24
            assert cfg["embedding_function"] == {
                "type": "known",
                "name": "huggingface_server",
                "config": {"api_key_env_var": None, "url": "http://127.0.0.1:9/embed"},
            }
        ef = client.get_collection(name).configuration["embedding_function"]
        assert isinstance(ef, HuggingFaceEmbeddingServer)
        assert ef._api_url == "http://127.0.0.1:9/embed"
        assert col.configuration_json["hnsw"]["space"] == "cosine"
        # What the client gave wins over the cluster's defaults.
        own = client.create_collection(
            name + "-own", configuration={"hnsw": {"space": "ip"}}, embedding_function=None
        )
        cfg = own.configuration_json
        assert cfg["hnsw"]["space"] == "ip" and cfg["hnsw"]["ef_search"] == 77
        # embedding_function=None is an explicit "I send embeddings": left alone.
        assert cfg["embedding_function"] == {"type": "legacy"}
    finally:
        proc.stop()


def test_tenants_in_use_are_registered_on_every_shard(
    router: RouterProcess, shards: list[ChromaServer], name: str
) -> None:
    """Chroma 1.5.9 cannot list tenants, so backup, repair and resharding read the ones in
    use from a registry the router writes: a tenant it creates a collection in (before the
    create is answered), or one it finds a collection of (made before the registry)."""
    made = "made-" + uuid.uuid4().hex[:8]
    client = new_tenant(router.port, made)
    assert all(made not in registered_at([s.url]) for s in shards)  # no collection yet
    client.create_collection(name)
    assert all(made in registered_at([s.url]) for s in shards)

    older = "older-" + uuid.uuid4().hex[:8]
    for s in shards:  # as an older router left it: a tenant with a collection, unregistered
        with ChromaHTTP(s.url) as http:
            http.ensure_database(older, "default_database")
            http.create_collection(older, "default_database", name)
    assert older not in registered_at([s.url for s in shards])
    old_client = chromadb.HttpClient(host="127.0.0.1", port=router.port, tenant=older)
    assert old_client.get_collection(name).count() == 0  # first use: registered meanwhile
    deadline = time.monotonic() + 10
    while not all(older in registered_at([s.url]) for s in shards):
        assert time.monotonic() < deadline, "the tenant found in use was not registered"
        time.sleep(0.2)
    assert "default_tenant" not in registered_at([s.url for s in shards])  # always covered
