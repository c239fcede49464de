"""Each router answer leaves in one write: head and body together, bytes never reordered.

The transport tests record each write the held-head transport makes on a real socket
pair's transport, on a real loop, and what arrives at the far end;
the server test runs uvicorn with the protocol and reads, on a thread of its own, the first
segment a client gets.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chroma_operator.local.chroma_server import free_port
from chroma_operator.router.one_write import HeldHeadTransport, OneWriteHttpToolsProtocol
from kubectl import eventually

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Received(asyncio.Protocol):
    """The far end of a socket pair: the bytes that arrived."""

    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


class Wire:
    """The near end's real transport, with each write it was asked to make on record (a
    client on the same loop reads only after the step, so it cannot count writes)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def pair() -> tuple[HeldHeadTransport, Wire, Received]:
    loop = asyncio.get_running_loop()
    near, far = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, near)
    received = Received()
    await loop.connect_accepted_socket(lambda: received, far)
    wire = Wire(transport)  # type: ignore[arg-type]
    return HeldHeadTransport(wire, loop), wire, received  # type: ignore[arg-type]


async def arrived(far: Received, expected: bytes) -> bytes:
    """What the far end got, once it is `expected` (or the wait's error)."""

    async def data() -> bytes:
        await asyncio.sleep(0)
        return far.data

    return await eventually(data, lambda d: d == expected, timeout=5)


async def test_head_and_body_written_in_one_step_leave_in_one_write() -> None:
    held, wire, far = await pair()
    held.write(HEAD)
    held.write(b"{}")
    assert wire.writes == [HEAD + b"{}"]
    assert await arrived(far, HEAD + b"{}") == HEAD + b"{}"
    held.close()


async def test_a_head_alone_still_leaves_on_the_next_turn_of_the_loop() -> None:
    held, wire, far = await pair()
    held.write(HEAD)
    assert wire.writes == []  # held for now
    assert await arrived(far, HEAD) == HEAD
    held.write(b"{}")  # a streamed body, later: after the head, never before
    assert wire.writes == [HEAD, b"{}"]
    assert await arrived(far, HEAD + b"{}") == HEAD + b"{}"
    held.close()


async def test_other_writes_pass_straight_through_and_close_flushes_a_held_head() -> None:
    held, wire, far = await pair()
    held.write(b"HTTP/1.1 100 Continue")  # not a whole head: not held
    assert wire.writes == [b"HTTP/1.1 100 Continue"]
    held.write(HEAD)
    held.close()
    assert wire.writes == [b"HTTP/1.1 100 Continue", HEAD]
    expected = b"HTTP/1.1 100 Continue" + HEAD
    assert await arrived(far, expected) == expected
    assert held.is_closing()  # everything else is the transport's own


async def small(_: Request) -> Response:
    return Response(b'{"nanosecond heartbeat":1}', media_type="application/json")


async def stream(_: Request) -> StreamingResponse:
    async def parts():  # type: ignore[no-untyped-def]
        for part in (b"a", b"b"):
            await asyncio.sleep(0.01)
            yield part

    return StreamingResponse(parts())


def first_segments(port: int, path: bytes, times: int) -> list[bytes]:
    """A blocking client on its own thread: what its first `recv` got for each of
    `times` requests on one keep-alive connection. A client on the server's own loop
    could not tell one write from two: it reads only after the server's step is done."""
    firsts = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(times):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nhost: x\r\n\r\n")
            firsts.append(sock.recv(65536))  # returns as soon as the first segment is in
            while not firsts[-1].endswith(b"}"):  # the rest of a split answer, if any
                more = sock.recv(65536)
                if not more:
                    break
                firsts[-1] += b"|" + more  # marks where the answer was split
    return firsts


async def test_uvicorn_with_the_protocol_sends_a_whole_answer_in_the_first_segment() -> None:
    app = Starlette(routes=[Route("/small", small), Route("/stream", stream)])
    port = free_port()
    config = uvicorn.Config(
        app, port=port, http=OneWriteHttpToolsProtocol, loop="none", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        # keep-alive: every answer on the connection, not just the first
        for first in await asyncio.to_thread(first_segments, port, b"/small", 100):
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first.endswith(b'\r\n\r\n{"nanosecond heartbeat":1}')
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"0\r\n\r\n"):
            answer += await asyncio.wait_for(reader.read(65536), 5)
        assert b"transfer-encoding: chunked" in answer
        assert answer.endswith(b"\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n")
        writer.close()
    finally:
        server.should_exit = True
        await serving
