"""The WSGI side's pooled HTTP/1.1 client for WeChat's API: blocking sockets, shared by threads.

The synchronous twin of `pool.py`, with the same request bytes and parser (`http11.py`) and the
same rules: one origin, keep-alive connections reused most-recently-used first, at most `size`
open with the other threads waiting, and one deadline for the whole call — the wait for a
connection, connecting, sending and every read — so an upstream trickling its answer a byte
at a time cannot hold a worker thread past it. Raises httpx's exceptions. A `transport=` option
or a proxy in the environment take httpx's client instead (see `wsgi.py`).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import httpx

from .http11 import KEEPALIVE_EXPIRY, Answer, MalformedAnswer, Origin, OtherOrigins, Reader

__all__ = ["SyncPool"]

_READ_SIZE = 64 * 1024


class _Connection:
    __slots__ = ("idle_since", "reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = Reader()
        self.idle_since = 0.0


class SyncPool:
    """Keep-alive connections to one origin (WeChat's API base URL), at most `size` open,
    thread-safe. TLS for an https URL (its scheme in any case), with `ssl_context` or httpx's
    default one."""

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
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._closed = False
        # Pools of the other origins called (a WeCom app's API beside WeChat's), by origin.
        self._others: OtherOrigins[SyncPool] = OtherOrigins(
            self.target,
            lambda other: SyncPool(other.origin, size, timeout, self._tls if other.tls else None),
        )

    def for_url(self, url: str) -> SyncPool:
        """The pool of `url`'s origin: this one, or one made alike on first use (a WeCom
        app's API, qyapi.weixin.qq.com, beside WeChat's api.weixin.qq.com)."""
        return self._others.pool(url, self)

    def request(self, request: bytes, timeout: float) -> Answer:
        """Send `request` (bytes from `Origin.request`) and read its answer within `timeout`
        seconds, everything included. Raises httpx's exceptions: PoolTimeout, ConnectTimeout
        or ReadTimeout for the phase the time ran out in; ConnectError, ReadError or
        RemoteProtocolError."""
        started = time.monotonic()
        deadline = started + timeout
        if not self._slots.acquire(timeout=timeout):
            raise httpx.PoolTimeout(f"no free connection within {timeout:g} s")
        try:
            connection = self._idle_connection()
            if connection is not None:
                try:
                    return self._exchange(connection, request, deadline)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    if connection.reader.received:
                        raise
                    # A kept connection the server closed before our request reached it (its
                    # idle timeout): the request is made once more on a new one, as httpx does.
            connecting = time.monotonic()
            try:
                connection = self._connect(deadline)
            except httpx.ConnectTimeout:
                if time.monotonic() - connecting < connecting - started:
                    # Given a free slot late, after waiting for most of the time: a pool
                    # timeout (answers too slow), not a host that cannot be connected to.
                    raise httpx.PoolTimeout(f"no free connection within {timeout:g} s") from None
                raise
            return self._exchange(connection, request, deadline)
        finally:
            self._slots.release()

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if now - connection.idle_since < KEEPALIVE_EXPIRY and _quiet(connection.sock):
                    return connection
                connection.sock.close()
        return None

    def _connect(self, deadline: float) -> _Connection:
        host, port = self.target.host, self.target.port
        try:
            sock = socket.create_connection((host, port), timeout=_left(deadline, "connect"))
        except TimeoutError:
            raise httpx.ConnectTimeout("no connection in time") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(_left(deadline, "connect"))
                sock = self._tls.wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise httpx.ConnectTimeout("no TLS handshake in time") from None
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(sock)

    def _exchange(self, connection: _Connection, request: bytes, deadline: float) -> Answer:
        sock, reader = connection.sock, connection.reader
        try:
            reader.start()
            sock.settimeout(_left(deadline, "read"))
            sock.sendall(request)
            while True:
                # Each read gets what is left of the call's time, not a time of its own.
                sock.settimeout(_left(deadline, "read"))
                answer = reader.feed(sock.recv(_READ_SIZE))
                if answer is not None:
                    break
        except TimeoutError:
            sock.close()
            raise httpx.ReadTimeout("no whole answer in time") from None
        except MalformedAnswer as exc:
            sock.close()
            raise httpx.RemoteProtocolError(str(exc)) from None
        except OSError as exc:
            sock.close()
            raise httpx.ReadError(str(exc) or type(exc).__name__) from None
        except BaseException:
            sock.close()
            raise
        if reader.reusable and not self._closed:
            connection.idle_since = time.monotonic()
            with self._lock:
                self._idle.append(connection)
        else:
            sock.close()
        return answer

    @property
    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the idle connections; those in use close when their call ends."""
        for other in list(self._others.pools.values()):
            other.close()
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.sock.close()


def _quiet(sock: socket.socket) -> bool:
    """Whether an idle connection is still open with nothing sent on it since its last answer:
    bytes nobody asked for (which would be read as the next answer) or the server's close
    mean it is not reused. A TLS 1.3 session ticket is no data: only decrypted bytes count."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False
    return False


def _left(deadline: float, phase: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(phase)
    return left
