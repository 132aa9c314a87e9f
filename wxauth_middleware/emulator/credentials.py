"""The Official Account's own credentials: server access_tokens and jsapi_tickets.

Two token APIs with WeChat's rules (its getStableAccessToken and getAccessToken docs):

- ``/cgi-bin/stable_token`` answers the same token while it is valid; in its last five minutes
  it answers the next one, both staying valid until the old one expires, so ``expires_in`` is
  never below 300. ``force_refresh`` issues a new token and invalidates the old, at most 20
  times a day and 30 s apart ("否则不会刷新": otherwise it answers the current token).
- the older ``/cgi-bin/token`` issues a new token on every call; the one before stays valid
  five more minutes, the trap that makes several instances knock each other's tokens out.

The two are isolated from each other. A ticket (``jsapi``, ``wx_card``) is the same while
valid, whichever valid token asks for it, and each answer says 7200 s: it lives that long from
the last time it was handed out.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .grants import GrantError

__all__ = [
    "ACCOUNT_TOKEN_TTL",
    "OVERLAP",
    "TICKET_TTL",
    "TICKET_TYPES",
    "CredentialStore",
    "beijing_day",
    "jsapi_signature",
]

#: The tickets getticket hands out: the JS-SDK's, and the card API's (卡券 api_ticket).
TICKET_TYPES = ("jsapi", "wx_card")

ACCOUNT_TOKEN_TTL = 7200.0
TICKET_TTL = 7200.0
#: A superseded /cgi-bin/token token, and a stable token being renewed, stay valid this long.
OVERLAP = 300.0
#: Forced stable_token refreshes: at most this many a day, this many seconds apart.
FORCED_REFRESHES_PER_DAY = 20
FORCED_REFRESH_INTERVAL = 30.0
#: clear_quota: at most this many resets a month.
QUOTA_CLEARS_PER_MONTH = 10
#: WeChat's day starts at midnight Beijing time (UTC+8).
_BEIJING_OFFSET = 8 * 3600
# WeChat asks clients to keep at least 512 characters for the token; real ones are ~136 wide,
# so the emulator's are wide enough to catch a column that is too narrow.
_TOKEN_LENGTH = 512
_TOKEN_CHARS = string.ascii_letters + string.digits + "_-"


def beijing_day(now: float) -> int:
    """The number of the day (Beijing time) `now` falls in: WeChat's daily limits reset at
    midnight there."""
    return int((now + _BEIJING_OFFSET) // 86400)


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
    # Replaced by a newer token: past its end it is "not latest" (40001), not "expired".
    superseded: bool = False


@dataclass
class _Forced:
    """The forced stable_token refreshes of one appid: on which day, how many, the last."""

    day: int
    count: int
    last: float


class CredentialStore:
    """Per-appid account tokens (stable and legacy) and tickets, guarded by a lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stable: dict[str, _Expiring] = {}  # appid -> its newest stable token
        self._legacy: dict[str, _Expiring] = {}  # appid -> the last /cgi-bin/token token
        # Every token ever issued and not yet forgotten, to tell "expired" from "invalid".
        self._tokens: dict[str, _AccountToken] = {}
        self._tickets: dict[tuple[str, str], _Expiring] = {}  # (appid, type) -> its ticket
        self._forced: dict[str, _Forced] = {}
        self._quota_clears: dict[str, tuple[int, int]] = {}  # appid -> (month, clears)

    def _issue(
        self, table: dict[str, _Expiring], app_id: str, now: float, old_lives: float
    ) -> _Expiring:
        """A new token for `app_id` in `table`; the one it replaces stays valid `old_lives`
        seconds more at most (0: from now on "invalid", 40001)."""
        old = table.get(app_id)
        if old is not None and old.value in self._tokens:
            if old_lives <= 0:
                del self._tokens[old.value]
            else:
                ending = min(old.expires_at, now + old_lives)
                self._tokens[old.value] = _AccountToken(app_id, ending, superseded=True)
        token = _Expiring(_random(_TOKEN_LENGTH), now + ACCOUNT_TOKEN_TTL)
        table[app_id] = token
        self._tokens[token.value] = _AccountToken(app_id, token.expires_at)
        # Forget tokens long expired, so a long soak stays bounded.
        for value in [v for v, t in self._tokens.items() if t.expires_at + ACCOUNT_TOKEN_TTL < now]:
            del self._tokens[value]
        return token

    def _may_force(self, app_id: str, now: float) -> bool:
        """Whether a forced refresh refreshes now (and count it if so): 20 a day, 30 s apart."""
        day = beijing_day(now)
        forced = self._forced.get(app_id)
        if forced is None or forced.day != day:
            forced = self._forced[app_id] = _Forced(day, 0, float("-inf"))
        if forced.count >= FORCED_REFRESHES_PER_DAY or now - forced.last < FORCED_REFRESH_INTERVAL:
            return False
        forced.count += 1
        forced.last = now
        return True

    def stable_token(self, app_id: str, force_refresh: bool) -> tuple[str, int]:
        """(token, seconds left): the current stable token; a new one when there is none or it
        expired, when it is in its last five minutes (the old one stays valid), or when
        `force_refresh` is allowed now (the old one is invalid at once)."""
        with self._lock:
            now = self._clock()
            token = self._stable.get(app_id)
            # Every forced call counts against the limits, whatever it finds.
            forced = force_refresh and self._may_force(app_id, now)
            if token is None or now >= token.expires_at or forced:
                token = self._issue(self._stable, app_id, now, 0)
            elif token.expires_at - now < OVERLAP:
                token = self._issue(self._stable, app_id, now, OVERLAP)
            return token.value, int(token.expires_at - now)

    def legacy_token(self, app_id: str) -> tuple[str, int]:
        """A new token; the one /cgi-bin/token issued before stays valid five more minutes."""
        with self._lock:
            now = self._clock()
            token = self._issue(self._legacy, app_id, now, OVERLAP)
            return token.value, int(ACCOUNT_TOKEN_TTL)

    def app_of(self, access_token: str) -> str:
        """The appid an account token belongs to: 40001 unknown or superseded, 42001 expired."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None:
                raise GrantError(40001)
            if self._clock() >= token.expires_at:
                raise GrantError(40001 if token.superseded else 42001)
            return token.app_id

    def invalidate_tokens(self, app_id: str) -> None:
        """Every account token of `app_id` becomes invalid (40001), as when the AppSecret is
        reset on WeChat's console."""
        with self._lock:
            for value in [v for v, t in self._tokens.items() if t.app_id == app_id]:
                del self._tokens[value]
            self._stable.pop(app_id, None)
            self._legacy.pop(app_id, None)

    def ticket(self, app_id: str, kind: str = "jsapi") -> tuple[str, int]:
        """(ticket, 7200): the current ticket of type `kind`, or a new one when it expired;
        handing it out keeps it valid 7200 s more, as WeChat's constant expires_in says."""
        with self._lock:
            now = self._clock()
            ticket = self._tickets.get((app_id, kind))
            # Real tickets are 86 characters of this alphabet.
            value = _random(86) if ticket is None or now >= ticket.expires_at else ticket.value
            self._tickets[app_id, kind] = _Expiring(value, now + TICKET_TTL)
            return value, int(TICKET_TTL)

    def may_clear_quota(self, app_id: str) -> bool:
        """Whether clear_quota may reset the quotas now (and count it if so): ten times a
        calendar month (Beijing time)."""
        with self._lock:
            day = time.gmtime(beijing_day(self._clock()) * 86400)
            month = day.tm_year * 12 + day.tm_mon
            seen, clears = self._quota_clears.get(app_id, (month, 0))
            clears = clears if seen == month else 0
            if clears >= QUOTA_CLEARS_PER_MONTH:
                return False
            self._quota_clears[app_id] = (month, clears + 1)
            return True

    def current_ticket(self, app_id: str) -> str | None:
        """The jsapi_ticket a page's signature must use now; None if none is valid."""
        with self._lock:
            ticket = self._tickets.get((app_id, "jsapi"))
            if ticket is None or self._clock() >= ticket.expires_at:
                return None
            return ticket.value
