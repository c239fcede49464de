"""Queries skip Starlette's route table: the shortcut must match exactly the paths that
the query route's own pattern matches, with the same parameters."""

from __future__ import annotations

import pytest
from starlette.routing import Match, Route

from chroma_operator.router.app import query_path_params
from chroma_operator.router.query_routes import QUERY_ROUTE

CID = "0b5e8a3c-1f0e-4c9a-9d64-2f1f4d5b8a11"
PATHS = [
    f"/api/v2/tenants/default_tenant/databases/default_database/collections/{CID}/query",
    f"/api/v2/tenants/t-1/databases/d.2/collections/{CID}/query",
    "/api/v2/tenants/t/databases/d/collections/not-a-uuid/query",
    f"/api/v2/tenants//databases/d/collections/{CID}/query",
    "/api/v2/tenants/t/databases/d/collections//query",
    f"/api/v2/tenants/t/databases/d/collections/{CID}/query/",
    f"/api/v2/tenants/t/databases/d/collections/{CID}/get",
    f"/api/v2/tenants/t/databases/d/collections/{CID}/query/more",
    f"/api/v1/tenants/t/databases/d/collections/{CID}/query",
    f"/api/v2/tenant/t/databases/d/collections/{CID}/query",
    f"/api/v2/tenants/t/databases/d/collection/{CID}/query",
    "/api/v2/tenants/t/databases/d/collections/query",
    "/query",
]


@pytest.mark.parametrize("path", PATHS)
def test_the_shortcut_matches_what_the_route_matches(path: str) -> None:
    route = Route(QUERY_ROUTE, lambda request: None, methods=["POST"])
    match, child = route.matches({"type": "http", "path": path, "method": "POST"})
    expected = child["path_params"] if match is Match.FULL else None
    assert query_path_params(path) == expected
