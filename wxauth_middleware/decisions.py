"""What the decision core answers, and the facts about a request its parts share.

`Forward(user)` calls the application; an `HTTPResponse` answers the browser; a `Flow` is a
login flow that yields calls to make (to WeChat, the store, a hook) and returns one of those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from .cookies import Session
from .effects import Flow
from .messages import HTTPRequest, HTTPResponse
from .scopes import PROFILE_SCOPES
from .user import User

__all__ = [
    "ANONYMOUS",
    "Decision",
    "Forward",
    "OwnPath",
    "is_navigation",
    "needs_profile",
    "query_params",
]


@dataclass(frozen=True, slots=True)
class Forward:
    """Call the application, with `user` attached to the request.

    `target` (a path and query) replaces the request's own: a snapshot user's callback is
    handed to the page the login started from, as that page.
    """

    user: User | None
    target: str | None = None


ANONYMOUS = Forward(None)
Decision = Forward | HTTPResponse | Flow[HTTPResponse | Forward]
# A path the middleware answers itself: (request, its cookies, its session) -> decision.
OwnPath = Callable[[HTTPRequest, Mapping[str, str], Session | None], Decision]

# Sec-Fetch-Dest values of a top-level or framed page load.
_PAGE_DESTS = frozenset({"document", "iframe", "frame"})


def is_navigation(request: HTTPRequest) -> bool:
    """Whether the request is a page load that may be redirected to WeChat.

    It must be a GET or HEAD, and nothing may say otherwise: not Sec-Fetch-Mode/-Dest (sent by
    current browsers, WeChat's included), not X-Requested-With: XMLHttpRequest (jQuery and
    friends; Android WebViews send their package name there on every request, so only that
    value counts), not an Accept that wants something other than a page (JSON, images...).
    Old clients send none of these on a navigation, so their absence means a page.
    """
    if request.method not in ("GET", "HEAD"):
        return False
    headers = request.headers
    mode = headers.get("sec-fetch-mode")
    if mode and mode != "navigate":
        return False
    dest = headers.get("sec-fetch-dest")
    if dest and dest not in _PAGE_DESTS:
        return False
    if headers.get("x-requested-with", "").lower() == "xmlhttprequest":
        return False
    accept = headers.get("accept", "")
    if not accept or "html" in accept:
        return True
    return "json" not in accept and "*/*" in accept


def needs_profile(session: Session, scope: str) -> bool:
    """Whether a page of `scope` asks this session's user for the profile (once: a refusal is
    remembered in the session)."""
    return (
        scope == "snsapi_userinfo"
        and session.user.scope not in PROFILE_SCOPES
        and not session.profile_declined
    )


def query_params(request: HTTPRequest) -> dict[str, str]:
    """The query's parameters, the first value of each."""
    params: dict[str, str] = {}
    query = request.query_string
    if "%" in query or "+" in query:
        for key, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(key, value)
        return params
    # Nothing to unquote (a callback's code and state): split as parse_qsl would.
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            params.setdefault(key, value)
    return params
