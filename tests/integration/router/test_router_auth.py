"""Token auth at the router, against real shards and the stock client.

Chroma 1.x servers have no auth of their own, so the router is the gate: tokens from a
mounted tokens file, bound to a tenant, databases and a role; 401 without a known
token, 403 outside what it may do, both as `ChromaAuthError` in the stock client.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest
import yaml
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings
from chromadb.errors import ChromaAuthError

from chroma_operator.local.chroma_server import ChromaServer
from chroma_operator.topology import AuthTopology
from router_harness import RouterProcess, make_topology

pytestmark = pytest.mark.slow

ADMIN = "admin-t0ken"
ACME_W = "acme-write-t0ken"
ACME_R = "acme-read-t0ken"
GLOBEX_W = "globex-write-t0ken"
SECRETS = (ADMIN, ACME_W, ACME_R, GLOBEX_W)


def tokens_yaml(*extra: dict[str, Any]) -> str:
    entries: list[dict[str, Any]] = [
        {"name": "ops", "token": ADMIN, "tenant": "*", "role": "admin"},
        # Stored as a digest: the Secret need not hold the token itself.
        {
            "name": "acme-app",
            "sha256": hashlib.sha256(ACME_W.encode()).hexdigest(),
            "tenant": "acme",
            "databases": ["*"],
            "role": "write",
        },
        {
            "name": "acme-dash",
            "token": ACME_R,
            "tenant": "acme",
            "databases": ["main"],
            "role": "read",
        },
        {"name": "globex-app", "token": GLOBEX_W, "tenant": "globex", "role": "write"},
        *extra,
    ]
    return yaml.safe_dump({"tokens": entries})


@pytest.fixture(scope="module")
def secured(
    shards: list[ChromaServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RouterProcess, Path]]:
    tokens = tmp_path_factory.mktemp("auth") / "tokens.yaml"
    tokens.write_text(tokens_yaml())
    topology = make_topology([[s.url] for s in shards])
    proc = RouterProcess(topology)
    # The router is its own peer: writes reach /internal/invalidate with the peer key.
    proc.write_topology(
        topology.model_copy(
            update={
                "auth": AuthTopology(tokens_file=str(tokens)),
                "router": topology.router.model_copy(update={"peers": [proc.url]}),
            }
        )
    )
    proc.start()
    admin = chromadb.AdminClient(settings=token_settings(proc, ADMIN))
    for tenant in ("acme", "globex"):
        admin.create_tenant(tenant)
        for db in ("main", "other"):
            admin.create_database(db, tenant)
    try:
        yield proc, tokens
    finally:
        proc.stop()


def token_settings(proc: RouterProcess, token: str, header: str = "Authorization") -> Settings:
    return Settings(
        chroma_api_impl="chromadb.api.fastapi.FastAPI",
        chroma_server_host="127.0.0.1",
        chroma_server_http_port=proc.port,
        chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
        chroma_client_auth_credentials=token,
        chroma_auth_token_transport_header=header,
        chroma_overwrite_singleton_tenant_database_access_from_auth=True,
    )


def client(proc: RouterProcess, token: str, header: str = "Authorization", **kw: Any) -> Any:
    return chromadb.HttpClient(
        host="127.0.0.1", port=proc.port, settings=token_settings(proc, token, header), **kw
    )


def test_no_token_and_wrong_token_are_401(secured: tuple[RouterProcess, Path]) -> None:
    proc, _ = secured
    with pytest.raises(ChromaAuthError):
        chromadb.HttpClient(host="127.0.0.1", port=proc.port)
    with pytest.raises(ChromaAuthError):
        client(proc, "not-a-known-token")
    url = proc.url + "/api/v2/tenants/acme/databases/main/collections"
    for headers in ({}, {"X-Chroma-Token": "nope"}, {"Authorization": "Bearer nope"}):
        reply = httpx.get(url, headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"] == "AuthError"
        assert reply.headers["www-authenticate"] == "Bearer"


def test_probes_stay_open(secured: tuple[RouterProcess, Path]) -> None:
    proc, _ = secured
    for path in ("/api/v2/heartbeat", "/api/v2", "/healthz", "/readyz", "/metrics"):
        assert httpx.get(proc.url + path).status_code == 200, path


def test_read_only_views_the_operator_polls_are_open_and_nothing_else_internal(
    secured: tuple[RouterProcess, Path],
) -> None:
    """The operator holds no token: replica states and the applied placement epoch are
    read without one (resharding waits on that epoch); every other /internal route needs
    the peers' key or a cluster admin."""
    proc, _ = secured
    replicas = httpx.get(proc.url + "/internal/replicas")
    assert replicas.status_code == 200 and "replicas" in replicas.json()
    placement = httpx.get(proc.url + "/internal/placement")
    assert placement.status_code == 200 and isinstance(placement.json()["epoch"], int)
    for method, path in (
        ("GET", "/internal/topology"),
        ("GET", "/internal/replicas/own"),
        ("POST", "/internal/replicas/notice"),
        ("POST", "/internal/replicas/repaired"),
        ("POST", "/internal/invalidate"),
    ):
        reply = httpx.request(method, proc.url + path, json={})
        assert reply.status_code == 401, (method, path, reply.text)


