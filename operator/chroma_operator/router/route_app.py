"""One route as an ASGI app: auth, the handler, Chroma-shaped errors, metrics, trace id.

This is the one place where errors become Chroma's shape: a `ChromaHTTPError` as itself,
a shard transport failure as 503 naming the shard, anything else as 500. Every answer
carries a `chroma-trace-id` (the shard's, or one minted here) and a `Server-Timing`
header.

The answer is sent before it is counted and logged (and before the response's own
background work, such as a cache fill): with one client waiting on each answer, that
bookkeeping is then off its clock. Starlette's `request_response` wrapper is not used: it
only adds an exception layer that every error here has already passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chroma_operator.data.tenant_registry import RESERVED_TENANT
from chroma_operator.router.errors import (
    ChromaHTTPError,
    error_response,
    invalid_argument,
    shard_unavailable,
)
from chroma_operator.router.permissions import CLUSTER_ADMIN, route_needs
from chroma_operator.router.shards import ShardCallError
from chroma_operator.router.state import State
from chroma_operator.router.trace import TRACE_HEADER, new_trace_id

if TYPE_CHECKING:
    from chroma_operator.router.core import RouterCore

log = logging.getLogger("chroma_operator.router")

Handler = Callable[[Request, State], Awaitable[Response]]

_TRACE_KEY = TRACE_HEADER.encode()
# Clients may not read or change the replicas' marks (a deleted one would look like a
# replica that lost its data) or the tenant registry.
RESERVED_MESSAGE = f"Tenant {RESERVED_TENANT} is reserved for the routers' own use"


def ensure_trace_id(response: Response) -> str:
    """The answer's trace id: a shard's that it already carries, or a new one added."""
    for key, value in response.raw_headers:
        if key == _TRACE_KEY:
            return value.decode("latin-1")
    trace_id = new_trace_id()
    response.raw_headers.append((_TRACE_KEY, trace_id.encode()))
    return trace_id


def log_request(request: Request, status: int, elapsed: float, trace_id: str) -> None:
    """The router's log line for one request, with the trace id a client error shows."""
    client = request.client
    log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s %s %d %.2fms trace=%s",
        f"{client.host}:{client.port}" if client else "-",
        request.method,
        request.url.path,
        status,
        elapsed * 1e3,
        trace_id,
    )


class RouteApp:
    """The ASGI app behind one route template (Starlette routes a class instance as ASGI).

    The labelled metric children are looked up once per (method, status), not per request.
    """

    def __init__(
        self, core: RouterCore, template: str, handler: Handler, methods: list[str]
    ) -> None:
        self.core = core
        self.template = template
        self.handler = handler
        self.needs = route_needs(template, methods)
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    def _children(self, method: str, status: int) -> tuple[Any, Any]:
        key = (method, status)
        found = self._series.get(key)
        if found is None:
            metrics, label = self.core.metrics, str(status)
            found = (
                metrics.requests.labels(self.template, method, label),
                metrics.latency.labels(self.template, method, label),
            )
            self._series[key] = found
        return found

    async def answer(self, request: Request) -> tuple[Response, float]:
        """The handler's response (or the error's), and how long it took."""
        core = self.core
        st = core.state
        core.metrics.in_flight.inc()
        st.in_flight += 1
        start = time.perf_counter()
        try:
            if request.path_params.get("tenant") == RESERVED_TENANT:
                raise invalid_argument(RESERVED_MESSAGE)
            core.auth.check(request, self.needs.get(request.method, CLUSTER_ADMIN))
            response = await self.handler(request, st)
        except ChromaHTTPError as exc:
            response = exc.response()
        except ShardCallError as exc:
            response = shard_unavailable(exc.shard, exc.endpoint, exc.reason).response()
        except Exception as exc:  # the client still gets Chroma's shape
            response = error_response(500, "InternalError", f"{type(exc).__name__}: {exc}")
            log.exception(
                "unhandled error on %s trace=%s", self.template, ensure_trace_id(response)
            )
        finally:
            core.metrics.in_flight.dec()
            st.in_flight -= 1
        return response, time.perf_counter() - start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response, elapsed = await self.answer(request)
        trace_id = ensure_trace_id(response)
        response.raw_headers.append((b"server-timing", b"router;dur=%.3f" % (elapsed * 1e3)))
        await response(scope, receive, send)
        status = response.status_code
        counter, histogram = self._children(request.method, status)
        counter.inc()
        histogram.observe(elapsed)
        if status >= 500 or self.core.access_log:
            log_request(request, status, elapsed, trace_id)
