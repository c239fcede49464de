"""Set a tuned efSearch on the live collection, through the router (every shard).

The tuning Job does this itself when the spec asks (`tune --apply-ef-search`): it holds
the cluster's job token, the operator holds no Secrets. The operator still calls it for
a result from a Job that did not apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

TENANT_PATH = "/api/v2/tenants/default_tenant/databases/default_database/collections"


async def apply_ef_search(
    router_url: str, collection: str, ef_search: int, headers: Mapping[str, str] | None = None
) -> None:
    """Set ef_search on the collection through the router (which modifies every shard).

    Chroma 1.5 stores it at once but a loaded index keeps its old value until the shard
    restarts; the caller records that the reload is still pending.
    """
    async with httpx.AsyncClient(
        base_url=router_url, timeout=30.0, headers=dict(headers or {})
    ) as http:
        found = await http.get(f"{TENANT_PATH}/{collection}")
        found.raise_for_status()
        collection_id = found.json()["id"]
        changed = await http.put(
            f"{TENANT_PATH}/{collection_id}",
            json={"new_configuration": {"hnsw": {"ef_search": ef_search}}},
        )
        changed.raise_for_status()


def apply_result(
    router_url: str, collection: str, ef_search: int, token: str | None
) -> dict[str, object]:
    """Apply, and say how it went in the result's terms: `appliedEfSearch` or `applyError`."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        asyncio.run(apply_ef_search(router_url, collection, ef_search, headers))
    except httpx.HTTPError as exc:
        return {"applyError": f"could not apply efSearch {ef_search}: {exc}"[:400]}
    return {"appliedEfSearch": ef_search}
