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
from starlette.types import ASGIApp

from chroma_operator.router.collection_routes import CollectionRoutes
from chroma_operator.router.core import RouterCore
from chroma_operator.router.record_routes import RecordRoutes
from chroma_operator.router.replica_routes import ReplicaRoutes
from chroma_operator.router.system_routes import SystemRoutes
from chroma_operator.router.topology_source import TopologySource
from chroma_operator.topology import Topology

Router = RouterCore  # the name tests and tools know the core by


def build_routes(core: RouterCore) -> list[Route]:
    """Every route, the hot record routes first (routes match in order)."""
    system = SystemRoutes(core)
    specific = [
        *RecordRoutes(core).routes(),
        *system.routes(),
        *CollectionRoutes(core).routes(),
    ]
    system.known = specific
    internal = [*system.operational_routes(), *ReplicaRoutes(core).routes()]
    return [*specific, *internal, system.fallback_route()]


class RouterApp(Starlette):
    """Starlette without its outer error middlewares: every route already turns any
    exception into Chroma's error shape (`RouterCore.route`), so those layers only cost
    time on each request."""

    def build_middleware_stack(self) -> ASGIApp:
        return self.router


def create_app(
    topology: Topology | str | Path, *, reload_interval: float = 1.0, access_log: bool = False
) -> RouterApp:
    """The router app for a topology (or a topology file, reloaded when it changes)."""
    core = RouterCore(TopologySource(topology), reload_interval, access_log)
    app = RouterApp(routes=build_routes(core), lifespan=core.lifespan)
    app.state.router = core
    return app


__all__ = ["Router", "RouterCore", "create_app"]
