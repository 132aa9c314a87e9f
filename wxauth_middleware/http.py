"""The plain HTTP values the sans-I/O core reads and produces.

The ASGI and WSGI adapters translate their requests into `HTTPRequest` and send `HTTPResponse`
back; the login flow yields `UpstreamRequest`s and is sent `UpstreamResponse`s. None of these
touch a socket.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Literal

__all__ = [
    "HTTPRequest",
    "HTTPResponse",
    "HookCall",
    "Sleep",
    "StoreCommands",
    "UpstreamRequest",
    "UpstreamResponse",
    "delete_cookie_header",
    "set_cookie_header",
]


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

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """A complete response the middleware answers with instead of calling the app."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """A call to WeChat's API: always a GET with its query parameters in WeChat's order."""

    url: str
    params: tuple[tuple[str, str], ...]
    # The name used in logs and errors, e.g. "sns/oauth2/access_token"; never the query.
    endpoint: str = field(default="")
    # Seconds this call may take; None leaves it to the client's default.
    timeout: float | None = None
    method: Literal["GET"] = "GET"


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before the next attempt (a retry's backoff): the driver sleeps its own way."""

    seconds: float


@dataclass(frozen=True, slots=True)
class StoreCommands:
    """Redis commands for the session store (the `redis_url` option), run in one MULTI/EXEC
    transaction when there are several; the flow is sent the list of their replies."""

    commands: tuple[tuple[str | int | float, ...], ...]


@dataclass(frozen=True, slots=True)
class HookCall:
    """A call of an application hook (`on_login`), which may be sync or async: the driver
    makes it the way its side of the world can (awaited, or run in a worker thread)."""

    hook: Callable[..., object]
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: str = ""


def set_cookie_header(
    name: str,
    value: str,
    *,
    max_age: int | None,
    path: str,
    domain: str | None,
    secure: bool,
) -> tuple[str, str]:
    """A `Set-Cookie` header: HttpOnly and SameSite=Lax always.

    Lax, not Strict: the login callback is a top-level navigation coming from WeChat's site,
    and a Strict cookie would not be sent with it.
    """
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    if max_age is not None:
        morsel["max-age"] = max_age
    morsel["path"] = path
    if domain is not None:
        morsel["domain"] = domain
    morsel["httponly"] = True
    morsel["samesite"] = "lax"
    if secure:
        morsel["secure"] = True
    return ("set-cookie", morsel.OutputString())


def delete_cookie_header(
    name: str, *, path: str, domain: str | None, secure: bool
) -> tuple[str, str]:
    return set_cookie_header(name, "", max_age=0, path=path, domain=domain, secure=secure)