@pytest.mark.parametrize("header", ["Authorization", "X-Chroma-Token"])
def test_identity_lands_the_client_in_its_tenant(
    secured: tuple[RouterProcess, Path], header: str, name: str
) -> None:
    proc, _ = secured
    dash = client(proc, ACME_R, header)
    assert (dash.tenant, dash.database) == ("acme", "main")
    identity = dash.get_user_identity()
    assert (identity.user_id, identity.tenant, identity.databases) == (
        "acme-dash",
        "acme",
        ["main"],
    )
    app = client(proc, ACME_W, header, database="main")
    assert app.tenant == "acme"
    col = app.create_collection(name)
    col.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    # The read-only token reads what the writer wrote, and may not write.
    seen = dash.get_collection(name)
    assert seen.count() == 2
    with pytest.raises(ChromaAuthError):
        seen.add(ids=["c"], embeddings=[[1.0, 1.0]])
    with pytest.raises(ChromaAuthError):
        dash.delete_collection(name)
    # A database the read token does not cover.
    with pytest.raises(ChromaAuthError):
        client(proc, ACME_R, header, database="other")


def test_two_tenants_same_collection_name(secured: tuple[RouterProcess, Path], name: str) -> None:
    proc, _ = secured
    acme = client(proc, ACME_W, database="main")
    globex = client(proc, GLOBEX_W, database="main")
    assert globex.tenant == "globex"
    a = acme.create_collection(name)
    g = globex.create_collection(name)
    assert a.id != g.id
    a.add(ids=[f"a{i}" for i in range(20)], embeddings=[[float(i), 1.0] for i in range(20)])
    g.add(ids=["g0"], embeddings=[[5.0, 1.0]])
    assert (a.count(), g.count()) == (20, 1)
    assert g.query(query_embeddings=[[5.0, 1.0]], n_results=3)["ids"] == [["g0"]]
    # acme's token on globex's paths: 403; globex's token with acme's id: 404 (isolation).
    base = proc.url + "/api/v2/tenants/{t}/databases/main/collections/{c}"
    acme_h = {"X-Chroma-Token": ACME_W}
    globex_h = {"X-Chroma-Token": GLOBEX_W}
    assert httpx.get(base.format(t="globex", c=g.id) + "/count", headers=acme_h).status_code == 403
    assert (
        httpx.get(base.format(t="globex", c=a.id) + "/count", headers=globex_h).status_code == 404
    )
    # With a cluster admin token, a cross-tenant id is still 404 on every route.
    admin_h = {"X-Chroma-Token": ADMIN}
    cross = base.format(t="globex", c=a.id)
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/query", {"query_embeddings": [[1.0, 1.0]], "n_results": 1}),
        ("POST", "/get", {}),
        ("GET", "/count", None),
        ("POST", "/add", {"ids": ["x"], "embeddings": [[1.0, 1.0]]}),
        ("POST", "/upsert", {"ids": ["x"], "embeddings": [[1.0, 1.0]]}),
        ("POST", "/update", {"ids": ["a1"], "embeddings": [[1.0, 1.0]]}),
        ("POST", "/delete", {"ids": ["a1"]}),
        ("PUT", "", {"new_metadata": {"x": 1}}),
        ("GET", "", None),
    ]
    for method, suffix, body in calls:
        reply = httpx.request(method, cross + suffix, json=body, headers=admin_h)
        assert reply.status_code == 404, (method, suffix, reply.text)
        assert reply.json()["error"] == "NotFoundError"
    by_id = f"{proc.url}/api/v2/tenants/globex/databases/main/collections/by-id/{a.id}"
    assert httpx.get(by_id, headers=admin_h).status_code == 404
    assert a.count() == 20 and a.get(ids=["a1"])["ids"] == ["a1"]


