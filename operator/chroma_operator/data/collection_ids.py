"""Where shard 0's other replicas keep the client-visible collection ids.

Clients see the ids of shard 0's first replica (the primary); the routers write each one
down on shard 0's other replicas, in their own tenant `chroma-operator`, so a router can
find collections while the primary is away (`router/collection_ids.py`). Two empty
collections per client collection:

- `id-<client id>` in database `collection_ids`, metadata {tenant, database, name};
- `n-<hash>` in database `collection_names`, metadata {client_id, tenant, database, name}.

A repair writes them again on a shard-0 replica it repaired (`write_entries`), from the
primary's own listing: the ids clients hold.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from chroma_operator.data.chroma_http import ChromaHTTP, db_path
from chroma_operator.data.tenant_registry import RESERVED_TENANT

IDS_DATABASE = "collection_ids"
NAMES_DATABASE = "collection_names"

Where = tuple[str, str, str]  # tenant, database, name


def id_entry(client_id: str) -> str:
    return "id-" + client_id


def name_entry(tenant: str, database: str, name: str) -> str:
    """A valid collection name for any (tenant, database, name): a hash of the three."""
    key = "\0".join((tenant, database, name)).encode()
    return "n-" + hashlib.blake2b(key, digest_size=20).hexdigest()


def entries(client_id: str, where: Where) -> list[tuple[str, str, dict[str, Any]]]:
    """(database, collection name, metadata) of both entries for one collection. Pure."""
    tenant, database, name = where
    by_id = {"tenant": tenant, "database": database, "name": name}
    return [
        (IDS_DATABASE, id_entry(client_id), by_id),
        (NAMES_DATABASE, name_entry(*where), {"client_id": client_id, **by_id}),
    ]


def ensure_entry_databases(http: ChromaHTTP) -> None:
    for database in (IDS_DATABASE, NAMES_DATABASE):
        http.ensure_database(RESERVED_TENANT, database)


def write_entries(http: ChromaHTTP, client_id: str, where: Where) -> None:
    """Both entries on one replica (`ensure_entry_databases` first), with exactly this
    metadata (an older one is updated)."""
    for database, name, metadata in entries(client_id, where):
        model = http.create_collection(
            RESERVED_TENANT, database, name, metadata=metadata, get_or_create=True
        )
        if (model.get("metadata") or {}) != metadata:
            path = f"{db_path(RESERVED_TENANT, database)}/collections/{quote(str(model['id']))}"
            http.request("PUT", path, {"new_metadata": metadata})
