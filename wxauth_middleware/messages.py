"""The plain HTTP values the sans-I/O core reads and produces.

The ASGI and WSGI adapters translate their requests into `HTTPRequest` and send `HTTPResponse`
back. Neither touches a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FORM_TOO_LARGE", "MAX_FORM_BYTES", "HTTPRequest", "HTTPResponse"]

# The largest body of the middleware's own forms (a few short fields).
MAX_FORM_BYTES = 4096


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """What the core needs to know about an incoming request.

    `path` is the decoded path as the browser sees it (mount prefix included); `target` is the
    path and query exactly as sent, percent-encoded: the form a return URL is built from.
    `headers` has lower-case names; repeated headers are joined as HTTP allows.
    """

    method: str
    scheme: str
    path: str
    target: str
    query_string: str
    headers: Mapping[str, str]
    # The body, read only for the middleware's own forms (see `LoginCore.form_paths`).
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """A complete response the middleware answers with instead of calling the app."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


FORM_TOO_LARGE = HTTPResponse(
    413, (("content-type", "text/plain; charset=utf-8"),), b"413 Request body too large"
)