def role_matrix(t: str, c: str, name: str) -> list[tuple[str, str, Any, dict[str, int]]]:
    """(method, path, body, expected status per token) for each route family."""
    db = f"/api/v2/tenants/{t}/databases/main"
    coll = f"{db}/collections/{c}"
    ok_all = {ADMIN: 200, ACME_W: 200, ACME_R: 200, GLOBEX_W: 403}
    return [
        ("GET", "/api/v2/version", None, {ADMIN: 200, ACME_W: 200, ACME_R: 200, GLOBEX_W: 200}),
        ("GET", f"/api/v2/tenants/{t}", None, ok_all),
        ("GET", f"/api/v2/tenants/{t}/databases", None, ok_all),
        ("GET", db, None, ok_all),
        ("GET", f"{db}/collections", None, ok_all),
        ("GET", f"{db}/collections_count", None, ok_all),
        ("GET", f"{db}/collections/{name}", None, ok_all),
        ("GET", f"{db}/collections/by-id/{c}", None, ok_all),
        ("POST", f"{coll}/get", {}, ok_all),
        ("POST", f"{coll}/query", {"query_embeddings": [[1.0, 0.0]], "n_results": 1}, ok_all),
        ("GET", f"{coll}/count", None, ok_all),
        (
            "POST",
            f"{coll}/upsert",
            {"ids": ["m"], "embeddings": [[1.0, 0.0]]},
            {ADMIN: 200, ACME_W: 200, ACME_R: 403, GLOBEX_W: 403},
        ),
        (
            "PUT",
            coll,
            {"new_metadata": {"k": 1}},
            {ADMIN: 200, ACME_W: 200, ACME_R: 403, GLOBEX_W: 403},
        ),
        (
            "POST",
            f"/api/v2/tenants/{t}/databases",
            {"name": "xdb"},
            {ADMIN: 409, ACME_W: 403, ACME_R: 403, GLOBEX_W: 403},
        ),
        (
            "POST",
            "/api/v2/tenants",
            {"name": t},
            {ADMIN: 409, ACME_W: 403, ACME_R: 403, GLOBEX_W: 403},
        ),
        ("GET", "/internal/topology", None, {ADMIN: 200, ACME_W: 403, ACME_R: 403, GLOBEX_W: 403}),
    ]


def test_each_role_against_each_route_family(
    secured: tuple[RouterProcess, Path], name: str
) -> None:
    proc, _ = secured
    col = client(proc, ACME_W, database="main").create_collection(name)
    col.add(ids=["a"], embeddings=[[1.0, 0.0]])
    httpx.post(
        proc.url + "/api/v2/tenants/acme/databases",
        json={"name": "xdb"},
        headers={"X-Chroma-Token": ADMIN},
    )
    for method, path, body, expected in role_matrix("acme", str(col.id), name):
        for token, status in expected.items():
            for headers in ({"X-Chroma-Token": token}, {"Authorization": f"Bearer {token}"}):
                reply = httpx.request(method, proc.url + path, json=body, headers=headers)
                assert reply.status_code == status, (method, path, token, reply.text)
                if status in (401, 403):
                    assert reply.json()["error"] == "AuthError"
    # Deleting a database and reset are admin-only (reset is disabled on these shards).
    reply = httpx.delete(
        proc.url + "/api/v2/tenants/acme/databases/xdb", headers={"X-Chroma-Token": ACME_W}
    )
    assert reply.status_code == 403
    reply = httpx.post(proc.url + "/api/v2/reset", headers={"X-Chroma-Token": ACME_W})
    assert reply.status_code == 403


def test_async_client_both_headers(secured: tuple[RouterProcess, Path], name: str) -> None:
    proc, _ = secured
    # The async client of chromadb 1.5.9 has no auth provider (the token goes in headers)
    # and shares one HTTP client per event loop: one loop per token here.
    settings = Settings(chroma_overwrite_singleton_tenant_database_access_from_auth=True)

    def fresh(headers: dict[str, str] | None, **kw: Any) -> Any:
        SharedSystemClient.clear_system_cache()
        return chromadb.AsyncHttpClient(
            host="127.0.0.1", port=proc.port, headers=headers, settings=settings, **kw
        )

    async def reader(headers: dict[str, str]) -> None:
        c = await fresh(headers)
        assert (c.tenant, c.database) == ("acme", "main")
        assert (await c.get_user_identity()).user_id == "acme-dash"
        with pytest.raises(ChromaAuthError):
            await c.create_collection(name)

    async def writer(headers: dict[str, str]) -> None:
        c = await fresh(headers, database="main")
        col = await c.get_or_create_collection(name)
        await col.upsert(ids=["a"], embeddings=[[1.0, 0.0]])
        assert await col.count() == 1

    async def refused(headers: dict[str, str] | None) -> None:
        with pytest.raises(ChromaAuthError):
            await fresh(headers)

    for header, scheme in (("Authorization", "Bearer "), ("X-Chroma-Token", "")):
        asyncio.run(reader({header: scheme + ACME_R}))
        asyncio.run(writer({header: scheme + ACME_W}))
        asyncio.run(refused({header: scheme + "wrong"}))
    asyncio.run(refused(None))


