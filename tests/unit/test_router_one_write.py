"""Each router answer leaves in one write: head and body together, bytes never reordered.

The transport tests record what reaches a real socket pair's transport on a real loop;
the server test runs uvicorn with the protocol and reads the first segment a client gets.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chroma_operator.local.chroma_server import free_port
from chroma_operator.router.one_write import HeldHeadTransport, OneWriteHttpToolsProtocol

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recording(asyncio.Protocol):
    """The far end of a socket pair: every chunk as it arrived."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)


async def pair() -> tuple[HeldHeadTransport, Recording, asyncio.AbstractEventLoop]:
    loop = asyncio.get_running_loop()
    near, far = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, near)
    far_end = Recording()
    await loop.connect_accepted_socket(lambda: far_end, far)
    return HeldHeadTransport(transport, loop), far_end, loop  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_head_and_body_written_in_one_step_arrive_as_one_chunk() -> None:
    held, far, _ = await pair()
    held.write(HEAD)
    held.write(b"{}")
    await settle()
    assert far.chunks == [HEAD + b"{}"]
    held.close()


async def test_a_head_alone_still_leaves_on_the_next_turn_of_the_loop() -> None:
    held, far, _ = await pair()
    held.write(HEAD)
    await settle()
    assert far.chunks == [HEAD]
    held.write(b"{}")  # a streamed body, later: after the head, never before
    await settle()
    assert b"".join(far.chunks) == HEAD + b"{}"
    held.close()


async def test_other_writes_pass_straight_through_and_close_flushes_a_held_head() -> None:
    held, far, _ = await pair()
    held.write(b"HTTP/1.1 100 Continue")  # not a whole head: not held
    held.write(HEAD)
    held.close()
    await settle()
    assert b"".join(far.chunks) == b"HTTP/1.1 100 Continue" + HEAD
    assert held.is_closing()  # everything else is the transport's own


async def small(_: Request) -> Response:
    return Response(b'{"nanosecond heartbeat":1}', media_type="application/json")


async def stream(_: Request) -> StreamingResponse:
    async def parts():  # type: ignore[no-untyped-def]
        for part in (b"a", b"b"):
            await asyncio.sleep(0.01)
            yield part

    return StreamingResponse(parts())


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
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # keep-alive: every answer on the connection, not just the first
            writer.write(b"GET /small HTTP/1.1\r\nhost: x\r\n\r\n")
            first = await reader.read(65536)  # the first segment that arrives, as it is
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first.endswith(b'\r\n\r\n{"nanosecond heartbeat":1}')
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
