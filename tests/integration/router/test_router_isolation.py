"""Tenant isolation without auth: a collection resolves only inside its path's tenant
and database. Chroma 1.5.9 finds a collection by id in any tenant; the router answers
404, as Chroma's later releases do."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from router_harness import RouterProcess

pytestmark = pytest.mark.slow


def test_cross_tenant_id_is_404_on_every_route(router: RouterProcess, name: str) -> None:
    api = router.url + "/api/v2"
    for tenant in ("iso-a", "iso-b"):
        httpx.post(api + "/tenants", json={"name": tenant})
        httpx.post(f"{api}/tenants/{tenant}/databases", json={"name": "main"})
    own = f"{api}/tenants/iso-a/databases/main/collections"
    created = httpx.post(own, json={"name": name})
    assert created.status_code == 200, created.text
    cid = created.json()["id"]
    body = {"ids": [f"r{i}" for i in range(12)], "embeddings": [[float(i), 1.0] for i in range(12)]}
    assert httpx.post(f"{own}/{cid}/add", json=body).status_code == 201
    other = f"{api}/tenants/iso-b/databases/main/collections/{cid}"
    other_db = f"{api}/tenants/iso-a/databases/default_database/collections/{cid}"
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/query", {"query_embeddings": [[1.0, 1.0]], "n_results": 1}),
        ("POST", "/get", {}),
        ("GET", "/count", None),
        ("POST", "/add", {"ids": ["x"], "embeddings": [[1.0, 1.0]]}),
        ("POST", "/upsert", {"ids": ["x"], "embeddings": [[1.0, 1.0]]}),
        ("POST", "/update", {"ids": ["r1"], "embeddings": [[1.0, 1.0]]}),
        ("POST", "/delete", {"ids": ["r1"]}),
        ("PUT", "", {"new_name": "stolen"}),
    ]
    for base in (other, other_db):
        for method, suffix, payload in calls:
            reply = httpx.request(method, base + suffix, json=payload)
            assert reply.status_code == 404, (base, method, suffix, reply.text)
            assert reply.json()["error"] == "NotFoundError"
    by_id = f"{api}/tenants/iso-b/databases/main/collections/by-id/{cid}"
    assert httpx.get(by_id).status_code == 404
    # Nothing leaked into tenant B, nothing in A was touched.
    assert httpx.get(f"{api}/tenants/iso-b/databases/main/collections").json() == []
    assert httpx.get(f"{own}/{cid}/count").json() == 12
    assert httpx.get(f"{own}/{name}").json()["name"] == name
