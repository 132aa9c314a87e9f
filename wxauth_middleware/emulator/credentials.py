"""The Official Account's own credentials: server access_tokens and jsapi_tickets.

Two token APIs with WeChat's rules: ``/cgi-bin/stable_token`` answers the same token while it
is valid (``force_refresh`` issues a new one and invalidates the old), while the older
``/cgi-bin/token`` issues a new token on every call and invalidates the one it issued before,
the trap that makes several instances knock each other's tokens out. The two are isolated from
each other. A jsapi_ticket is the same while valid, whichever valid token asks for it.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .grants import GrantError

__all__ = ["ACCOUNT_TOKEN_TTL", "TICKET_TTL", "CredentialStore", "jsapi_signature"]

ACCOUNT_TOKEN_TTL = 7200.0
TICKET_TTL = 7200.0
# WeChat asks clients to keep at least 512 characters for the token; real ones are ~136 wide,
# so the emulator's are wide enough to catch a column that is too narrow.
_TOKEN_LENGTH = 512
_TOKEN_CHARS = string.ascii_letters + string.digits + "_-"


def _random(length: int) -> str:
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(length))


def jsapi_signature(ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    """The JS-SDK signature (appendix 1 of WeChat's JS-SDK doc): SHA-1 of the four fields,
    sorted by name, joined as a query string without any encoding."""
    signed = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(signed.encode("utf-8")).hexdigest()  # noqa: S324 (WeChat's choice)


@dataclass(frozen=True)
class _Expiring:
    value: str
    expires_at: float


@dataclass(frozen=True)
class _AccountToken:
    app_id: str
    expires_at: float


class CredentialStore:
    """Per-appid account tokens (stable and legacy) and jsapi_tickets, guarded by a lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stable: dict[str, _Expiring] = {}  # appid -> its current stable token
        self._legacy: dict[str, _Expiring] = {}  # appid -> the last /cgi-bin/token token
        # Every token ever issued and not yet forgotten, to tell "expired" from "invalid".
        self._tokens: dict[str, _AccountToken] = {}
        self._tickets: dict[str, _Expiring] = {}  # appid -> its current jsapi_ticket

    def _issue(self, table: dict[str, _Expiring], app_id: str, now: float) -> _Expiring:
        old = table.get(app_id)
        if old is not None:
            self._tokens.pop(old.value, None)  # superseded: from now on "invalid" (40001)
        token = _Expiring(_random(_TOKEN_LENGTH), now + ACCOUNT_TOKEN_TTL)
        table[app_id] = token
        self._tokens[token.value] = _AccountToken(app_id, token.expires_at)
        # Forget tokens long expired, so a long soak stays bounded.
        for value in [v for v, t in self._tokens.items() if t.expires_at + ACCOUNT_TOKEN_TTL < now]:
            del self._tokens[value]
        return token

    def stable_token(self, app_id: str, force_refresh: bool) -> tuple[str, int]:
        """(token, seconds left): the current stable token, or a new one when there is none,
        it expired, or `force_refresh`."""
        with self._lock:
            now = self._clock()
            token = self._stable.get(app_id)
            if force_refresh or token is None or now >= token.expires_at:
                token = self._issue(self._stable, app_id, now)
            return token.value, int(token.expires_at - now)

    def legacy_token(self, app_id: str) -> tuple[str, int]:
        """A new token, invalidating the one /cgi-bin/token issued before."""
        with self._lock:
            now = self._clock()
            token = self._issue(self._legacy, app_id, now)
            return token.value, int(ACCOUNT_TOKEN_TTL)

    def app_of(self, access_token: str) -> str:
        """The appid an account token belongs to: 40001 unknown or superseded, 42001 expired."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None:
                raise GrantError(40001)
            if self._clock() >= token.expires_at:
                raise GrantError(42001)
            return token.app_id

    def invalidate_tokens(self, app_id: str) -> None:
        """Every account token of `app_id` becomes invalid (40001), as when the AppSecret is
        reset on WeChat's console."""
        with self._lock:
            for value in [v for v, t in self._tokens.items() if t.app_id == app_id]:
                del self._tokens[value]
            self._stable.pop(app_id, None)
            self._legacy.pop(app_id, None)

    def ticket(self, app_id: str) -> tuple[str, int]:
        """(jsapi_ticket, seconds left): the current one, or a new one when it expired."""
        with self._lock:
            now = self._clock()
            ticket = self._tickets.get(app_id)
            if ticket is None or now >= ticket.expires_at:
                # Real tickets are 86 characters of this alphabet.
                ticket = _Expiring(_random(86), now + TICKET_TTL)
                self._tickets[app_id] = ticket
            return ticket.value, int(ticket.expires_at - now)

    def current_ticket(self, app_id: str) -> str | None:
        """The jsapi_ticket a page's signature must use now; None if none is valid."""
        with self._lock:
            ticket = self._tickets.get(app_id)
            if ticket is None or self._clock() >= ticket.expires_at:
                return None
            return ticket.value
