"""The emulator's server state: authorization codes, access tokens and refresh tokens.

Lifetimes are WeChat's: a code lives 5 minutes and is single use, an access token 2 hours,
a refresh token 30 days (refreshing does not extend it). Expired entries are kept a while
longer so clients see the "expired" errcode rather than "invalid", then pruned; a hard cap
per table keeps memory bounded even under a long load test.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

__all__ = [
    "ACCESS_TOKEN_TTL",
    "CODE_TTL",
    "REFRESH_TOKEN_TTL",
    "AccessGrant",
    "CodeGrant",
    "GrantError",
    "GrantStore",
]

CODE_TTL = 300.0
ACCESS_TOKEN_TTL = 7200.0
REFRESH_TOKEN_TTL = 30 * 86400.0

# How long an expired entry still answers "expired" before it is forgotten ("invalid").
_CODE_RETAIN = CODE_TTL
_ACCESS_RETAIN = ACCESS_TOKEN_TTL
_REFRESH_RETAIN = 86400.0

_ALNUM = string.ascii_letters + string.digits
_TOKEN_CHARS = _ALNUM + "_-"


class GrantError(Exception):
    """A request WeChat would answer with this errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


@dataclass
class CodeGrant:
    app_id: str
    persona_key: str
    scope: str
    issued_at: float
    used: bool = False

    @property
    def forget_at(self) -> float:
        return self.issued_at + CODE_TTL + _CODE_RETAIN


@dataclass(frozen=True)
class _TokenGrant:
    """What a token grants: valid until `expires_at`, then "expired" for `_RETAIN` seconds."""

    _RETAIN: ClassVar[float]

    app_id: str
    persona_key: str
    openid: str
    scope: str
    expires_at: float

    @property
    def forget_at(self) -> float:
        return self.expires_at + self._RETAIN


@dataclass(frozen=True)
class _RefreshGrant(_TokenGrant):
    _RETAIN: ClassVar[float] = _REFRESH_RETAIN


@dataclass(frozen=True)
class AccessGrant(_TokenGrant):
    """A user access token's grant, with the refresh token it was issued with."""

    _RETAIN: ClassVar[float] = _ACCESS_RETAIN

    refresh_token: str


class _Expiring(Protocol):
    @property
    def forget_at(self) -> float: ...


_E = TypeVar("_E", bound=_Expiring)


def _random(chars: str, length: int) -> str:
    return "".join(secrets.choice(chars) for _ in range(length))


def _prune(table: dict[str, _E], now: float, max_entries: int) -> None:
    # Dicts keep insertion order, which is issue order, so the oldest entries are in front:
    # stop at the first one still worth keeping. Amortised O(1) per issued entry.
    while table:
        key = next(iter(table))
        if table[key].forget_at > now and len(table) <= max_entries:
            break
        del table[key]


class GrantStore:
    """Codes and tokens for any number of appids, guarded by a lock.

    The emulator serves from one event loop, but tests and the demo mint codes from other
    threads; every method holds the lock only for dictionary work, never across an await.
    """

    def __init__(self, clock: Callable[[], float], *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._codes: dict[str, CodeGrant] = {}
        self._access: dict[str, AccessGrant] = {}
        self._refresh: dict[str, _RefreshGrant] = {}

    def sizes(self) -> tuple[int, int, int]:
        """(codes, access tokens, refresh tokens) currently remembered."""
        with self._lock:
            return len(self._codes), len(self._access), len(self._refresh)

    def _prune_all(self, now: float) -> None:
        _prune(self._codes, now, self._max)
        _prune(self._access, now, self._max)
        _prune(self._refresh, now, self._max)

    def issue_code(self, app_id: str, persona_key: str, scope: str) -> str:
        # Real codes are 32 alphanumerics.
        code = _random(_ALNUM, 32)
        with self._lock:
            now = self._clock()
            self._codes[code] = CodeGrant(app_id, persona_key, scope, now)
            self._prune_all(now)
        return code

    def redeem_code(self, app_id: str, code: str) -> CodeGrant:
        """Spend a code: 40029 unknown or for another appid, 40163 used, 42003 expired."""
        with self._lock:
            now = self._clock()
            self._prune_all(now)
            grant = self._codes.get(code)
            if grant is None or grant.app_id != app_id:
                raise GrantError(40029)
            if grant.used:
                raise GrantError(40163)
            if now - grant.issued_at >= CODE_TTL:
                raise GrantError(42003)
            grant.used = True
            return grant

    def _new_access(
        self, now: float, refresh_token: str, grant: _RefreshGrant
    ) -> tuple[str, AccessGrant]:
        token = _random(_TOKEN_CHARS, 110)
        access = AccessGrant(
            grant.app_id,
            grant.persona_key,
            grant.openid,
            grant.scope,
            now + ACCESS_TOKEN_TTL,
            refresh_token,
        )
        self._access[token] = access
        return token, access

    def issue_tokens(
        self, app_id: str, persona_key: str, openid: str, scope: str
    ) -> tuple[str, AccessGrant]:
        """A fresh access token and refresh token; returns (access_token, grant)."""
        refresh_token = _random(_TOKEN_CHARS, 110)
        with self._lock:
            now = self._clock()
            grant = _RefreshGrant(app_id, persona_key, openid, scope, now + REFRESH_TOKEN_TTL)
            self._refresh[refresh_token] = grant
            result = self._new_access(now, refresh_token, grant)
            self._prune_all(now)
            return result

    def refresh(self, app_id: str, refresh_token: str) -> tuple[str, AccessGrant]:
        """A new access token for the same refresh token: 40030 invalid, 42002 expired."""
        with self._lock:
            now = self._clock()
            self._prune_all(now)
            grant = self._refresh.get(refresh_token)
            if grant is None or grant.app_id != app_id:
                raise GrantError(40030)
            if now >= grant.expires_at:
                raise GrantError(42002)
            return self._new_access(now, refresh_token, grant)

    def access_grant(self, access_token: str) -> AccessGrant:
        """The grant behind a user access token: 40001 unknown, 42001 expired."""
        with self._lock:
            now = self._clock()
            self._prune_all(now)
            grant = self._access.get(access_token)
            if grant is None:
                raise GrantError(40001)
            if now >= grant.expires_at:
                raise GrantError(42001)
            return grant
