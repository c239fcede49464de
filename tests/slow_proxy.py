"""A TCP proxy on loopback that can delay one direction: a slow network to a real shard.

Used to make one Chroma shard slow in end-to-end tests without touching its code: the
router really waits, its histograms really see it. `probability` below 1 delays only that
share of requests (a request is one chunk at these sizes): a replica that is sometimes slow.
`server_bytes` keeps what the server sent, so a test can check what the router forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading

from chroma_operator.local.chroma_server import free_port


class DelayProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.delay = 0.0
        self.probability = 1.0  # share of chunks towards the server that get the delay
        self._rng = random.Random(7)
        self.server_bytes = bytearray()  # everything the server answered, in order
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if slow and self.delay and self._rng.random() < self.probability:
                    await asyncio.sleep(self.delay)
                if not slow:
                    self.server_bytes += data
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, slow=True), self._pipe(up_reader, writer, slow=False)
        )

    def start(self) -> DelayProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop
        )
        self._server = future.result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
