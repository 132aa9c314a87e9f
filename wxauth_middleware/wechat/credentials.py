"""The Official Account's own credentials, as sans-I/O flows: its server ("basic")
access_token, the JS-SDK's jsapi_ticket and `wx.config` signature, and a user's follow status.

The access_token is the one the application uses for every other call to WeChat's API made in
the account's name (templates, menus, user info). It comes from /cgi-bin/stable_token, never
from the older /cgi-bin/token, where every call issues a new token and invalidates the one
other instances hold. Each credential is kept:

- in the process, until shortly before it expires; callers that find none wait for one call
  to WeChat (`Exclusive`), whose result they all get;
- with `redis_url`, also in Redis, shared by every instance, under
  `<redis_prefix>account:{<appid>}:token` and `...:ticket` (expiring with the credential; the
  hash tag keeps an account's keys in one slot of a Redis Cluster). An instance that finds
  none takes the lock `...:token:lock` (SET NX PX) and fetches; the others
  poll the key meanwhile. A lock holder that dies is harmless: the lock expires, and a waiter
  that waited `login_timeout` fetches for itself (stable_token answers the same token).
  Redis being down leaves each instance with its own copy, never an error.

While WeChat fails to issue a credential, the failure is remembered: for FAILURE_MEMORY
seconds after the first failure, doubling with each failure in a row up to
FAILURE_MEMORY_MAX, callers get the same error at once instead of asking WeChat again. So
anonymous traffic (the JS-SDK endpoint answers any browser) cannot burn the daily quota or
prolong WeChat's outage; a success forgets the failures.

A token WeChat rejects when it is used (40001, 42001) is replaced once: by another instance's
newer one, or the stable_token's current one; only if WeChat still answers the rejected token
is a new one forced (`force_refresh`), at most once a minute across instances.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from ..config import Config
from ..effects import Exclusive, Flow, Gate, Sleep, StoreCommands
from ..errors import StoreUnavailable, WeChatAPIError, WeChatAuthError
from .api import CallPolicy, Issued, follow_status, jsapi_ticket, stable_token

__all__ = ["Credentials", "jssdk_signature", "signable_url"]

logger = logging.getLogger("wxauth_middleware")
T = TypeVar("T")

# A credential is renewed this many seconds before it expires (or at half its life, if less).
RENEW_MARGIN = 300
# How often an instance waiting for another's refresh looks for its result in Redis.
LOCK_POLL = 0.05
# At most one forced refresh (force_refresh) per this many seconds, across instances.
FORCE_INTERVAL = 60
# errcodes that say the access_token used is no longer valid.
REJECTED_TOKEN = frozenset({40001, 42001})
# How long a failure to issue a credential is remembered (seconds; see the module's docstring).
FAILURE_MEMORY = 2.0
FAILURE_MEMORY_MAX = 60.0
# Deletes the lock only if it is still this instance's (it may have expired and been retaken).
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def jssdk_signature(ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """The JS-SDK's `wx.config` signature (WeChat's JS-SDK documentation, appendix 1)."""
    signed = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(signed.encode("utf-8"), usedforsecurity=False).hexdigest()


def signable_url(url: object, origin: str | None = None) -> str:
    """`url` as WeChat verifies it: absolute http(s), its #fragment dropped. Raises ValueError
    for anything else, and for a URL that is not on `origin` (when given)."""
    if not isinstance(url, str):
        raise ValueError(f"url must be a string, not {type(url).__name__}")
    page = url.partition("#")[0]
    # The space is the one white-space character str.isprintable() lets through.
    if not page.isprintable() or " " in page:
        raise ValueError("url holds white space or control characters: percent-encode them")
    if origin and page.startswith(origin) and page[len(origin) : len(origin) + 1] in _AFTER_ORIGIN:
        return page  # the origin itself, then its path or query: on it (the common case)
    try:
        key = _origin_key(page)
        same = origin is None or key == _origin_key(origin)
    except ValueError:
        raise ValueError(f"url must be an absolute http(s) URL, not {page!r}") from None
    if not same:
        raise ValueError(f"url {page!r} is not on the site's origin {origin}")
    return page


# What may follow an origin in a URL on that origin ("" : nothing, the origin itself).
_AFTER_ORIGIN = ("/", "?", "")


def _origin_key(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def _nonce() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class _Held:
    value: str
    # When to stop using it (the clock's time).
    renew_at: float

    def __repr__(self) -> str:
        return f"_Held(renew_at={self.renew_at}, ...)"


class _Slot:
    """One credential: its copy in this process, its gate, its keys in Redis."""

    __slots__ = ("failed", "failures", "gate", "held", "key", "lock_key", "name", "retry_at")

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.lock_key = key + ":lock"
        self.gate = Gate()
        self.held: _Held | None = None
        # The last refresh's failure (time.monotonic(), error), until a refresh succeeds;
        # the failures in a row, and until when (time.monotonic()) their error is the answer.
        self.failed: tuple[float, WeChatAuthError] | None = None
        self.failures = 0
        self.retry_at = -math.inf

    def failure(self, error: WeChatAuthError) -> None:
        now = time.monotonic()
        self.failed = (now, error)
        self.failures += 1
        memory = min(FAILURE_MEMORY * 2 ** min(self.failures - 1, 16), FAILURE_MEMORY_MAX)
        self.retry_at = now + memory
        logger.warning(
            "wxauth: WeChat did not issue the account's %s (%s, %d failure(s) in a row): "
            "asking again in %.0f s at the earliest",
            self.name,
            error.code,
            self.failures,
            memory,
        )

    def remembered_failure(self, asked: float) -> WeChatAuthError | None:
        """The error to answer without asking WeChat: the refresh this caller waited for
        failed, or one failed a moment ago."""
        failed = self.failed
        if failed is None or (failed[0] < asked and time.monotonic() >= self.retry_at):
            return None
        # A copy each time: raising one object again and again would chain its tracebacks.
        error = failed[1].leading_back_to("")
        error.return_to = failed[1].return_to
        return error.with_traceback(None)

    def success(self, held: _Held) -> None:
        self.failed, self.failures, self.retry_at = None, 0, -math.inf
        self.held = held

    def fresh(self, now: float, rejected: str | None) -> str | None:
        held = self.held
        if held is None or held.renew_at <= now or held.value == rejected:
            return None
        return held.value


# A flow that asks WeChat for a credential, given the token just rejected (if any).
_Issue = Callable[[str | None], Flow[Issued]]


class Credentials:
    """The account's credentials and what is done with them, as flows.

    `clock` (seconds since the epoch) dates the credentials and the signatures' timestamps;
    `nonce` makes the signatures' nonceStr.
    """

    # The errcodes of a call that refused the token it was given (a new one is tried once).
    _token_rejected = REJECTED_TOKEN

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        self._config = config
        self._clock = clock
        self._nonce = nonce
        self._forced_at = -math.inf
        self._shared = config.redis_url is not None
        self._slots(config)

    def _slots(self, config: Config) -> None:
        """The account's credentials, empty: every account's token and ticket under its own
        AppID (shared by every instance)."""
        self._app_id, self._app_secret = config.own_account
        prefix = f"{config.redis_prefix}account:{{{self._app_id}}}:"
        self._token = _Slot("access_token", prefix + "token")
        self._ticket = _Slot("jsapi_ticket", prefix + "ticket")
        self._force_key = prefix + "force"

    def __repr__(self) -> str:
        return f"Credentials(app_id={self._app_id!r})"

    # -- what the application calls ------------------------------------------------------

    def access_token(self, rejected: str | None = None) -> Flow[str]:
        """The account's server access_token; `rejected`, a token WeChat just refused, is
        never the answer."""
        return (yield from self._get(self._token, self._issue_token, rejected))

    def jsapi_ticket(self) -> Flow[str]:
        return (yield from self._get(self._ticket, self._issue_ticket, None))

    def jssdk_config(self, url: str, origin: str | None) -> Flow[dict[str, object]]:
        """`wx.config`'s appId, timestamp, nonceStr and signature for the page at `url`."""
        page = signable_url(url, origin)
        ticket = self.held_jsapi_ticket() or (yield from self.jsapi_ticket())
        return self.jssdk_signed(page, ticket)

    def held_jsapi_ticket(self) -> str | None:
        """The jsapi_ticket this process holds, if it is fresh: signing with it needs no call
        (`jssdk_signed`)."""
        return self._ticket.fresh(self._clock(), None)

    def jssdk_signed(self, page: str, ticket: str) -> dict[str, object]:
        """`wx.config`'s four keys for `page` (a `signable_url`), signed with `ticket`."""
        timestamp = int(self._clock())
        nonce = self._nonce()
        return {
            "appId": self._app_id,
            "timestamp": timestamp,
            "nonceStr": nonce,
            "signature": jssdk_signature(ticket, nonce, timestamp, page),
        }

    def follows(self, openid: str) -> Flow[bool]:
        """Whether the user `openid` (of this account) follows it."""
        if not isinstance(openid, str) or not openid or not openid.isprintable():
            raise ValueError(f"openid must be a non-empty string, not {openid!r}")
        config = self._config
        return (
            yield from self._with_token(
                lambda token: follow_status(
                    config.api_base_url, token, openid, config.lang, self._policy()
                )
            )
        )

    # -- keeping the credentials -----------------------------------------------------------

    def _get(self, slot: _Slot, issue: _Issue, rejected: str | None) -> Flow[str]:
        value = slot.fresh(self._clock(), rejected)
        if value is None:
            asked = time.monotonic()
            value = yield Exclusive(slot.gate, self._refresh(slot, issue, rejected, asked))
        return value

    def _refresh(self, slot: _Slot, issue: _Issue, rejected: str | None, asked: float) -> Flow[str]:
        value = slot.fresh(self._clock(), rejected)
        if value is not None:
            return value  # refreshed by the caller this one waited for
        failed = slot.remembered_failure(asked)
        if failed is not None:
            # A burst of callers while WeChat is down makes one call, not one each in turn,
            # and the next callers wait a while before asking again.
            raise failed
        try:
            held = yield from self._fetch(slot, issue, rejected)
        except WeChatAuthError as exc:
            slot.failure(exc)
            raise
        slot.success(held)
        return held.value

    def _fetch(self, slot: _Slot, issue: _Issue, rejected: str | None) -> Flow[_Held]:
        held = None
        if self._shared:
            try:
                held = yield from self._shared_refresh(slot, issue, rejected)
            except StoreUnavailable:
                logger.warning(
                    "wxauth: Redis is unavailable: this instance fetches and keeps the "
                    "account's %s on its own until Redis answers again",
                    slot.name,
                )
        if held is None:
            held = self._held((yield from issue(rejected)))
        return held

    def _shared_refresh(self, slot: _Slot, issue: _Issue, rejected: str | None) -> Flow[_Held]:
        """The credential from Redis, or fetched by this instance under the lock and put
        there. Raises StoreUnavailable only before anything was asked of WeChat."""
        lock_life = self._config.login_timeout
        token = secrets.token_hex(8)
        owner: str | None = token
        give_up = time.monotonic() + lock_life
        while True:
            held = yield from self._stored(slot, rejected)
            if held is not None:
                return held
            (locked,) = yield StoreCommands(
                (("SET", slot.lock_key, token, "NX", "PX", int(lock_life * 1000)),)
            )
            if locked:
                # The holder before may have stored it between the two commands.
                held = yield from self._stored(slot, rejected)
                if held is not None:
                    yield from self._unlock(slot, token)
                    return held
                break
            if time.monotonic() >= give_up:
                logger.warning(
                    "wxauth: another instance did not bring the account's %s in %.0f s: "
                    "fetching it here",
                    slot.name,
                    lock_life,
                )
                owner = None
                break
            yield Sleep(LOCK_POLL)
        try:
            held = self._held((yield from issue(rejected)))
        except Exception:
            if owner is not None:
                yield from self._unlock(slot, owner)
            raise
        life_ms = max(1, int((held.renew_at - self._clock()) * 1000))
        commands: list[tuple[str | int | float, ...]] = [
            ("SET", slot.key, held.value, "PX", life_ms)
        ]
        if owner is not None:
            commands.append(("EVAL", _UNLOCK, 1, slot.lock_key, owner))
        with contextlib.suppress(StoreUnavailable):  # this instance keeps it anyway
            yield StoreCommands(tuple(commands))
        return held

    def _stored(self, slot: _Slot, rejected: str | None) -> Flow[_Held | None]:
        raw, life_ms = yield StoreCommands((("GET", slot.key), ("PTTL", slot.key)))
        if raw is None or not isinstance(life_ms, int) or life_ms <= 0:
            return None
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if value == rejected:
            return None
        return _Held(value, self._clock() + life_ms / 1000)

    def _unlock(self, slot: _Slot, owner: str) -> Flow[None]:
        # A lock left behind expires by itself: a failure here costs others a short wait.
        with contextlib.suppress(StoreUnavailable):
            yield StoreCommands((("EVAL", _UNLOCK, 1, slot.lock_key, owner),))

    def _held(self, issued: Issued) -> _Held:
        margin = min(RENEW_MARGIN, issued.expires_in / 2)
        return _Held(issued.value, self._clock() + issued.expires_in - margin)

    # -- asking WeChat ---------------------------------------------------------------------

    def _policy(self) -> CallPolicy:
        config = self._config
        return CallPolicy(
            timeout=config.http_timeout,
            retries=config.retries,
            deadline=time.monotonic() + config.login_timeout,
        )

    def _issue_token(self, rejected: str | None) -> Flow[Issued]:
        config = self._config
        issued = yield from stable_token(
            config.api_base_url, self._app_id, self._app_secret, False, self._policy()
        )
        if rejected is not None and issued.value == rejected and (yield from self._may_force()):
            logger.warning(
                "wxauth: WeChat rejects the account's access_token yet still issues it: "
                "forcing a new one (force_refresh; at most once a minute)"
            )
            issued = yield from stable_token(
                config.api_base_url, self._app_id, self._app_secret, True, self._policy()
            )
        return issued

    def _issue_ticket(self, rejected: str | None) -> Flow[Issued]:
        api = self._config.api_base_url
        return (yield from self._with_token(lambda token: jsapi_ticket(api, token, self._policy())))

    def _with_token(self, call: Callable[[str], Flow[T]]) -> Flow[T]:
        """`call` with the access_token; once more with a new one if WeChat rejects it."""
        token = yield from self.access_token()
        try:
            return (yield from call(token))
        except WeChatAPIError as exc:
            if exc.errcode not in self._token_rejected:
                raise
            logger.warning(
                "wxauth: WeChat %s rejected the account's access_token (errcode %d): "
                "using a new one",
                exc.endpoint,
                exc.errcode,
            )
        token = yield from self.access_token(rejected=token)
        return (yield from call(token))

    def _may_force(self) -> Flow[bool]:
        now = time.monotonic()
        if now - self._forced_at < FORCE_INTERVAL:
            return False
        self._forced_at = now
        if not self._shared:
            return True
        try:
            (first,) = yield StoreCommands(
                (("SET", self._force_key, "1", "NX", "EX", FORCE_INTERVAL),)
            )
        except StoreUnavailable:
            return True
        return bool(first)
