"""What each route needs when auth is on, and the role/tenant/database check. Pure.

Every route the router serves is declared here by (method, path template). A route
that is not declared needs a cluster admin token (fail closed); a unit test lists the
app's routes against this table so a new route cannot be added without a decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chroma_operator.router.tokens import ANY, ROLE_RANK, Identity, Role

API = "/api/v2"
DB = API + "/tenants/{tenant}/databases/{database}"
COLL = DB + "/collections/{collection_id}"
INTERNAL_PREFIX = "/internal/"

Scope = Literal["cluster", "tenant", "database", "any"]


@dataclass(frozen=True)
class Need:
    """`open`: no token. Otherwise a token with at least `role`, valid for `scope`:
    cluster = every tenant (tenant "*"); tenant / database = the path's; any = anywhere.
    `all_databases`: the token must cover every database of the tenant."""

    open: bool = False
    role: Role = "read"
    scope: Scope = "any"
    all_databases: bool = False
    internal: bool = False


OPEN = Need(open=True)
ANY_TOKEN = Need()
READ_TENANT = Need(role="read", scope="tenant")
READ_DB = Need(role="read", scope="database")
WRITE_DB = Need(role="write", scope="database")
ADMIN_DB = Need(role="admin", scope="database")
ADMIN_TENANT = Need(role="admin", scope="tenant", all_databases=True)
CLUSTER_ADMIN = Need(role="admin", scope="cluster")
INTERNAL = Need(role="admin", scope="cluster", internal=True)

ROUTE_NEEDS: dict[tuple[str, str], Need] = {
    # Probes and the clients' liveness checks stay open.
    ("GET", API): OPEN,
    ("GET", API + "/heartbeat"): OPEN,
    ("GET", API + "/healthcheck"): OPEN,
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    # Route templates and counts only: no tenant, collection or token in any label.
    ("GET", "/metrics"): OPEN,
    # Read-only views the operator polls, and it holds no token: replica states and the
    # placement epoch applied. Replica names, states and counts, no tenant data (the same
    # replica names are /metrics labels). Every other /internal route needs a key.
    ("GET", "/internal/replicas"): OPEN,
    ("GET", "/internal/placement"): OPEN,
    ("GET", API + "/version"): ANY_TOKEN,
    ("GET", API + "/pre-flight-checks"): ANY_TOKEN,
    ("GET", API + "/auth/identity"): ANY_TOKEN,
    ("POST", API + "/reset"): CLUSTER_ADMIN,
    ("POST", API + "/tenants"): CLUSTER_ADMIN,
    ("GET", API + "/tenants/{tenant}"): READ_TENANT,
    ("GET", API + "/tenants/{tenant}/databases"): READ_TENANT,
    ("POST", API + "/tenants/{tenant}/databases"): ADMIN_TENANT,
    ("GET", DB): READ_DB,
    ("DELETE", DB): ADMIN_DB,
    ("GET", DB + "/collections"): READ_DB,
    ("POST", DB + "/collections"): WRITE_DB,
    ("GET", DB + "/collections_count"): READ_DB,
    ("GET", DB + "/collections/by-id/{collection_id}"): READ_DB,
    ("GET", COLL): READ_DB,
    ("PUT", COLL): WRITE_DB,
    ("DELETE", COLL): WRITE_DB,
    ("POST", COLL + "/query"): READ_DB,
    ("POST", COLL + "/get"): READ_DB,
    ("GET", COLL + "/count"): READ_DB,
    ("POST", COLL + "/add"): WRITE_DB,
    ("POST", COLL + "/upsert"): WRITE_DB,
    ("POST", COLL + "/update"): WRITE_DB,
    ("POST", COLL + "/delete"): WRITE_DB,
}
FALLBACK_TEMPLATE = API + "/{rest:path}"


def need_for(method: str, template: str) -> Need:
    """The declared need; internal routes need the peers' key or a cluster admin token;
    the catch-all (405/501 answers) any valid token; anything else a cluster admin."""
    declared = ROUTE_NEEDS.get((method, template))
    if declared is not None:
        return declared
    if template.startswith(INTERNAL_PREFIX):
        return INTERNAL
    if template == FALLBACK_TEMPLATE:
        return ANY_TOKEN
    return CLUSTER_ADMIN


def route_needs(template: str, methods: list[str]) -> dict[str, Need]:
    """Per method of one route; HEAD (which Starlette adds to GET) needs what GET needs."""
    needs = {m: need_for(m, template) for m in methods}
    if "GET" in needs:
        needs.setdefault("HEAD", needs["GET"])
    return needs


def refusal(identity: Identity, need: Need, tenant: str | None, database: str | None) -> str | None:
    """Why `identity` may not do what `need` asks here (a message), or None if it may."""
    if identity.internal:
        return None if need.internal else "the router-internal key is only for /internal routes"
    if ROLE_RANK[identity.role] < ROLE_RANK[need.role]:
        return f"token {identity.name!r} has role {identity.role}; this needs {need.role}"
    if need.scope == "cluster":
        if identity.tenant != ANY:
            return f"token {identity.name!r} is bound to one tenant; this needs every tenant"
        return None
    if need.scope == "any":
        return None
    if identity.tenant not in (ANY, tenant):
        return f"token {identity.name!r} may not use tenant {tenant!r}"
    all_dbs = ANY in identity.databases
    if need.all_databases and not all_dbs:
        return f"token {identity.name!r} does not cover every database of tenant {tenant!r}"
    if need.scope == "database" and not all_dbs and database not in identity.databases:
        return f"token {identity.name!r} may not use database {database!r}"
    return None
