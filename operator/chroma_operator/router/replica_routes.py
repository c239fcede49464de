"""Internal routes about replicas: their states, peer notices, repair done, backup holds.

`GET /internal/replicas` is what tools (status, repair, the operator) read; the notice
and `own` routes are router-to-router; backup holds detach one replica of a shard from
writes (they become hints) and reads until released or the hold expires.
"""

from __future__ import annotations

import time
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chroma_operator.router import validate as v
from chroma_operator.router.core import RouterCore
from chroma_operator.router.errors import ChromaHTTPError, invalid_argument, shard_unavailable
from chroma_operator.router.lost_replicas import put_mark
from chroma_operator.router.replicas import HOLD_TTL_S, Hold, Replica
from chroma_operator.router.state import State, json_response


class ReplicaRoutes:
    def __init__(self, core: RouterCore) -> None:
        self.core = core

    async def list_replicas(self, request: Request, st: State) -> Response:
        book = self.core.book
        return json_response({"router": book.router_id, "replicas": book.snapshot()})

    async def own(self, request: Request, st: State) -> Response:
        return json_response(self.core.book.own_view())

    async def notice(self, request: Request, st: State) -> Response:
        self.core.book.apply_notice(v.parse_object(await request.body()))
        return json_response({})

    async def repaired(self, request: Request, st: State) -> Response:
        """A full repair finished: the replica takes writes and reads again (peers too)."""
        body = v.parse_object(await request.body())
        rep = self.core.book.replicas.get(str(body.get("replica", "")))
        if rep is None:
            raise invalid_argument(f"unknown replica {body.get('replica')!r}")
        # Without its mark back, the next look would call it lost again. Made "long ago":
        # a young mark would make the looks take a sibling without one for a shard whose
        # marks are still being made, instead of one that lost its data.
        if not body.get("from_peer") and not await put_mark(st.pool, rep, made_at=0.0):
            raise shard_unavailable(rep.shard, rep.endpoint, "did not take its mark")
        rep.clear_repair()
        for sender in [k for k, s in rep.peer_claims.items() if s == "repairing"]:
            del rep.peer_claims[sender]
        if not body.get("from_peer"):
            await self.core.forward_to_peers(request.url.path, {**body, "from_peer": True})
        await self.core.announce_replicas()
        return json_response({"replica": rep.name, "state": self.core.book.state(rep)})

    def _target(self, body: dict[str, object]) -> Replica:
        shard, endpoint = body.get("shard"), body.get("replica")
        if not isinstance(shard, int) or not isinstance(endpoint, str):
            raise invalid_argument('expected {"shard": <int>, "replica": "<endpoint url>"}')
        rep = self.core.book.get(endpoint.rstrip("/"))
        if rep is None or rep.shard != shard:
            raise invalid_argument(f"no replica {endpoint} in shard {shard}")
        return rep

    async def hold(self, request: Request, st: State) -> Response:
        body = v.parse_object(await request.body())
        rep = self._target(body)
        book = self.core.book
        ttl = float(body.get("ttl_seconds") or HOLD_TTL_S)
        siblings = [r for r in book.replicas.values() if r.shard == rep.shard]
        mode: Literal["detached", "blocked"]
        if len(siblings) == 1:
            mode = "blocked"
        elif body.get("from_peer"):
            mode = "detached"  # the router that was asked checked; follow it
        else:
            others = [r for r in siblings if r is not rep and book.state(r) == "in-sync"]
            if not others or book.state(rep) != "in-sync":
                raise ChromaHTTPError(
                    409,
                    "ChromaError",
                    f"shard {rep.shard}: holding {rep.name} needs it and one other replica "
                    "in sync; try again when the shard has caught up",
                )
            mode = "detached"
        rep.hold = Hold(mode, time.monotonic() + ttl)
        if not body.get("from_peer"):
            await self.core.forward_to_peers(request.url.path, {**body, "from_peer": True})
        return json_response({"replica": rep.name, "mode": mode, "ttl_seconds": ttl})

    async def release(self, request: Request, st: State) -> Response:
        body = v.parse_object(await request.body())
        rep = self._target(body)
        rep.hold = None
        if not body.get("from_peer"):
            await self.core.forward_to_peers(request.url.path, {**body, "from_peer": True})
        return json_response({"replica": rep.name, "state": self.core.book.state(rep)})

    def routes(self) -> list[Route]:
        r = self.core.route
        return [
            r("/internal/replicas", self.list_replicas, ["GET"]),
            r("/internal/replicas/own", self.own, ["GET"]),
            r("/internal/replicas/notice", self.notice, ["POST"]),
            r("/internal/replicas/repaired", self.repaired, ["POST"]),
            r("/internal/backup/hold", self.hold, ["POST"]),
            r("/internal/backup/release", self.release, ["POST"]),
        ]
