"""Loading, serving, draining: what `/ready` answers, and SIGTERM without dropped requests.

The port opens before the model is loaded, so a probe can tell "loading" (503) from "dead"
(no answer); the model loads in a thread and the API is mounted once it is in memory.

On SIGTERM the encoder first turns unready and keeps serving for `drain_delay` seconds
(Kubernetes removes the pod from the Service's endpoints meanwhile, so nothing new is sent
to a closed port), then stops accepting connections, answers every request already
accepted (the queue drains through the model) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)


@dataclass
class Lifecycle:
    """Where the process is; `ready` is what the readiness probe sees."""

    loaded: bool = False
    draining: bool = False
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.loaded and not self.draining and self.error is None


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class LoadingGate:
    """ASGI app: 503 while `load()` runs in a thread, then the loaded app serves everything.

    `on_failure` is called (on the event loop) when loading fails, e.g. to stop the server.
    """

    def __init__(
        self,
        load: Callable[[], Starlette],
        lifecycle: Lifecycle,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._load_fn = load
        self.lifecycle = lifecycle
        self._on_failure = on_failure
        self._app: Starlette | None = None
        self._task: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def app(self) -> Starlette | None:
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self._app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if self.lifecycle.error is not None:
            body = {"error": f"the model failed to load: {self.lifecycle.error}"}
        else:
            body = {"error": "the model is loading"}
        await _json(send, 503, {**body, "error_type": "Unhealthy"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._task = asyncio.create_task(self._load(), name="model-load")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._task is not None and not self._task.done():
                    self._task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._task
                await self._stack.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            app = await asyncio.to_thread(self._load_fn)
            await self._stack.enter_async_context(app.router.lifespan_context(app))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # reported, and the server is told to stop
            self.lifecycle.error = str(exc) or type(exc).__name__
            log.error("loading the model failed: %s", self.lifecycle.error)
            if self._on_failure is not None:
                self._on_failure(exc)
            return
        self._app = app
        self.lifecycle.loaded = True
        log.info("model loaded in %.1fs; ready", time.perf_counter() - t0)


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM drains: unready for `drain_delay` s, then shut down.

    uvicorn's own shutdown then closes the listener and waits (up to the config's
    `timeout_graceful_shutdown`) for every accepted request to be answered. A second
    signal, or SIGINT, stops at once as uvicorn always does.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_delay: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_delay = drain_delay
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if (
            sig == signal.SIGTERM
            and self._drain_until is None
            and self.drain_delay > 0
            and self.lifecycle.loaded
        ):
            self.lifecycle.draining = True
            self._drain_until = time.monotonic() + self.drain_delay
            self._captured_signals.append(sig)
            log.info(
                "SIGTERM: unready; serving %.1fs more, then draining the queue", self.drain_delay
            )
            return
        self.lifecycle.draining = True
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            log.info("drain delay over: no new connections; finishing accepted requests")
            self.should_exit = True
        return await super().on_tick(counter)
