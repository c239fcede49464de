"""uvicorn's HTTP protocol, with each answer's head and body leaving in one write.

uvicorn writes a response's status line and headers as soon as the app starts it, and
the body in a second write. On a connection with `TCP_NODELAY` (uvloop sets it) those
are two system calls and two TCP segments, and the client wakes for the head alone, reads
it, and waits again for the body: per answer, one more wake-up on both sides of a hop
that every query pays. Here the head is held back until the body's write (which a
Starlette `Response` sends in the same step of the event loop) and both go out together.
A head whose body does not come in that step (a stream) still leaves on the next turn
of the loop, so nothing waits on it; bytes never change order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeldHeadTransport:
    """A transport that holds a response head until the next write, or the next turn
    of the loop, whichever comes first (an interim `100 Continue` too: one turn at most).
    Everything else is the transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif isinstance(data, bytes) and data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `HeldHeadTransport` (pass as `http=`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        held = HeldHeadTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(held)  # type: ignore[arg-type]
