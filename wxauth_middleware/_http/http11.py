"""HTTP/1.1 for the calls to WeChat's API, sans I/O: the request's bytes and the answer's reading.

The ASGI side's pool (`pool.py`, asyncio) and the WSGI side's (`sync_pool.py`, blocking sockets)
are two thin drivers around this: one origin, a GET (or a POST of a JSON body), keep-alive.
The answer's framing (Content-Length, chunked bodies, interim 1xx heads, bodies that run to the
end of the connection, keep-alive or not) is read by a small incremental parser with the caps
WeChat's few-hundred-byte answers allow, checked as the bytes arrive. It follows RFC 9112 as
h11 does, a little stricter, and tests/test_http11.py runs it against h11 on hostile answers:
h11 itself costs ~5x more CPU per answer, ~8 % of a login (docs/performance.md). No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar
from urllib.parse import quote_plus, urlsplit
from urllib.request import getproxies

__all__ = ["Answer", "MalformedAnswer", "Origin", "OtherOrigins", "Reader", "proxied"]

P = TypeVar("P")

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
        target = f"{path}?{query(params)}" if params else path
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


def query(params: tuple[tuple[str, str], ...]) -> str:
    """`urlencode(params)`, the same string, made faster: the names and most values (an
    AppID, a code, an access_token) need no quoting."""
    return "&".join(f"{_plus(name)}={_plus(value)}" for name, value in params)


def _plus(value: str) -> str:
    return value if _UNQUOTED.fullmatch(value) else quote_plus(value)


# What quote_plus leaves as it is.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")
# The grammar of RFC 9112 as h11 writes it (h11/_abnf.py), a little stricter: HTTP/1.0 and 1.1
# only, no obsolete line folding, chunk sizes of at most 16 hex digits.
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?")
_HEADER_LINE = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*"
)
_DIGITS = re.compile(rb"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[^\x00\r\n]*)?[ \t]*")

# Where a Reader is in the answer.
_HEAD, _LENGTH, _CHUNK_SIZE_LINE, _CHUNK, _CHUNK_END, _TRAILERS, _TO_EOF, _DONE = range(8)


class OtherOrigins(Generic[P]):
    """The pools of the origins a pool is asked for beyond its own (a WeCom app's API,
    qyapi.weixin.qq.com, beside WeChat's api.weixin.qq.com), each made by `make` on first use."""

    def __init__(self, own: Origin, make: Callable[[Origin], P]) -> None:
        self._own = own.origin
        self._make = make
        self.pools: dict[str, P] = {}

    def pool(self, url: str, own: P) -> P:
        """The pool of `url`'s origin: `own` when it is the pool's own."""
        if url.startswith(self._own) and url[len(self._own) :][:1] in ("/", ""):
            return own
        target = Origin.of(url)
        pool = self.pools.get(target.origin)
        if pool is None:
            pool = self.pools.setdefault(target.origin, self._make(target))
        return pool


class Reader:
    """One connection's answers, one request at a time: feed it what arrives, get the answer
    once all of it is in. Each byte is looked at once (no re-parsing from the start), and the
    caps are checked as bytes arrive: a head or a chunk-size line longer than MAX_HEAD, or a
    body (declared, chunked or to the end of the connection) longer than MAX_BODY, fails at
    once. Raises MalformedAnswer. tests/test_http11.py checks it against h11."""

    __slots__ = (
        "_body",
        "_buffer",
        "_content_type",
        "_keep",
        "_left",
        "_reason",
        "_scanned",
        "_state",
        "_status",
        "received",
    )

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.start()
        self._state = _DONE  # nothing asked yet: bytes now would be nobody's

    def start(self) -> None:
        """A new request goes out on this connection."""
        self._buffer.clear()
        self._state = _HEAD
        self._scanned = 0  # how far the buffer was searched for the end of a line or head
        self._status, self._reason, self._content_type = 0, "", ""
        self._keep = True
        self._left = 0  # bytes to come of the body or the chunk
        self._body = bytearray()
        # Whether any byte of the current answer came (a kept connection that gets none was
        # closed by the server before it saw the request: safe to retry).
        self.received = False

    @property
    def reusable(self) -> bool:
        """Whether another request may go out on this connection: the answer was whole, both
        sides keep the connection, and nothing came after it."""
        return self._state == _DONE and self._keep and not self._buffer

    def feed(self, data: bytes) -> Answer | None:
        """Take `data` (b"": the server closed its side); the answer once it is whole."""
        if self._state == _DONE:
            raise MalformedAnswer("bytes after the answer")
        if data:
            self.received = True
            self._buffer += data
        elif self._state == _TO_EOF:
            self._state, self._keep = _DONE, False
        elif not self.received:
            raise MalformedAnswer("the server closed the connection without answering")
        else:
            raise MalformedAnswer("the connection closed mid-answer")
        while self._state != _DONE and self._step():
            pass
        if self._state != _DONE:
            return None
        return Answer(self._status, self._reason, self._content_type, bytes(self._body))

    def _step(self) -> bool:
        """Parse what the buffer holds for the current state; whether to go on."""
        state, buffer = self._state, self._buffer
        if state == _HEAD:
            end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                self._scanned = len(buffer)
                if len(buffer) > MAX_HEAD:
                    raise MalformedAnswer("a response head too large")
                return False
            if end + 4 > MAX_HEAD:
                raise MalformedAnswer("a response head too large")
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            self._scanned = 0
            self._head(head)
        elif state in (_LENGTH, _CHUNK, _TO_EOF):
            take = len(buffer) if state == _TO_EOF else min(self._left, len(buffer))
            if not take:
                return False
            if len(self._body) + take > MAX_BODY:
                raise MalformedAnswer("a response body too large")
            self._body += buffer[:take]
            del buffer[:take]
            self._left -= take
            if state == _LENGTH and not self._left:
                self._state = _DONE
            elif state == _CHUNK and not self._left:
                self._state = _CHUNK_END
        elif state == _CHUNK_END:
            if len(buffer) < 2:
                return False
            if buffer[:2] != b"\r\n":
                raise MalformedAnswer("no CRLF after a chunk")
            del buffer[:2]
            self._state = _CHUNK_SIZE_LINE
        elif state == _CHUNK_SIZE_LINE:
            line = self._line()
            if line is None:
                return False
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                raise MalformedAnswer("a malformed chunk size")
            size = int(match[1], 16)
            if len(self._body) + size > MAX_BODY:  # before its bytes arrive
                raise MalformedAnswer("a response body too large")
            self._left = size
            self._state = _CHUNK if size else _TRAILERS
        else:  # _TRAILERS: header lines up to an empty one, read and dropped
            line = self._line()
            if line is None:
                return False
            if not line:
                self._state = _DONE
            elif _HEADER_LINE.fullmatch(line) is None:
                raise MalformedAnswer("a malformed trailer")
        return True

    def _line(self) -> bytes | None:
        """The next line (CRLF-ended) of the buffer, taken from it; None if it is not whole."""
        buffer = self._buffer
        end = buffer.find(b"\r\n", max(0, self._scanned - 1))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) > MAX_HEAD:
                raise MalformedAnswer("a chunk-size or trailer line too long")
            return None
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        self._scanned = 0
        return line

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = _STATUS_LINE.fullmatch(lines[0])
        if status is None:
            raise MalformedAnswer("a malformed status line")
        code = int(status[2])
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            field = _HEADER_LINE.fullmatch(line)
            if field is None:
                raise MalformedAnswer("a malformed header line")
            name = field[1].lower()
            if name in fields and name in (b"content-length", b"transfer-encoding"):
                raise MalformedAnswer(f"more than one {name.decode()} header")
            fields[name] = fields[name] + b", " + field[2] if name in fields else field[2]
        encoding, length = fields.get(b"transfer-encoding"), fields.get(b"content-length")
        if length is not None and _DIGITS.fullmatch(length) is None:
            raise MalformedAnswer("a malformed Content-Length")
        if encoding is not None and (
            encoding.lower() != b"chunked" or length is not None or status[1] == b"0"
        ):
            raise MalformedAnswer("a transfer coding other than chunked alone")
        if 100 <= code < 200:
            if code == 101:
                raise MalformedAnswer("a switch of protocols nobody asked for")
            return  # an interim answer (100 Continue, 103 Early Hints): the next head follows
        self._status, self._reason = code, (status[3] or b"").decode("latin-1")
        self._content_type = fields.get(b"content-type", b"").decode("latin-1")
        connection = {t.strip().lower() for t in fields.get(b"connection", b"").split(b",")}
        self._keep = status[1] == b"1" and b"close" not in connection
        if code in (204, 304):
            self._state = _DONE
        elif encoding is not None:
            self._state = _CHUNK_SIZE_LINE
        elif length is not None:
            self._left = int(length)
            if self._left > MAX_BODY:
                raise MalformedAnswer("a response body too large")
            self._state = _LENGTH if self._left else _DONE
        else:  # the body runs to the end of the connection
            self._state, self._keep = _TO_EOF, False


def proxied() -> bool:
    """Whether the environment names a proxy (HTTPS_PROXY, ALL_PROXY, ...): httpx's to honour,
    so the middleware then calls WeChat with httpx's client rather than its own pool."""
    return bool(getproxies())
