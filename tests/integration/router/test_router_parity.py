"""The router over 3 shards answers like one Chroma node loaded with the same data.

Both are driven by the stock `chromadb` clients. Query answers must match exactly (ids
in order; distances to float32 precision); gets match as sets, and paged gets must tile
the full answer (across shards the storage order is a deterministic interleaving of the
shards' orders, not one node's insertion order).
"""

from __future__ import annotations

import base64
from typing import Any

import chromadb
import httpx
import numpy as np
import pytest
from chromadb.errors import ChromaError, NotFoundError

from router_harness import RouterProcess, admin_client, http_client

pytestmark = pytest.mark.slow

DIM = 16


def records(n: int, seed: int = 0, start: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"id{i:05d}" for i in range(start, start + n)],
        "embeddings": rng.standard_normal((n, DIM)).astype(np.float32),
        "metadatas": [
            {"i": i, "even": i % 2 == 0, "bucket": f"b{i % 7}"} for i in range(start, start + n)
        ],
        "documents": [
            f"document number {i} {'apple' if i % 5 == 0 else 'pear'}"
            for i in range(start, start + n)
        ],
    }


def by_id(result: Any) -> dict[str, tuple[Any, ...]]:
    """A get result as {id: (metadata, document, embedding)} for order-free comparison."""
    out = {}
    for j, rid in enumerate(result["ids"]):
        row = []
        for field in ("metadatas", "documents", "embeddings", "uris"):
            col = result.get(field)
            if col is None:
                row.append(None)
            else:
                value = col[j]
                row.append(
                    tuple(np.asarray(value).round(5).tolist()) if field == "embeddings" else value
                )
        out[rid] = tuple(row)
    return out


