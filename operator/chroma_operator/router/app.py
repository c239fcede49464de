"""The router's ASGI app: Chroma's HTTP API v2 over N shards.

`create_app(topology_or_path)` builds a Starlette app from the route modules:
`system_routes` (heartbeat, tenants, databases, health), `collection_routes` and
`record_routes`. Each request takes one snapshot of the router state (topology, shard
pool, collection map, cache) from `RouterCore`, so a topology reload in the middle of a
request never mixes two shard sets.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chroma_operator.router.collection_routes import CollectionRoutes
from chroma_operator.router.core import RouterCore
from chroma_operator.router.query_routes import QUERY_ROUTE, QueryRoutes
from chroma_operator.router.record_routes import RecordRoutes
from chroma_operator.router.replica_routes import ReplicaRoutes
from chroma_operator.router.system_routes import SystemRoutes
from chroma_operator.router.topology_source import TopologySource
from chroma_operator.topology import Topology

Router = RouterCore  # the name tests and tools know the core by


def build_routes(core: RouterCore) -> list[Route]:
    """Every route, the hot record routes first (routes match in order)."""
    system = SystemRoutes(core)
    records = RecordRoutes(core)
    specific = [
        *QueryRoutes(core, records).routes(),
        *records.routes(),
        *system.routes(),
        *CollectionRoutes(core).routes(),
    ]
    system.known = specific
    internal = [*system.operational_routes(), *ReplicaRoutes(core).routes()]
    return [*specific, *internal, system.fallback_route()]


QUERY_PARTS = ("", "api", "v2", "tenants", None, "databases", None, "collections", None, "query")


def query_path_params(path: str) -> dict[str, str] | None:
    """The path parameters of `POST .../collections/{id}/query`, or None for any other
    path (what Starlette's route for it would match: no segment empty)."""
    parts = path.split("/")
    if len(parts) != len(QUERY_PARTS):
        return None
    for part, fixed in zip(parts, QUERY_PARTS, strict=True):
        if part != fixed and (fixed is not None or not part):
            return None
    return {"tenant": parts[4], "database": parts[6], "collection_id": parts[8]}


class QueryDispatch:
    """Queries, the hot path, go straight to their route's app; everything else through
    Starlette's router (which tries every route's pattern in turn)."""

    def __init__(self, router: ASGIApp, query: ASGIApp) -> None:
        self.router = router
        self.query = query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            params = query_path_params(scope["path"])
            if params is not None:
                scope["path_params"] = params
                await self.query(scope, receive, send)
                return
        await self.router(scope, receive, send)


class RouterApp(Starlette):
    """Starlette without its outer error middlewares: every route already turns any
    exception into Chroma's error shape (`RouteApp`), so those layers only cost time on
    each request. Queries skip the route table (`QueryDispatch`)."""

    def build_middleware_stack(self) -> ASGIApp:
        query = next(r for r in self.routes if isinstance(r, Route) and r.path == QUERY_ROUTE)
        return QueryDispatch(self.router, query.app)


def create_app(
    topology: Topology | str | Path, *, reload_interval: float = 1.0, access_log: bool = False
) -> RouterApp:
    """The router app for a topology (or a topology file, reloaded when it changes)."""
    core = RouterCore(TopologySource(topology), reload_interval, access_log)
    app = RouterApp(routes=build_routes(core), lifespan=core.lifespan)
    app.state.router = core
    return app


__all__ = ["Router", "RouterCore", "create_app"]
