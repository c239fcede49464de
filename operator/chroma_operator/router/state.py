"""Per-topology router state and the small response helpers every route module shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from chroma_operator.router.cache import QueryCache
from chroma_operator.router.collections import CollectionMap
from chroma_operator.router.exact_cache import ExactVectors
from chroma_operator.router.placement import Routing
from chroma_operator.router.recall import RecallSampler
from chroma_operator.router.shards import Reply, ShardPool
from chroma_operator.router.trace import trace_headers
from chroma_operator.topology import Topology

API = "/api/v2"
DB = API + "/tenants/{tenant}/databases/{database}"
COLL = DB + "/collections/{collection_id}"
PARTIAL_HEADER = "X-Chroma-Partial-Shards"
PASS_HEADERS = ("authorization", "x-chroma-token")


@dataclass
class State:
    """Everything that depends on one topology: a request keeps one snapshot of it."""

    topology: Topology
    pool: ShardPool
    collections: CollectionMap
    cache: QueryCache
    recall: RecallSampler
    preflight: dict[str, Any] | None = None
    routing: Routing = field(init=False)
    exact_vectors: ExactVectors = field(init=False)
    in_flight: int = 0  # requests still running on this snapshot (epoch reporting)

    def __post_init__(self) -> None:
        self.routing = Routing.of(self.topology.current_placement())
        self.exact_vectors = ExactVectors(max_age_s=self.topology.router.cache.ttl_seconds)

    @property
    def partial_ok(self) -> bool:
        return self.topology.router.partial_results


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(obj), status, dict(headers or {}), "application/json")


def passthrough(reply: Reply) -> Response:
    """A shard's answer, forwarded byte for byte."""
    return Response(
        reply.body, reply.status, trace_headers(reply.trace_id) or None, "application/json"
    )


def auth_headers(request: Request) -> dict[str, str]:
    """Credentials travel to the shards unchanged."""
    return {h: request.headers[h] for h in PASS_HEADERS if h in request.headers}


def shard_path(request: Request) -> str:
    """The request's path as a shard sees it (below /api/v2)."""
    return request.url.path.removeprefix(API)


def partial_headers(failed: list[int]) -> dict[str, str]:
    return {PARTIAL_HEADER: ",".join(map(str, failed))} if failed else {}
