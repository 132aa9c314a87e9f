"""A small pooled HTTP/1.1 client for WeChat's API on asyncio: GET, JSON POST, keep-alive, TLS.

The ASGI middleware's default way to call WeChat. A login's calls are GETs of small JSON
answers on one host, and a burst of logins makes thousands of them: httpx's client layer and
httpcore's pool spend ~0.6-1.3 ms of CPU on each, this pool ~0.05 ms. It does only
what those calls need — one origin, keep-alive connections reused most-recently-used first, at
most `size` open with the other calls waiting in order, one deadline for the whole call — and
reads answers with the parser of `http11.py` (shared with the WSGI side's `sync_pool.py`).
It raises httpx's exceptions, so errors are mapped and handled exactly as with httpx.
A `transport=` option, a proxy in the environment, or an event loop other than asyncio's
take httpx's client instead (see `asgi.py`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from typing import TypeVar, cast

import httpx

from .http11 import KEEPALIVE_EXPIRY, Answer, MalformedAnswer, Origin, OtherOrigins, Reader

__all__ = ["Pool"]


_TIMEOUTS: dict[str, type[httpx.TimeoutException]] = {
    "pool": httpx.PoolTimeout,
    "connect": httpx.ConnectTimeout,
    "read": httpx.ReadTimeout,
}


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer read as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = Reader()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        try:
            answer = self.reader.feed(data)
        except MalformedAnswer as exc:
            waiter.set_exception(httpx.RemoteProtocolError(str(exc)))
            self.close()
            return
        if answer is not None:
            waiter.set_result(answer)

    def eof_received(self) -> bool | None:
        self._lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if exc is not None:
            waiter.set_exception(httpx.ReadError(str(exc) or type(exc).__name__))
            return
        try:
            answer = self.reader.feed(b"")
        except MalformedAnswer as error:
            waiter.set_exception(
                httpx.RemoteProtocolError(
                    str(error)
                    if self.reader.received
                    else "Server disconnected without sending a response."
                )
            )
            return
        if answer is not None:
            waiter.set_result(answer)
        else:
            waiter.set_exception(httpx.RemoteProtocolError("the connection closed mid-answer"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        if self.transport is None or self.closed:
            raise httpx.ReadError("the connection is closed")
        self.reader.start()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


T = TypeVar("T")


async def _until(future: asyncio.Future[T], deadline: float) -> T:
    """`future`'s result, or TimeoutError when the loop's clock reaches `deadline` first: one
    timer, where `asyncio.timeout` adds a context manager and the task's cancellation."""
    timer = future.get_loop().call_at(deadline, _expire, future)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[T]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class Pool:
    """Keep-alive connections to one origin (WeChat's API base URL), at most `size` open.
    TLS for an https URL (its scheme in any case), with `ssl_context` or httpx's default one:
    the same certificates (certifi, or SSL_CERT_FILE / SSL_CERT_DIR) verified."""

    def __init__(
        self,
        base_url: str,
        size: int,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.target = Origin.of(base_url)
        # The time a call may take when its caller gives none.
        self.timeout = timeout
        self._tls = (ssl_context or httpx.create_ssl_context()) if self.target.tls else None
        self._size = size
        self._open = 0
        self._idle: list[_Connection] = []
        self._waiting: collections.deque[asyncio.Future[_Connection]] = collections.deque()
        self._closed = False
        # Pools of the other origins called (a WeCom app's API beside WeChat's), by origin.
        self._others: OtherOrigins[Pool] = OtherOrigins(
            self.target,
            lambda other: Pool(other.origin, size, timeout, self._tls if other.tls else None),
        )

    def for_url(self, url: str) -> Pool:
        """The pool of `url`'s origin: this one, or one made alike on first use (a WeCom
        app's API, qyapi.weixin.qq.com, beside WeChat's api.weixin.qq.com)."""
        return self._others.pool(url, self)

    async def request(self, request: bytes, timeout: float) -> Answer:
        """Send `request` (bytes from `Origin.request`) and read its answer within `timeout`
        seconds, the wait for a connection included. Raises httpx's exceptions: PoolTimeout,
        ConnectTimeout or ReadTimeout as the time ran out mostly waiting for a connection, in
        connecting or in reading; ConnectError, ReadError or RemoteProtocolError."""
        # The phase the call is in, and when it began.
        started = time.monotonic()
        phase: list[object] = ["pool", started]
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            return await self._request(request, phase, deadline)
        except TimeoutError:
            name, since = cast(str, phase[0]), cast(float, phase[1])
            if name == "connect" and time.monotonic() - since < since - started:
                # Handed a free slot late, after waiting for most of the time: a pool timeout
                # (an answer too slow), not a host that cannot be connected to.
                name = "pool"
            raise _TIMEOUTS[name](f"no answer within {timeout:g} s") from None

    async def _request(self, request: bytes, phase: list[object], deadline: float) -> Answer:
        connection = await self._acquire(deadline)
        reused = connection.transport is not None
        try:
            if not reused:
                phase[:] = ["connect", time.monotonic()]
                await self._connect(connection, deadline)
            phase[0] = "read"
            answer = await _until(connection.send(request), deadline)
        except BaseException as exc:
            connection.close()
            self._release(connection)
            stale = isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError))
            if reused and stale and not connection.reader.received:
                # A kept connection the server closed before our request reached it (its idle
                # timeout): the request is made once more on a new connection, as httpx does.
                phase[:] = ["pool", time.monotonic()]
                return await self._request(request, phase, deadline)
            raise
        if not connection.reader.reusable:
            connection.close()
        self._release(connection)
        return answer

    async def _connect(self, connection: _Connection, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        host = self.target.host
        opening = loop.create_connection(
            lambda: connection,
            host,
            self.target.port,
            ssl=self._tls,
            server_hostname=host if self._tls is not None else None,
        )
        try:
            await asyncio.wait_for(opening, deadline - loop.time())
        except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11 on)
            raise TimeoutError from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc

    async def _acquire(self, deadline: float) -> _Connection:
        """An idle connection, or a new one (not yet connected) if fewer than `size` are
        open; otherwise wait in line for one another call releases."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_EXPIRY:
                return connection
            connection.close()
            self._open -= 1
        if self._open < self._size:
            self._open += 1
            return _Connection()
        waiter: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await _until(waiter, deadline)
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection in the tick it was cancelled: passed on, unused.
                self._release(waiter.result())
            else:
                # Cancelled or timed out while waiting. A release in the same tick may have
                # dropped it from the line already (it skips the done).
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
            raise

    def _release(self, connection: _Connection) -> None:
        """Give `connection` back: to the first call waiting (a closed one as a free slot for
        a new connection), else to the idle list (a closed one frees its slot)."""
        usable = connection.transport is not None and not connection.closed and not self._closed
        if not usable:
            connection.close()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection if usable else _Connection())
                return
        if usable:
            connection.waiter = None
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            self._open -= 1

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the idle connections; those in use close when their call ends."""
        for other in self._others.pools.values():
            await other.aclose()
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            self._open -= 1
