"""Which tenants hold collections: Chroma 1.5.9 has no call that lists tenants.

Routers write it (`router/tenant_registry.py`): every tenant a router creates a collection
in, or finds one of, gets a collection in database `tenants` of the routers' own tenant
`chroma-operator`, on every replica, carrying the tenant's name in its metadata. Backup,
repair and resharding read it straight from the replicas, so they cover every tenant in use
without being told (`--tenant` still adds tenants a router has not seen since it started
writing this).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from chroma_operator.data.chroma_http import DEFAULT_TENANT, ChromaCallError, ChromaHTTP

RESERVED_TENANT = "chroma-operator"  # the routers' own: clients may not name it
REGISTRY_DATABASE = "tenants"
# Never registered: every tool covers the first, and the second is never copied.
UNREGISTERED = frozenset({DEFAULT_TENANT, RESERVED_TENANT})


def registry_name(tenant: str) -> str:
    """A valid collection name for any tenant name (the name itself is in the metadata)."""
    return "t-" + hashlib.blake2b(tenant.encode(), digest_size=20).hexdigest()


def tenants_in(listing: Iterable[dict[str, Any]]) -> set[str]:
    """The tenant names a listing of the registry database names. Pure."""
    found = set()
    for model in listing:
        tenant = (model.get("metadata") or {}).get("tenant")
        if isinstance(tenant, str) and tenant and tenant not in UNREGISTERED:
            found.add(tenant)
    return found


def registered_tenants(replicas: Iterable[ChromaHTTP]) -> set[str]:
    """Every tenant registered on any of these replicas that answers (one that lost its
    data, or a new shard, may lack some: registrations go to every replica)."""
    found: set[str] = set()
    for http in replicas:
        try:
            found |= tenants_in(http.list_collections(RESERVED_TENANT, REGISTRY_DATABASE))
        except ChromaCallError:
            continue  # down: the other replicas hold the same registrations
    return found


def registered_at(urls: Iterable[str], headers: dict[str, str] | None = None) -> set[str]:
    """`registered_tenants` of the replicas at these URLs (each asked once, no retries)."""
    found: set[str] = set()
    for url in urls:
        with ChromaHTTP(url, headers=headers, timeout=10.0, retries=0) as http:
            found |= registered_tenants([http])
    return found


def tenants_to_cover(named: Iterable[str], registered: Iterable[str]) -> list[str]:
    """`default_tenant` first, then the named and registered tenants, each once. Pure."""
    rest = {t for t in [*named, *registered] if t and t not in UNREGISTERED}
    return [DEFAULT_TENANT, *sorted(rest)]


def register(http: ChromaHTTP, tenants: Iterable[str]) -> None:
    """Write `tenants` into this replica's registry, as a router does (what is there stays):
    a repaired replica or a new shard holds the registry like the others."""
    wanted = [t for t in tenants if t not in UNREGISTERED]
    if not wanted:
        return
    http.ensure_database(RESERVED_TENANT, REGISTRY_DATABASE)
    for tenant in wanted:
        http.create_collection(
            RESERVED_TENANT,
            REGISTRY_DATABASE,
            registry_name(tenant),
            metadata={"tenant": tenant},
            get_or_create=True,
        )
