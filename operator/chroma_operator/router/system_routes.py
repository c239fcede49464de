"""Server-level routes: heartbeat, version, identity, tenants, databases, reset, health.

Tenants and databases exist on every replica of every shard, so creates go everywhere;
what every shard answers the same (version, identity, a tenant) is asked of shard 0.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from chroma_operator.router import validate as v
from chroma_operator.router.auth import identity_of
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import error_response
from chroma_operator.router.fanout import first_ok, require_ok
from chroma_operator.router.state import (
    API,
    DB,
    State,
    auth_headers,
    json_response,
    passthrough,
    shard_path,
)


class SystemRoutes:
    def __init__(self, core: RouterCore) -> None:
        self.core = core
        self.known: list[Route] = []  # every specific route, for 405 vs 404

    async def heartbeat(self, request: Request, st: State) -> Response:
        return json_response({"nanosecond heartbeat": time.time_ns()})

    async def shard0_read(self, request: Request, st: State) -> Response:
        """Reads every shard answers the same (version, identity, tenants): ask shard 0."""
        path = shard_path(request)
        reply = await st.pool.read(
            0,
            "GET",
            lambda ep: path,
            params=dict(request.query_params),
            headers=auth_headers(request),
        )
        return passthrough(reply)

    async def identity(self, request: Request, st: State) -> Response:
        """With auth on, the token's tenant and databases (so a client lands there)."""
        who = identity_of(request)
        if who is None:
            return await self.shard0_read(request, st)
        return json_response(who.as_user_identity())

    async def preflight_checks(self, request: Request, st: State) -> Response:
        return json_response(await self.core.preflight(st, auth_headers(request)))

    async def everywhere_create(self, request: Request, st: State) -> Response:
        """Created anywhere counts as created: a retry after a partial failure converges."""
        raw = await request.body()
        v.parse_json(raw)
        replies = await self.core.on_every_replica(
            st, "POST", shard_path(request), raw, auth_headers(request)
        )
        require_ok(replies, allowed=frozenset({409}))
        return passthrough(first_ok(replies) or replies[0])

    async def delete_database(self, request: Request, st: State) -> Response:
        replies = await self.core.on_every_replica(
            st, "DELETE", shard_path(request), None, auth_headers(request)
        )
        st.collections.forget_database(
            request.path_params["tenant"], request.path_params["database"]
        )
        require_ok(replies, allowed=frozenset({404}))
        return passthrough(first_ok(replies) or replies[0])

    async def reset(self, request: Request, st: State) -> Response:
        replies = await self.core.on_every_replica(
            st, "POST", "/reset", None, auth_headers(request)
        )
        st.collections.forget_all()
        self.core.tenants.forget_all()  # the registry went with everything else
        self.core.ids.forget_all()  # and so did the collection id entries
        st.cache = self.core.new_cache(st.topology)
        bad = [r for r in replies if not r.ok]
        return passthrough(bad[0] if bad else replies[0])

    async def internal_invalidate(self, request: Request, st: State) -> Response:
        """A peer router took a write: forget cached answers (and ids, on delete)."""
        body = v.parse_object(await request.body())
        client_id = str(body.get("collection_id", ""))
        st.cache.invalidate(client_id)
        self.core.metrics.cache_invalidations.labels("peer").inc()
        if body.get("forget"):
            st.collections.forget(str(body.get("tenant")), str(body.get("database")), client_id)
        return json_response({})

    async def internal_topology(self, request: Request, st: State) -> Response:
        """The topology this router serves (tools such as backup find the replicas here)."""
        return Response(st.topology.to_json(), 200, media_type="application/json")

    async def healthz(self, request: Request, st: State) -> Response:
        return json_response(
            {
                "status": "ok",
                "cluster": st.topology.cluster,
                "shards": st.pool.num_shards,
                "epoch": self.core.applied_epoch(),
            }
        )

    async def internal_placement(self, request: Request, st: State) -> Response:
        """The placement this router serves; `epoch` counts only once older requests ended."""
        p = st.topology.current_placement()
        return json_response(
            {
                "epoch": self.core.applied_epoch(),
                "topology_epoch": p.epoch,
                "phase": p.phase,
                "shards": p.shards,
                "previous_shards": p.previous_shards,
            }
        )

    async def readyz(self, request: Request, st: State) -> Response:
        targets = st.pool.all_endpoints()
        up = await asyncio.gather(*(st.pool.ping(s, ep) for s, ep in targets))
        shards: dict[int, bool] = {}
        for (s, _), ok in zip(targets, up, strict=True):
            shards[s] = shards.get(s, False) or ok
        down = sorted(s for s, ok in shards.items() if not ok)
        body = {"ready": not down, "shards_down": down}
        return json_response(body, 200 if not down else 503)

    async def metrics_endpoint(self, request: Request, st: State) -> Response:
        registry = self.core.metrics.registry
        return Response(generate_latest(registry), 200, media_type=CONTENT_TYPE_LATEST)

    async def unsupported(self, request: Request, st: State) -> Response:
        """A known path with another method is 405, as Chroma answers; the rest 404/501."""
        for route in self.known:
            match, _ = route.matches(request.scope)
            if match == Match.PARTIAL:
                return error_response(
                    405, "ChromaError", f"Method {request.method} not allowed on this path"
                )
        return error_response(
            501,
            "ChromaError",
            f"{request.method} {request.url.path} is not supported by the chroma-operator router",
        )

    def routes(self) -> list[Route]:
        r = self.core.route
        return [
            r(API, self.heartbeat, ["GET"]),  # the async client's heartbeat()
            r(API + "/heartbeat", self.heartbeat, ["GET"]),
            r(API + "/version", self.shard0_read, ["GET"]),
            r(API + "/healthcheck", self.shard0_read, ["GET"]),
            r(API + "/pre-flight-checks", self.preflight_checks, ["GET"]),
            r(API + "/auth/identity", self.identity, ["GET"]),
            r(API + "/reset", self.reset, ["POST"]),
            r(API + "/tenants", self.everywhere_create, ["POST"]),
            r(API + "/tenants/{tenant}", self.shard0_read, ["GET"]),
            r(API + "/tenants/{tenant}/databases", self.shard0_read, ["GET"]),
            r(API + "/tenants/{tenant}/databases", self.everywhere_create, ["POST"]),
            r(DB, self.shard0_read, ["GET"]),
            r(DB, self.delete_database, ["DELETE"]),
        ]

    def operational_routes(self) -> list[Route]:
        r = self.core.route
        return [
            r("/internal/invalidate", self.internal_invalidate, ["POST"]),
            r("/internal/topology", self.internal_topology, ["GET"]),
            r("/internal/placement", self.internal_placement, ["GET"]),
            r("/healthz", self.healthz, ["GET"]),
            r("/readyz", self.readyz, ["GET"]),
            r("/metrics", self.metrics_endpoint, ["GET"]),
        ]

    def fallback_route(self) -> Route:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return self.core.route(API + "/{rest:path}", self.unsupported, methods)
