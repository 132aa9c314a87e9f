"""HTTP/1.1 for the calls to WeChat's API, sans I/O: the request's bytes and h11 reading the answer.

The ASGI side's pool (`pool.py`, asyncio) and the WSGI side's (`sync_pool.py`, blocking sockets)
are two thin drivers around this: one origin, a GET (or a POST of a JSON body), keep-alive.
h11 does the framing (what uvicorn and httpcore trust): Content-Length, chunked bodies, interim
1xx heads, bodies that run to the end of the connection, keep-alive or not. This module adds the
caps WeChat's few-hundred-byte answers allow, checked as the bytes arrive. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies

import h11

__all__ = ["Answer", "MalformedAnswer", "Origin", "Reader", "proxied"]

# The most a response's head (and a chunk's size line) and body may hold.
MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
# Idle connections older than this are closed rather than reused (httpx's default too).
KEEPALIVE_EXPIRY = 5.0


class MalformedAnswer(Exception):
    """An answer that is not well-formed HTTP/1.1, or larger than the caps (the pools raise it
    as httpx.RemoteProtocolError)."""


class Answer(NamedTuple):
    status: int
    reason: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Origin:
    """Where a pool's connections go, and the bytes of its requests, from WeChat's API base URL
    (as `Config` validated it: http or https, its scheme already lower case)."""

    origin: str  # what every URL this pool is asked for starts with
    host: str
    port: int
    tls: bool
    head_tail: bytes  # the request line's end and the headers, without the blank line

    @classmethod
    def of(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {base_url!r}")
        host = parts.hostname
        default = 443 if scheme == "https" else 80
        port = parts.port or default
        netloc = host if port == default else f"{host}:{port}"
        if ":" in host:  # an IPv6 address: bracketed in the Host header
            netloc = netloc.replace(host, f"[{host}]", 1)
        head_tail = (
            f" HTTP/1.1\r\nHost: {netloc}\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
            "User-Agent: wxauth-middleware\r\n"
        ).encode("latin-1")
        return cls(f"{scheme}://{parts.netloc}", host, port, scheme == "https", head_tail)

    def request(
        self, url: str, params: tuple[tuple[str, str], ...], json_body: bytes | None
    ) -> bytes:
        """The bytes of a GET of `url` with `params` (a POST of `json_body` as application/json,
        if given). ValueError for a URL on another origin than this pool's."""
        # Compared case-insensitively, as the origin is; never a call elsewhere with the
        # AppSecret in its query (an explicit check: `python -O` drops asserts).
        if url[: len(self.origin)].lower() != self.origin.lower() or url[
            len(self.origin) : len(self.origin) + 1
        ] not in ("", "/"):
            raise ValueError("a call to WeChat outside api_base_url")
        path = url[len(self.origin) :] or "/"
        target = f"{path}?{urlencode(params)}" if params else path
        if json_body is None:
            return b"GET " + target.encode("ascii") + self.head_tail + b"\r\n"
        return (
            b"POST "
            + target.encode("ascii")
            + self.head_tail
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(json_body)).encode("ascii")
            + b"\r\n\r\n"
            + json_body
        )


# What h11 is told was sent: the request's framing is ours (the bytes above); for reading the
# answer only the method matters (a GET's and a POST's answers are framed alike).
_SENT = h11.Request(method="GET", target="/", headers=[("Host", "wechat")])
_END = h11.EndOfMessage()


class Reader:
    """One connection's answers, one request at a time: feed it what arrives, get the answer
    once all of it is in. Raises MalformedAnswer for a malformed or oversized one."""

    __slots__ = ("_body", "_h11", "_head", "_size", "received")

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._head: h11.Response | None = None
        self._body: list[bytes] = []
        self._size = 0
        # Whether any byte of the current answer came (a kept connection that gets none was
        # closed by the server before it saw the request: safe to retry).
        self.received = False

    def start(self) -> None:
        """A new request goes out on this connection."""
        if self._h11.our_state is h11.DONE:
            self._h11.start_next_cycle()
        self._h11.send(_SENT)
        self._h11.send(_END)
        self._head, self._body, self._size, self.received = None, [], 0, False

    @property
    def reusable(self) -> bool:
        """Whether another request may go out on this connection: the answer was whole, both
        sides keep the connection, and nothing came after it."""
        conn = self._h11
        return (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not conn.trailing_data[0]
        )

    def feed(self, data: bytes) -> Answer | None:
        """Take `data` (b"": the server closed its side); the answer once it is whole."""
        if data:
            self.received = True
        conn = self._h11
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is h11.Data:
                    chunk = event.data  # type: ignore[union-attr]
                    self._size += len(chunk)
                    if self._size > MAX_BODY:
                        raise MalformedAnswer("a response body too large")
                    self._body.append(chunk)
                elif kind is h11.Response:
                    self._head = self._checked(event)  # type: ignore[arg-type]
                elif kind is h11.EndOfMessage:
                    head = self._head
                    assert head is not None  # h11 sends a Response before its end
                    return Answer(
                        head.status_code,
                        head.reason.decode("latin-1"),
                        _content_type(head.headers),
                        b"".join(self._body),
                    )
                elif event is h11.NEED_DATA:
                    if data == b"" and conn.their_state is not h11.DONE:
                        raise MalformedAnswer("the connection closed mid-answer")
                    return None
                elif event is h11.PAUSED or kind is h11.ConnectionClosed:
                    raise MalformedAnswer("the connection closed mid-answer")
                # An InformationalResponse (1xx): skipped, in this loop.
        except h11.RemoteProtocolError as exc:
            raise MalformedAnswer(f"malformed answer: {exc}") from None

    @staticmethod
    def _checked(head: h11.Response) -> h11.Response:
        # A declared body larger than the cap fails before any of it is read.
        for name, value in head.headers:
            if name == b"content-length" and int(value) > MAX_BODY:
                raise MalformedAnswer("a response body too large")
        return head


def _content_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


def proxied() -> bool:
    """Whether the environment names a proxy (HTTPS_PROXY, ALL_PROXY, ...): httpx's to honour,
    so the middleware then calls WeChat with httpx's client rather than its own pool."""
    return bool(getproxies())
