"""HTTP/1.1 keep-alive client for the router's calls to shard replicas.

The router only ever sends small JSON requests to Chroma servers it knows and reads
whole JSON answers back, so it needs a fraction of what a general client does: no
cookies, redirects, proxies, compression, TLS or streaming. aiohttp spent ~0.65 ms of
CPU per shard call on that generality (measured through the router against a local
Chroma node, one client); this client, a thin layer over `httptools` (the C parser
uvicorn uses), spends about a tenth. Every sub-request of every query pays it.

What it does: a pool of keep-alive connections per endpoint (capped, waiters queue),
requests with a body and a content length, answers by content length or chunked, a
total timeout per call, and a connection that did not finish its exchange (an error, a
timeout, a cancelled hedge) is closed rather than reused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlencode, urlsplit

import httptools


class ShardHttpError(Exception):
    """The exchange failed below HTTP: refused, reset, closed early or unparsable."""


class ShardUnreachable(ShardHttpError):
    """No connection could be made: the replica is down or restarting (and may come back
    without its data), unlike an exchange cut short on a connection that was up."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]  # lower-case names; the last value of a repeated header


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange in flight on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._body: list[bytes] = []
        self._headers: dict[str, str] = {}

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ShardHttpError(f"bad HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = f"connection lost: {exc}" if exc else "server closed the connection"
        self._fail(ShardHttpError(reason))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:  # whole name and value
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(self.parser.get_status_code(), b"".join(self._body), self._headers)
        if not self.parser.should_keep_alive():
            self.close()
        self._body, self._headers = [], {}
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)

    # ours
    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def expire(self) -> None:
        """The call's deadline passed with no answer."""
        self._fail(TimeoutError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _header_lines(headers: Mapping[str, str] | None) -> bytes:
    return b"".join(
        b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in (headers or {}).items()
    )


@dataclass
class _Endpoint:
    host: str
    port: int
    host_header: bytes
    limit: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class ShardHttp:
    """Keep-alive pools to many endpoints (`http://host:port`), one call at a time each
    connection, at most `per_endpoint` connections to one endpoint."""

    def __init__(
        self,
        timeout: float,
        per_endpoint: int,
        keepalive: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.per_endpoint = per_endpoint
        self.keepalive = keepalive
        self._fixed = _header_lines(headers)
        self._endpoints: dict[str, _Endpoint] = {}

    def _endpoint(self, base: str) -> _Endpoint:
        found = self._endpoints.get(base)
        if found is None:
            parts = urlsplit(base)
            if parts.scheme != "http" or not parts.hostname:
                raise ShardHttpError(f"not a plain http endpoint: {base}")
            found = _Endpoint(
                parts.hostname,
                parts.port or 80,
                parts.netloc.encode(),
                asyncio.Semaphore(self.per_endpoint),
            )
            self._endpoints[base] = found
        return found

    def _request(
        self,
        ep: _Endpoint,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> bytes:
        content = body or b""
        length = (
            b"content-length: %d\r\n" % len(content) if body is not None or method != "GET" else b""
        )
        head = b"%s %s HTTP/1.1\r\nhost: %s\r\n%s%s%s\r\n" % (
            method.encode(),
            target.encode("latin-1"),
            ep.host_header,
            self._fixed,
            _header_lines(headers),
            length,
        )
        return head + content

    def _idle(self, ep: _Endpoint) -> _Connection | None:
        """The most recently used idle connection still fresh (least likely closed by now);
        stale ones are closed on the way."""
        now = time.monotonic()
        while ep.idle:
            conn = ep.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn
            conn.close()
        return None

    async def _checkout(self, ep: _Endpoint, deadline: float) -> _Connection:
        """A connection to `ep`, holding one of its slots; waiting for a slot or
        connecting counts against the call's deadline (a free slot and an idle connection,
        the common case, need no timeout context at all)."""
        if ep.limit.locked():
            async with asyncio.timeout_at(deadline):
                await ep.limit.acquire()
        else:
            await ep.limit.acquire()  # a free slot: returns without suspending
        try:
            return self._idle(ep) or await self._connect(ep, deadline)
        except BaseException:
            ep.limit.release()
            raise

    @staticmethod
    async def _connect(ep: _Endpoint, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(deadline):  # outside: TimeoutError is an OSError
            try:
                _, conn = await loop.create_connection(_Connection, ep.host, ep.port)
            except OSError as exc:
                raise ShardUnreachable(f"cannot connect: {exc.strerror or exc}") from exc
        return conn

    async def request(
        self,
        base: str,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One exchange; raises `ShardHttpError` or `TimeoutError` (after `timeout` s).

        The exchange itself is timed by one timer on the event loop rather than an
        `asyncio.timeout` context: it is on every sub-request's path, and the context
        costs several times more.
        """
        ep = self._endpoint(base)
        target = f"{path}?{urlencode(params)}" if params else path
        request = self._request(ep, method, target, content, headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = await self._checkout(ep, deadline)
        finished = False
        try:
            waiter = conn.send(request)
            timer = loop.call_at(deadline, conn.expire)
            try:
                answer = await waiter
            finally:
                timer.cancel()
            finished = True
        finally:
            conn.waiter = None
            ep.limit.release()
            if finished and not conn.closed:
                conn.idle_since = time.monotonic()
                ep.idle.append(conn)
            else:  # an answer may still be on its way: never hand this one out again
                conn.close()
        return answer

    async def aclose(self) -> None:
        for ep in self._endpoints.values():
            for conn in ep.idle:
                conn.close()
            ep.idle.clear()
        self._endpoints.clear()
