"""Bad input: the router answers what one Chroma node answers, and writes nothing.

Every case is sent as raw HTTP to the router and to a single reference node holding the
same data; status and Chroma error type must match, and afterwards every shard still
holds exactly what it held before (a refused batch is never half written).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chroma_operator.data.tenant_registry import RESERVED_TENANT
from chroma_operator.router.lost_replicas import MARK_COLLECTION, MARK_DATABASE
from router_harness import RouterProcess, http_client, make_topology, servers_running

pytestmark = pytest.mark.slow

DB = "/api/v2/tenants/default_tenant/databases/default_database"
NAME = "badinput"
SEED_IDS = [f"s{i}" for i in range(30)]


def vec(i: int, dim: int = 4) -> list[float]:
    return [float(i + k) for k in range(dim)]


@pytest.fixture(scope="module")
def setup(router: RouterProcess, single: Any, shards: list[Any]) -> dict[str, Any]:
    ids = {}
    for url, port in ((router.url, router.port), (single.url, single.port)):
        col = http_client(port).create_collection(NAME)
        col.add(ids=SEED_IDS, embeddings=[vec(i) for i in range(30)])
        ids[url] = str(col.id)
    return {"router": (router.url, ids[router.url]), "single": (single.url, ids[single.url])}


def shard_counts(shards: list[Any]) -> list[int]:
    return [http_client(s.port).get_collection(NAME).count() for s in shards]


def send(target: tuple[str, str], method: str, suffix: str, **kw: Any) -> httpx.Response:
    url, cid = target
    cid = kw.pop("collection_id", cid)
    return httpx.request(method, f"{url}{DB}/collections/{cid}{suffix}", timeout=30, **kw)


MISSING = str(uuid.uuid4())
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "malformed json",
        "POST",
        "/add",
        {"content": b'{"ids": ["a"', "headers": {"content-type": "application/json"}},
    ),
    ("body not an object", "POST", "/add", {"json": [1, 2]}),
    ("missing ids", "POST", "/add", {"json": {"embeddings": [vec(1)]}}),
    ("missing embeddings", "POST", "/upsert", {"json": {"ids": ["n1"]}}),
    (
        "mismatched lengths",
        "POST",
        "/add",
        {"json": {"ids": ["n1", "n2", "n3"], "embeddings": [vec(1), vec(2)]}},
    ),
    (
        "mismatched metadatas",
        "POST",
        "/upsert",
        {"json": {"ids": ["n1", "n2"], "embeddings": [vec(1), vec(2)], "metadatas": [{"a": 1}]}},
    ),
    (
        "wrong dimension",
        "POST",
        "/add",
        {
            "json": {
                "ids": [f"n{i}" for i in range(12)],
                "embeddings": [vec(i, 5) for i in range(12)],
            }
        },
    ),
    (
        "wrong dimension on update",
        "POST",
        "/update",
        {"json": {"ids": SEED_IDS[:6], "embeddings": [vec(i, 3) for i in range(6)]}},
    ),
    (
        "mixed dimensions",
        "POST",
        "/add",
        {
            "json": {
                "ids": [f"n{i}" for i in range(6)],
                "embeddings": [vec(i, 4 if i % 2 else 5) for i in range(6)],
            }
        },
    ),
    (
        "unknown collection add",
        "POST",
        "/add",
        {"collection_id": MISSING, "json": {"ids": ["n1"], "embeddings": [vec(1)]}},
    ),
    (
        "unknown collection query",
        "POST",
        "/query",
        {"collection_id": MISSING, "json": {"query_embeddings": [vec(1)], "n_results": 1}},
    ),
    ("unknown collection count", "GET", "/count", {"collection_id": MISSING}),
    ("collection id not a uuid", "GET", "/count", {"collection_id": "not-a-uuid"}),
    (
        "n_results negative",
        "POST",
        "/query",
        {"json": {"query_embeddings": [vec(1)], "n_results": -1, "include": ["distances"]}},
    ),
    (
        "query wrong dimension",
        "POST",
        "/query",
        {"json": {"query_embeddings": [vec(1, 7)], "n_results": 3}},
    ),
    ("unknown include", "POST", "/get", {"json": {"include": ["bogus"]}}),
    ("negative limit", "POST", "/get", {"json": {"limit": -1}}),
    ("ids not strings", "POST", "/delete", {"json": {"ids": [1, 2]}}),
]


@pytest.mark.parametrize(("case", "method", "suffix", "kw"), CASES, ids=[c[0] for c in CASES])
def test_refused_like_a_single_node_and_nothing_written(
    setup: dict[str, Any],
    shards: list[Any],
    case: str,
    method: str,
    suffix: str,
    kw: dict[str, Any],
) -> None:
    before = shard_counts(shards)
    got = send(setup["router"], method, suffix, **kw)
    want = send(setup["single"], method, suffix, **kw)
    assert want.status_code >= 400, want.text  # the case really is bad input
    assert got.status_code == want.status_code, (got.text, want.text)
    assert got.json()["error"] == want.json()["error"], (got.text, want.text)
    assert isinstance(got.json()["message"], str)
    assert shard_counts(shards) == before
    assert sum(before) == len(SEED_IDS)


def test_n_results_zero_answers_empty_lists(setup: dict[str, Any]) -> None:
    body = {"query_embeddings": [vec(1), vec(2)], "n_results": 0, "include": ["distances"]}
    got = send(setup["router"], "POST", "/query", json=body)
    want = send(setup["single"], "POST", "/query", json=body)
    assert got.status_code == want.status_code == 200
    assert got.json()["ids"] == want.json()["ids"] == [[], []]
    assert got.json()["distances"] == want.json()["distances"]


def test_duplicate_ids_in_one_request_behave_like_a_single_node(
    setup: dict[str, Any], shards: list[Any]
) -> None:
    body = {"ids": ["dup", "dup"], "embeddings": [vec(1), vec(2)]}
    got = send(setup["router"], "POST", "/add", json=body)
    want = send(setup["single"], "POST", "/add", json=body)
    assert got.status_code == want.status_code
    counts = (
        send(setup["router"], "GET", "/count").json(),
        send(setup["single"], "GET", "/count").json(),
    )
    assert counts[0] == counts[1]
    assert sum(shard_counts(shards)) == counts[0]
    send(setup["router"], "POST", "/delete", json={"ids": ["dup"]})
    send(setup["single"], "POST", "/delete", json={"ids": ["dup"]})


def test_oversized_batch_is_refused_before_any_shard(
    setup: dict[str, Any], shards: list[Any]
) -> None:
    before = shard_counts(shards)
    limit = httpx.get(setup["router"][0] + "/api/v2/pre-flight-checks").json()["max_batch_size"]
    n = limit + 1
    body = {"ids": [f"big{i}" for i in range(n)], "embeddings": [vec(1)] * n}
    got = send(setup["router"], "POST", "/add", json=body)
    assert got.status_code == 413
    assert got.json()["error"] == "BatchSizeExceededError"
    assert shard_counts(shards) == before


# Over one shard the router forwards a query's bytes before it has checked them (the
# shard searches while the router checks): the answer to bad input must still be the
# router's own, the one a single node gives, whatever the shard made of it.
QUERY_CASES = [c for c in CASES if c[2] == "/query"] + [
    (
        "malformed json query",
        "POST",
        "/query",
        {"content": b'{"query_embeddings": [[1', "headers": {"content-type": "application/json"}},
    ),
    ("query body not an object", "POST", "/query", {"json": [1, 2]}),
    ("missing query_embeddings", "POST", "/query", {"json": {"n_results": 2}}),
    (
        "query_embeddings not a list of lists",
        "POST",
        "/query",
        {"json": {"query_embeddings": [1.0, 2.0], "n_results": 2}},
    ),
]


@pytest.fixture(scope="module")
def lone() -> Any:
    """A router over one shard of its own, seeded like the others."""
    with servers_running(1) as (server,):
        router = RouterProcess(make_topology([[server.url]])).start()
        try:
            col = http_client(router.port).create_collection(NAME)
            col.add(ids=SEED_IDS, embeddings=[vec(i) for i in range(30)])
            yield server, (router.url, str(col.id))
        finally:
            router.stop()


@pytest.mark.parametrize(
    ("case", "method", "suffix", "kw"), QUERY_CASES, ids=[c[0] for c in QUERY_CASES]
)
def test_one_shard_query_refused_like_a_single_node(
    setup: dict[str, Any], lone: Any, case: str, method: str, suffix: str, kw: dict[str, Any]
) -> None:
    got = send(lone[1], method, suffix, **kw)
    want = send(setup["single"], method, suffix, **kw)
    assert want.status_code >= 400, want.text
    assert got.status_code == want.status_code, (got.text, want.text)
    assert got.json()["error"] == want.json()["error"], (got.text, want.text)


def test_one_shard_query_answers_like_a_single_node(setup: dict[str, Any], lone: Any) -> None:
    for n_results in (0, 3):
        body = {"query_embeddings": [vec(1), vec(7)], "n_results": n_results}
        got = send(lone[1], "POST", "/query", json=body)
        want = send(setup["single"], "POST", "/query", json=body)
        assert got.status_code == want.status_code == 200, got.text
        assert got.json()["ids"] == want.json()["ids"]
        assert got.json()["distances"] == want.json()["distances"]


def test_one_shard_bad_query_is_refused_even_with_the_shard_down(lone: Any) -> None:
    """The shard cannot answer at all: bad input is still a 400, a good query a 503."""
    server, target = lone
    server.stop()
    try:
        bad = send(target, "POST", "/query", json={"query_embeddings": [vec(1, 7)]})
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"] == "InvalidArgumentError"
        good = send(target, "POST", "/query", json={"query_embeddings": [vec(1)]})
        assert good.status_code == 503, good.text
    finally:
        server.start()


def test_the_tenant_of_the_replicas_marks_is_not_for_clients(
    router: RouterProcess, shards: list[Any]
) -> None:
    """Reading or deleting a mark through the router is refused; the shards keep theirs."""
    mark = (
        f"/api/v2/tenants/{RESERVED_TENANT}/databases/{MARK_DATABASE}/collections/{MARK_COLLECTION}"
    )
    for method in ("GET", "DELETE"):
        resp = httpx.request(method, router.url + mark, timeout=10)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == "InvalidArgumentError"
        assert "reserved" in resp.json()["message"]
    resp = httpx.get(router.url + f"/api/v2/tenants/{RESERVED_TENANT}", timeout=10)
    assert resp.status_code == 400
    assert all(httpx.get(s.url + mark, timeout=10).status_code == 200 for s in shards)
