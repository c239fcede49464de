"""What a repair writes into the routers' own tenant once the records are fixed: the
tenant registry on every replica, and the client collection ids on shard 0's other
replicas. Marks are not copied: a router puts those back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_operator.data.chroma_http import ChromaCallError
from chroma_operator.data.collection_ids import ensure_entry_databases, write_entries
from chroma_operator.data.tenant_registry import register
from chroma_operator.repair import plan
from chroma_operator.repair.plan import Replica

if TYPE_CHECKING:
    from chroma_operator.repair.run import Repairer


def write_reserved(repairer: Repairer, shards: list[list[Replica]]) -> None:
    register_tenants(repairer, [r for replicas in shards for r in replicas])
    if shards:
        write_collection_ids(repairer, shards[0])


def _left_alone(repairer: Repairer, r: Replica) -> bool:
    return r.name in repairer.report.skipped or r.state == plan.FENCED


def register_tenants(repairer: Repairer, replicas: list[Replica]) -> None:
    """Every replica (one repaired from scratch too) holds the tenant registry."""
    for r in replicas:
        if _left_alone(repairer, r):
            continue
        try:
            register(repairer.http(r), repairer.tenants)
        except ChromaCallError as exc:
            repairer.report.warnings.append(f"{r.name}: tenant registry not written: {exc}")


def write_collection_ids(repairer: Repairer, shard0: list[Replica]) -> None:
    """Shard 0's other replicas hold the client id of every collection, read from the
    first replica (the ids clients hold), so routers find collections while it is away
    (`data/collection_ids.py`)."""
    primary = next((r for r in shard0 if r.ordinal == 0), None)
    others = [r for r in shard0 if r is not primary and not _left_alone(repairer, r)]
    if not others:
        return
    if primary is None or not primary.in_sync or _left_alone(repairer, primary):
        repairer.report.warnings.append(
            "collection ids not written: shard 0's first replica is not in sync"
        )
        return
    source = repairer.http(primary)
    try:
        found = [
            (str(c["id"]), (tenant, database, str(c["name"])))
            for tenant in repairer.tenants
            for database in source.list_databases(tenant)
            for c in source.list_collections(tenant, database)
        ]
        for r in others:
            ensure_entry_databases(repairer.http(r))
            for client_id, where in found:
                write_entries(repairer.http(r), client_id, where)
    except ChromaCallError as exc:
        repairer.report.warnings.append(f"collection ids not written: {exc}")