def test_malformed_auth_headers_are_401_never_5xx(secured: tuple[RouterProcess, Path]) -> None:
    proc, _ = secured
    url = proc.url + "/api/v2/tenants/acme/databases/main/collections"
    bad: list[list[tuple[bytes, bytes]]] = []
    for i in range(1000):
        kind = i % 10
        if kind == 0:
            bad.append([(b"x-chroma-token", b"A" * (1000 + i * 30))])  # huge, up to ~31 KB
        elif kind == 1:
            bad.append([(b"authorization", "Bearer токен-ü-€".encode() + bytes([0x80 + i % 100]))])
        elif kind == 2:
            bad.append([(b"authorization", b"Bearer " + ACME_W.encode() + b"x")])
        elif kind == 3:  # repeated, disagreeing
            bad.append([(b"x-chroma-token", ACME_W.encode()), (b"x-chroma-token", b"other")])
        elif kind == 4:
            bad.append([(b"authorization", f"Bearer {ACME_W}".encode()), (b"x-chroma-token", b"z")])
        elif kind == 5:
            bad.append([(b"authorization", b"Basic " + ACME_W.encode())])
        elif kind == 6:
            bad.append([(b"authorization", b"Bearer")])
        elif kind == 7:
            bad.append([(b"authorization", b"Bearer " + b" " * (i % 50) + b"%")])
        elif kind == 8:
            bad.append([(b"x-chroma-token", bytes(range(0x80, 0x100)))])
        else:
            bad.append([(b"authorization", b"bearer " + ADMIN.encode()[: i % len(ADMIN)] + b"~")])
    seen: dict[int, int] = {}
    with httpx.Client() as http:
        for headers in bad:
            status = http.get(url, headers=headers).status_code
            seen[status] = seen.get(status, 0) + 1
    assert seen == {401: 1000}


def test_rotation_while_clients_run(secured: tuple[RouterProcess, Path], name: str) -> None:
    proc, tokens = secured
    col = client(proc, ACME_W, database="main").create_collection(name)
    col.add(ids=["a"], embeddings=[[1.0, 0.0]])
    url = f"{proc.url}/api/v2/tenants/acme/databases/main/collections/{col.id}/count"
    statuses: dict[str, list[int]] = {"old": [], "new": []}
    stop = threading.Event()

    def poll(which: str, token: str) -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                statuses[which].append(
                    http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
                )

    new_token = "rotated-t0ken"
    threads = [
        threading.Thread(target=poll, args=("old", GLOBEX_W)),
        threading.Thread(target=poll, args=("new", new_token)),
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        # Rotate: globex-app's token is replaced; its new holder works on acme.
        rotated = yaml.safe_load(tokens_yaml())
        rotated["tokens"] = [t for t in rotated["tokens"] if t["name"] != "globex-app"]
        rotated["tokens"].append(
            {"name": "acme-new", "token": new_token, "tenant": "acme", "role": "read"}
        )
        tmp = tokens.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(rotated))
        tmp.replace(tokens)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (statuses["new"][-1:] != [200]):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        tokens.write_text(tokens_yaml())
    # Before: 403 (globex on acme) and 401 (unknown); after: 401 and 200. Never a 5xx.
    assert set(statuses["old"]) <= {403, 401} and statuses["old"][-1] == 401
    assert set(statuses["new"]) <= {401, 200} and statuses["new"][-1] == 200
    assert statuses["new"][0] == 401


def test_broken_tokens_file_keeps_the_last_good(secured: tuple[RouterProcess, Path]) -> None:
    proc, tokens = secured
    url = proc.url + "/api/v2/tenants/acme"
    tokens.write_text("tokens: [{name: x, token: '" + "y" * 10 + "'}]")  # no tenant, no role
    time.sleep(1.0)
    assert httpx.get(url, headers={"X-Chroma-Token": ACME_R}).status_code == 200
    tokens.write_text(tokens_yaml())
    assert "y" * 10 not in proc.log_tail()


def test_writes_reach_peers_with_the_internal_key(
    secured: tuple[RouterProcess, Path], name: str
) -> None:
    proc, _ = secured
    col = client(proc, ACME_W, database="main").create_collection(name)
    col.add(ids=["a"], embeddings=[[1.0, 0.0]])
    metrics = httpx.get(proc.url + "/metrics").text
    peer = [
        line
        for line in metrics.splitlines()
        if line.startswith('chroma_router_cache_invalidations_total{source="peer"}')
    ]
    assert peer and float(peer[0].split()[-1]) >= 1
    # The key is for /internal routes only.
    assert "could not tell peer" not in proc.log_tail()


def test_no_token_in_logs_or_metrics(secured: tuple[RouterProcess, Path]) -> None:
    proc, _ = secured
    text = proc.log_tail() + httpx.get(proc.url + "/metrics").text
    for secret in SECRETS:
        assert secret not in text