def assert_same_query(a: Any, b: Any) -> None:
    assert a["ids"] == b["ids"]
    for field in ("metadatas", "documents", "uris"):
        assert a.get(field) == b.get(field), field
    if b.get("distances") is None:
        assert a.get("distances") is None
    else:
        for x, y in zip(a["distances"], b["distances"], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    if b.get("embeddings") is None:
        assert a.get("embeddings") is None
    else:
        for x, y in zip(a["embeddings"], b["embeddings"], strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)


@pytest.fixture(scope="module")
def clients(router: RouterProcess, single: Any) -> tuple[Any, Any]:
    return router.client(), http_client(single.port)


def pair(clients: tuple[Any, Any], name: str, **kwargs: Any) -> tuple[Any, Any]:
    r, s = clients
    return r.create_collection(name, **kwargs), s.create_collection(name, **kwargs)


def test_server_endpoints(router: RouterProcess, shards: list[Any], single: Any) -> None:
    hb = httpx.get(router.url + "/api/v2/heartbeat").json()
    assert isinstance(hb["nanosecond heartbeat"], int)
    for path in ("/api/v2/version", "/api/v2/auth/identity", "/api/v2/pre-flight-checks"):
        assert httpx.get(router.url + path).json() == httpx.get(single.url + path).json()
    checks = httpx.get(router.url + "/api/v2/pre-flight-checks").json()
    sizes = [
        httpx.get(s.url + "/api/v2/pre-flight-checks").json()["max_batch_size"] for s in shards
    ]
    assert checks["max_batch_size"] == min(sizes)
    assert checks["supports_base64_encoding"] is True
    unsupported = httpx.post(
        router.url + "/api/v2/tenants/default_tenant/databases/default_database/collections/x/fork",
        json={},
    )
    assert unsupported.status_code == 501 and unsupported.json()["error"] == "ChromaError"


def test_tenants_and_databases_exist_on_every_shard(
    router: RouterProcess, shards: list[Any], single: Any
) -> None:
    admin = admin_client(router.port)
    admin.create_tenant("tenant-x")
    admin.create_database("db-x", tenant="tenant-x")
    for s in shards:
        assert httpx.get(s.url + "/api/v2/tenants/tenant-x").status_code == 200
        assert httpx.get(s.url + "/api/v2/tenants/tenant-x/databases/db-x").status_code == 200
    assert admin.get_tenant("tenant-x")["name"] == "tenant-x"
    assert admin.get_database("db-x", tenant="tenant-x")["name"] == "db-x"
    with pytest.raises(ChromaError) as err:
        admin.create_tenant("tenant-x")
    assert type(err.value).__name__ == "ChromaError"
    client = chromadb.HttpClient(
        host="127.0.0.1", port=router.port, tenant="tenant-x", database="db-x"
    )
    col = client.create_collection("in-db-x")
    col.add(ids=["a", "b", "c"], embeddings=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert col.count() == 3
    assert [c.name for c in client.list_collections()] == ["in-db-x"]


def test_collection_crud_matches(clients: tuple[Any, Any], shards: list[Any], name: str) -> None:
    r, s = clients
    rc, sc = pair(clients, name, metadata={"team": "search"})
    assert (rc.name, rc.metadata) == (sc.name, sc.metadata)
    assert rc.configuration_json == sc.configuration_json
    for shard in shards:
        assert (
            httpx.get(
                f"{shard.url}/api/v2/tenants/default_tenant/databases/"
                f"default_database/collections/{name}"
            ).status_code
            == 200
        )
    assert r.get_collection(name).id == rc.id
    assert r.count_collections() == s.count_collections()
    assert sorted(c.name for c in r.list_collections()) == sorted(
        c.name for c in s.list_collections()
    )
    assert r.get_or_create_collection(name).id == rc.id
    for cl in (r, s):
        with pytest.raises(ChromaError) as err:
            cl.create_collection(name)
        assert "already exists" in str(err.value)
    by_id = httpx.get(
        f"{r._server._api_url}/tenants/default_tenant/databases/"
        f"default_database/collections/by-id/{rc.id}"
    ).json()
    assert by_id["name"] == name
    rc.add(ids=["x"], embeddings=[[1.0, 2.0, 3.0]])
    sc.add(ids=["x"], embeddings=[[1.0, 2.0, 3.0]])
    new = name + "-renamed"
    rc.modify(name=new, metadata={"team": "ranking"})
    sc.modify(name=new, metadata={"team": "ranking"})
    got_r, got_s = r.get_collection(new), s.get_collection(new)
    assert (got_r.name, got_r.metadata, got_r.id) == (new, {"team": "ranking"}, rc.id)
    assert (got_s.name, got_s.metadata) == (new, {"team": "ranking"})
    assert got_r.get(ids=["x"])["ids"] == ["x"]
    for cl in (r, s):
        with pytest.raises(NotFoundError):
            cl.get_collection(name)
        cl.delete_collection(new)
        with pytest.raises(NotFoundError):
            cl.get_collection(new)
        with pytest.raises(NotFoundError):
            cl.delete_collection(new)
    for shard in shards:
        assert (
            httpx.get(
                f"{shard.url}/api/v2/tenants/default_tenant/databases/"
                f"default_database/collections/{new}"
            ).status_code
            == 404
        )


def test_records_match(clients: tuple[Any, Any], name: str) -> None:
    data = records(600)
    rc, sc = pair(clients, name)
    for c in (rc, sc):
        c.add(**data)
    assert rc.count() == sc.count() == 600
    q = data["embeddings"][:5] + 0.01
    for kwargs in (
        {"n_results": 10},
        {"n_results": 7, "where": {"even": True}},
        {"n_results": 5, "where_document": {"$contains": "apple"}},
        {"n_results": 3, "include": ["embeddings", "metadatas", "documents", "distances"]},
        {"n_results": 4, "include": []},
        {"n_results": 4, "where": {"i": {"$gt": 100000}}},  # matches nothing
        {"n_results": 4, "ids": ["id00001", "id00002", "id00300"]},
    ):
        assert_same_query(
            rc.query(query_embeddings=q, **kwargs), sc.query(query_embeddings=q, **kwargs)
        )
    # More than any shard holds, more than the collection: HNSW is approximate when k
    # exceeds what a graph walk reaches, so a node may miss a record the shards find (and
    # the other way round). What must hold: the same records at the same distances,
    # ascending, and nothing lost beyond what the single node itself misses.
    got = rc.query(query_embeddings=q, n_results=1000)
    want = sc.query(query_embeddings=q, n_results=1000)
    for ids_r, d_r, ids_s, d_s in zip(
        got["ids"], got["distances"], want["ids"], want["distances"], strict=True
    ):
        assert d_r == sorted(d_r)
        assert len(ids_r) >= len(ids_s) - 2 and len(ids_r) <= 600
        dist_r, dist_s = dict(zip(ids_r, d_r, strict=True)), dict(zip(ids_s, d_s, strict=True))
        common = dist_r.keys() & dist_s.keys()
        assert len(common) >= len(ids_s) - 2
        np.testing.assert_allclose(
            [dist_r[i] for i in common], [dist_s[i] for i in common], rtol=1e-5, atol=1e-5
        )

    for kwargs in (
        {"ids": ["id00003", "id00100", "id00599", "nope"]},
        {"where": {"bucket": "b3"}},
        {"where": {"$and": [{"even": False}, {"i": {"$lt": 50}}]}},
        {"where_document": {"$contains": "apple"}},
        {"where": {"bucket": "nothing"}},
        {"include": ["embeddings"]},
        {"include": ["metadatas", "documents", "embeddings"], "where": {"i": {"$lte": 20}}},
        {},
    ):
        got, want = rc.get(**kwargs), sc.get(**kwargs)
        assert by_id(got) == by_id(want), kwargs
        assert len(got["ids"]) == len(set(got["ids"]))

    full = rc.get(include=[])["ids"]
    for limit in (1, 64, 250):
        pages: list[str] = []
        for offset in range(0, 600, limit):
            page = rc.get(limit=limit, offset=offset, include=["metadatas"])
            assert len(page["ids"]) == len(sc.get(limit=limit, offset=offset)["ids"])
            pages.extend(page["ids"])
        assert pages == full
    assert (
        rc.get(where={"even": True}, limit=10, offset=295)["ids"]
        == rc.get(where={"even": True}, include=[])["ids"][295:305]
    )
    assert len(rc.get(limit=10, offset=10_000)["ids"]) == 0

    peek_r, peek_s = rc.peek(7), sc.peek(7)
    assert len(peek_r["ids"]) == len(peek_s["ids"]) == 7
    assert set(peek_r["ids"]) <= set(full)

    upd = {
        "ids": ["id00001", "id00450", "missing"],
        "metadatas": [{"i": -1}] * 3,
        "documents": ["changed"] * 3,
        "embeddings": [[0.25] * DIM] * 3,
    }
    ups = records(40, seed=9, start=580)  # 20 existing, 20 new
    for c in (rc, sc):
        c.update(**upd)
        c.upsert(**ups)
        c.delete(ids=["id00002", "id00003", "missing"])
        c.delete(where={"bucket": "b5"})
    assert rc.count() == sc.count()
    assert by_id(rc.get(include=["metadatas", "documents", "embeddings"])) == by_id(
        sc.get(include=["metadatas", "documents", "embeddings"])
    )
    assert_same_query(
        rc.query(query_embeddings=q, n_results=20), sc.query(query_embeddings=q, n_results=20)
    )


def test_empty_collection(clients: tuple[Any, Any], name: str) -> None:
    rc, sc = pair(clients, name)
    assert rc.count() == sc.count() == 0
    assert by_id(rc.get()) == by_id(sc.get()) == {}
    assert rc.peek()["ids"] == sc.peek()["ids"] == []
    assert_same_query(
        rc.query(query_embeddings=[[0.0] * 4], n_results=3),
        sc.query(query_embeddings=[[0.0] * 4], n_results=3),
    )
    assert rc.delete(where={"a": 1}) == sc.delete(where={"a": 1})


def test_5000_records(clients: tuple[Any, Any], name: str) -> None:
    data = records(5000, seed=3)
    rc, sc = pair(clients, name, configuration={"hnsw": {"space": "cosine"}})
    for c in (rc, sc):
        c.add(**data)
    assert rc.count() == sc.count() == 5000
    q = np.random.default_rng(4).standard_normal((20, DIM)).astype(np.float32)
    assert_same_query(
        rc.query(query_embeddings=q, n_results=10, include=["distances"]),
        sc.query(query_embeddings=q, n_results=10, include=["distances"]),
    )
    assert_same_query(
        rc.query(query_embeddings=q[:3], n_results=10, where={"bucket": "b2"}),
        sc.query(query_embeddings=q[:3], n_results=10, where={"bucket": "b2"}),
    )
    got, want = rc.get(where={"bucket": "b1"}), sc.get(where={"bucket": "b1"})
    assert by_id(got) == by_id(want)
    assert len(rc.get(limit=100, offset=4950, include=[])["ids"]) == 50


def test_base64_embeddings_are_forwarded(
    clients: tuple[Any, Any], router: RouterProcess, single: Any, name: str
) -> None:
    rc, sc = pair(clients, name)
    # The stock client sends base64 because pre-flight says every shard supports it.
    assert rc._client.supports_base64_encoding()
    vecs = np.random.default_rng(5).standard_normal((30, 8)).astype(np.float32)
    for c in (rc, sc):
        c.add(ids=[f"v{i}" for i in range(30)], embeddings=vecs)
    got = rc.get(ids=["v0", "v29"], include=["embeddings"])
    want = sc.get(ids=["v0", "v29"], include=["embeddings"])
    assert by_id(got) == by_id(want)
    # Raw base64 strings through the router, as the client sends them.
    raw = [base64.b64encode(v.tobytes()).decode() for v in vecs[:2] * 2]
    for url, cid in ((router.url, rc.id), (single.url, sc.id)):
        resp = httpx.post(
            f"{url}/api/v2/tenants/default_tenant/databases/default_database/collections/{cid}/add",
            json={"ids": ["w0", "w1"], "embeddings": raw},
        )
        assert resp.status_code == 201, resp.text
    assert_same_query(
        rc.query(query_embeddings=vecs[:2] * 2, n_results=2),
        sc.query(query_embeddings=vecs[:2] * 2, n_results=2),
    )


async def test_async_client(router: RouterProcess, single: Any, name: str) -> None:
    r = await chromadb.AsyncHttpClient(host="127.0.0.1", port=router.port)
    s = await chromadb.AsyncHttpClient(host="127.0.0.1", port=single.port)
    data = records(300, seed=7)
    rc = await r.create_collection(name)
    sc = await s.create_collection(name)
    for c in (rc, sc):
        await c.add(**data)
        await c.upsert(ids=["id00001"], embeddings=[[0.5] * DIM], documents=["up"])
        await c.update(ids=["id00003"], metadatas=[{"i": -3}])
        await c.delete(ids=["id00002"])
    assert await rc.count() == await sc.count() == 299
    q = data["embeddings"][:3]
    assert_same_query(
        await rc.query(query_embeddings=q, n_results=8),
        await sc.query(query_embeddings=q, n_results=8),
    )
    assert by_id(await rc.get(where={"even": True})) == by_id(await sc.get(where={"even": True}))
    assert len((await rc.peek(5))["ids"]) == 5
    await r.delete_collection(name)
    await s.delete_collection(name)
