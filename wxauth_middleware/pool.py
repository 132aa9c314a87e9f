"""A small pooled HTTP/1.1 client for WeChat's API on asyncio: GET, JSON POST, keep-alive, TLS.

The ASGI middleware's default way to call WeChat. A login's two calls are GETs of small JSON
answers on one host, and a burst of logins makes thousands of them: httpx's client layer and
httpcore's pool spend ~0.6-1.3 ms of CPU on each, this pool ~0.05 ms. It does only what those
calls need — one origin (another one, a WeCom app's, gets a pool of its own: `for_url`), GET
(and a POST of a JSON body, for the account's stable_token), Content-Length or chunked bodies,
keep-alive connections reused most-recently-used first, at most `max_connections` open with
the other calls waiting in order — and raises httpx's exceptions, so errors are mapped and
handled exactly as with httpx.
A `transport=` option, a proxy in the environment, or an event loop other than asyncio's
take httpx's client instead (see `asgi.py`).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import sys
import time
from typing import cast
from urllib.parse import urlsplit

import httpx

__all__ = ["Pool"]

# The most a response's head and body may hold: WeChat's answers are a few hundred bytes.
_MAX_HEAD = 64 * 1024
_MAX_BODY = 4 * 1024 * 1024
# Idle connections older than this are closed rather than reused (httpx's default too).
_KEEPALIVE_EXPIRY = 5.0


_TIMEOUTS: dict[str, type[httpx.TimeoutException]] = {
    "pool": httpx.PoolTimeout,
    "connect": httpx.ConnectTimeout,
    "read": httpx.ReadTimeout,
}


class _Response:
    __slots__ = ("body", "content_type", "keep_alive", "reason", "status")

    def __init__(self, status: int, reason: str, content_type: str, body: bytes, keep: bool):
        self.status = status
        self.reason = reason
        self.content_type = content_type
        self.body = body
        self.keep_alive = keep


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[_Response] | None = None
        self.closed = False
        self.idle_since = 0.0
        # Parse state of the answer being read.
        self._head: tuple[int, str, dict[str, str]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        self.buffer += data
        try:
            response = self._parse(eof=False)
        except httpx.RemoteProtocolError as exc:
            self.waiter.set_exception(exc)
            self.close()
            return
        if response is not None:
            self.waiter.set_result(response)

    def eof_received(self) -> bool | None:
        self._lost(None, eof=True)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc, eof=True)

    def _lost(self, exc: Exception | None, *, eof: bool) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            try:
                response = self._parse(eof=eof)
            except httpx.RemoteProtocolError as error:
                waiter.set_exception(error)
                return
            if response is not None:
                waiter.set_result(response)
            else:
                waiter.set_exception(
                    httpx.RemoteProtocolError("Server disconnected without sending a response.")
                    if not self.buffer and exc is None
                    else httpx.ReadError(str(exc or "the connection closed mid-answer"))
                )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, request: bytes) -> asyncio.Future[_Response]:
        assert self.transport is not None
        self.buffer.clear()
        self._head = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def _parse(self, *, eof: bool) -> _Response | None:
        """The answer, once all of it is in the buffer; None while more is to come."""
        buffer = self.buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD or (eof and buffer):
                    raise httpx.RemoteProtocolError("malformed response head")
                return None
            self._head = _parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if 100 <= self._head[0] < 200:  # an interim answer (100 Continue): skip it
                self._head = None
                return self._parse(eof=eof)
        status, reason, headers = self._head
        keep = headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _dechunk(buffer)
            if body is None:
                if eof:
                    raise httpx.RemoteProtocolError("the chunked body ended early")
                return None
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise httpx.RemoteProtocolError("malformed Content-Length") from None
            if length > _MAX_BODY or length < 0:
                raise httpx.RemoteProtocolError("a response body too large")
            if len(buffer) < length:
                if eof:
                    raise httpx.RemoteProtocolError("the body ended early")
                return None
            body = bytes(buffer[:length])
        elif status in (204, 304):
            body = b""
        else:  # the body runs to the end of the connection
            if len(buffer) > _MAX_BODY:
                raise httpx.RemoteProtocolError("a response body too large")
            if not eof:
                return None
            body, keep = bytes(buffer), False
        return _Response(status, reason, headers.get("content-type", ""), body, keep)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError("malformed status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise httpx.RemoteProtocolError("malformed header line")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(code), reason, headers


def _dechunk(buffer: bytearray) -> bytes | None:
    """The body of a complete chunked message in `buffer`, or None if it is not complete."""
    body = bytearray()
    at = 0
    while True:
        end = buffer.find(b"\r\n", at)
        if end < 0:
            return None
        try:
            size = int(bytes(buffer[at:end]).split(b";", 1)[0], 16)
        except ValueError:
            raise httpx.RemoteProtocolError("malformed chunk size") from None
        if size == 0:
            # Trailers (if any) end with an empty line.
            trailer_end = buffer.find(b"\r\n\r\n", end)
            if buffer[end : end + 4] == b"\r\n\r\n" or trailer_end >= 0:
                return bytes(body)
            return None
        start = end + 2
        if len(buffer) < start + size + 2:
            return None
        body += buffer[start : start + size]
        if len(body) > _MAX_BODY:
            raise httpx.RemoteProtocolError("a response body too large")
        at = start + size + 2


class Pool:
    """Keep-alive connections to one origin (WeChat's API base URL), at most `size` open."""

    def __init__(
        self, base_url: str, size: int, timeout: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        # The time a call may take when its caller gives none.
        self.timeout = timeout
        parts = urlsplit(base_url)
        # Every URL this pool is asked for starts with this (the base URL's own spelling).
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._tls = ssl_context if parts.scheme == "https" else None
        self._host = parts.hostname or ""
        default = 443 if parts.scheme == "https" else 80
        self._port = parts.port or default
        netloc = self._host if parts.port in (None, default) else f"{self._host}:{parts.port}"
        if ":" in self._host:  # an IPv6 address: bracketed in the Host header
            netloc = netloc.replace(self._host, f"[{self._host}]", 1)
        # The request line's end and the headers, without the blank line that ends them.
        self._head_tail = (
            f" HTTP/1.1\r\nHost: {netloc}\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
            "User-Agent: wxauth-middleware\r\n"
        ).encode("latin-1")
        self._size = size
        self._open = 0
        self._idle: list[_Connection] = []
        self._waiting: collections.deque[asyncio.Future[_Connection]] = collections.deque()
        self._closed = False
        # Pools of the other origins called (a WeCom app's API beside WeChat's), by origin.
        self._others: dict[str, Pool] = {}

    def for_url(self, url: str) -> Pool:
        """The pool of `url`'s origin: this one, or one made alike on first use (a WeCom app's
        qyapi.weixin.qq.com beside WeChat's api.weixin.qq.com)."""
        if url.startswith(self.origin):
            return self
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._others.get(origin)
        if pool is None:
            tls = None
            if parts.scheme == "https":
                tls = self._tls if self._tls is not None else httpx.create_ssl_context()
            pool = self._others[origin] = Pool(origin, self._size, self.timeout, tls)
        return pool

    async def get(
        self, target: str, timeout: float, json_body: bytes | None = None
    ) -> tuple[int, str, str, bytes]:
        """GET `target` (path and query, encoded) within `timeout` seconds, the wait for a
        connection included: (status, reason phrase, content type, body). With `json_body`, a
        POST of it as application/json. Raises httpx's exceptions: PoolTimeout, ConnectTimeout
        or ReadTimeout when the time runs out in that phase; ConnectError, ReadError or
        RemoteProtocolError."""
        if json_body is None:
            request = b"GET " + target.encode("ascii") + self._head_tail + b"\r\n"
        else:
            request = (
                b"POST "
                + target.encode("ascii")
                + self._head_tail
                + b"Content-Type: application/json\r\nContent-Length: "
                + str(len(json_body)).encode("ascii")
                + b"\r\n\r\n"
                + json_body
            )
        phase = ["pool"]
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(timeout):
                    return await self._get(request, phase)
            return await asyncio.wait_for(self._get(request, phase), timeout)
        except TimeoutError:
            raise _TIMEOUTS[phase[0]](f"no answer within {timeout:g} s") from None

    async def _get(self, request: bytes, phase: list[str]) -> tuple[int, str, str, bytes]:
        connection = await self._acquire()
        reused = connection.transport is not None
        try:
            if not reused:
                phase[0] = "connect"
                await self._connect(connection)
            phase[0] = "read"
            response = await connection.send(request)
        except BaseException as exc:
            connection.close()
            self._release(connection)
            stale = isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError))
            if reused and stale and not connection.buffer:
                # A kept connection the server closed before our request reached it (its idle
                # timeout): the request is made once more on a new connection, as httpx does.
                phase[0] = "pool"
                return await self._get(request, phase)
            raise
        if not response.keep_alive:
            connection.close()
        self._release(connection)
        return response.status, response.reason, response.content_type, response.body

    async def _connect(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: connection,
                self._host,
                self._port,
                ssl=self._tls,
                server_hostname=self._host if self._tls is not None else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc

    async def _acquire(self) -> _Connection:
        """An idle connection, or a new one (not yet connected) if fewer than `size` are
        open; otherwise wait in line for one another call releases."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < _KEEPALIVE_EXPIRY:
                return connection
            connection.close()
            self._open -= 1
        if self._open < self._size:
            self._open += 1
            return _Connection()
        waiter: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed one it will not use: pass it on
            else:
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
        for other in self._others.values():
            await other.aclose()
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            self._open -= 1
