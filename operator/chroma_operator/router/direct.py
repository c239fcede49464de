"""Queries served straight on uvicorn's HTTP protocol, outside the ASGI cycle.

Every query pays for the ASGI layers between the socket and the route: uvicorn's
`run_asgi` wrapper, the Starlette app, an ASGI message per part of the answer and
uvicorn's checks of every header it writes. The query route needs none of it: its
`RouteApp` already shapes every error, and its answer is one `Response` with a body.
So `DirectProtocol` hands a request for that route to the route itself, which reads the
body through uvicorn's own `receive` (flow control, `100 Continue` and disconnects stay
uvicorn's), and writes the answer's head and body in one write, as uvicorn would have
(its `date` and `server` headers, `connection: close` when the connection ends).
Everything else, and a query on any uvicorn that does not start requests through
`_start_asgi_task`, goes through ASGI as before.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from chroma_operator.router.app import query_path_params
from chroma_operator.router.one_write import OneWriteHttpToolsProtocol
from chroma_operator.router.route_app import RouteApp

log = logging.getLogger("chroma_operator.router")


def answer_bytes(cycle: RequestResponseCycle, response: Response) -> bytes:
    """A whole answer, head and body, as uvicorn would write it for this request."""
    head: list[bytes | memoryview] = [STATUS_LINE[response.status_code]]
    for name, value in (*cycle.default_headers, *response.raw_headers):
        head += (name, b": ", value, b"\r\n")
    if not cycle.keep_alive:
        head.append(b"connection: close\r\n")
    head += (b"\r\n", response.body)
    return b"".join(head)


async def serve(cycle: RequestResponseCycle, route: RouteApp, params: dict[str, str]) -> None:
    """One request to `route`, from its body to its answer on the wire and its metrics."""
    try:
        scope: Any = cycle.scope
        scope["path_params"] = params
        receive = cast(Receive, cycle.receive)
        request = Request(scope, receive)
        response, elapsed = await route.answer(request)
        trace_id = route.stamp(response, elapsed)
        if getattr(response, "body", None) is None:  # a streamed answer: through ASGI
            await response(scope, receive, cast(Send, cycle.send))
            route.record(request, response.status_code, elapsed, trace_id)
            return
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if not cycle.disconnected:  # as uvicorn: an answer to a client that left goes nowhere
            cycle.response_started = True
            cycle.waiting_for_100_continue = False
            cycle.transport.write(answer_bytes(cycle, response))
            cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive:
                cycle.transport.close()
            cycle.on_response()
        if response.background is not None:
            await response.background()
        route.record(request, response.status_code, elapsed, trace_id)
    except BaseException as exc:  # as uvicorn's run_asgi: a 500 if nothing went out yet
        log.error("error serving %s", route.template, exc_info=exc)
        if not cycle.response_started:
            await cycle.send_500_response()
        else:
            cycle.transport.close()
    finally:
        cycle.on_response = lambda: None  # as uvicorn: no cycle keeps the protocol alive


class DirectProtocol(OneWriteHttpToolsProtocol):
    """uvicorn's httptools protocol (one write per answer) that serves queries itself.

    `query_route` is set on a subclass made for one app (`direct_protocol`).
    """

    query_route: RouteApp | None = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        route = self.query_route
        scope = cycle.scope
        if (
            route is not None
            and app is self.app  # not uvicorn's own 503 for too many connections
            and scope["method"] == "POST"
            and not scope["root_path"]
        ):
            params = query_path_params(scope["path"])
            if params is not None:
                task = self.loop.create_task(serve(cycle, route, params))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                return
        super()._start_asgi_task(cycle, app)


def direct_protocol(query_route: RouteApp) -> type[DirectProtocol]:
    """The protocol class (uvicorn's `http=`) that serves `query_route` directly."""
    return type("DirectQueryProtocol", (DirectProtocol,), {"query_route": query_route})
