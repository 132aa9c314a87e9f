"""The Official Account's own credentials, as sans-I/O flows: its server ("basic")
access_token, the JS-SDK's jsapi_ticket and `wx.config` signature, and a user's follow status.

The access_token is the one the application uses for every other call to WeChat's API made in
the account's name (templates, menus, user info). It comes from /cgi-bin/stable_token, never
from the older /cgi-bin/token, where every call issues a new token and invalidates the one
other instances hold. Each credential is kept as `kept.py` keeps one: in the process until
shortly before it expires, one call to WeChat for all the callers that find none, and with
`redis_url` in Redis for every instance, under `<redis_prefix>account:{<appid>}:token` and
`...:ticket` (the hash tag keeps an account's keys in one slot of a Redis Cluster); a failure
to issue one is remembered for a moment, so a burst of callers makes one call.

A token WeChat rejects when it is used (40001, 42001) is replaced once: by another instance's
newer one, or the stable_token's current one; only if WeChat still answers the rejected token
is a new one forced (`force_refresh`), at most once a minute across instances.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from ..config import Config
from ..effects import Flow, StoreCommands
from ..errors import ConfigurationError, StoreUnavailable, WeChatAPIError
from .api import CallPolicy, Issued, follow_status, jsapi_ticket, stable_token
from .kept import Issue, Keeper, Slot

__all__ = ["Credentials", "jssdk_signature", "signable_url"]

logger = logging.getLogger("wxauth_middleware")
T = TypeVar("T")

# At most one forced refresh (force_refresh) per this many seconds, across instances.
FORCE_INTERVAL = 60
# errcodes that say the access_token used is no longer valid.
REJECTED_TOKEN = frozenset({40001, 42001})


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


# The slot of one credential (the WeCom app's credentials use it too).
_Slot = Slot


class Credentials:
    """The account's credentials and what is done with them, as flows.

    `clock` (seconds since the epoch) dates the credentials and the signatures' timestamps;
    `nonce` makes the signatures' nonceStr. `issue_token` gets a new access_token; by
    default the account's own, with its AppSecret (a platform's account: on its behalf).
    """

    # The errcodes of a call that refused the token it was given (a new one is tried once).
    _token_rejected = REJECTED_TOKEN

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _nonce,
        issue_token: Issue | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._nonce = nonce
        self._forced_at = -math.inf
        self._shared = config.redis_url is not None
        self._keeper = Keeper(clock, self._shared, config.login_timeout)
        # An account of a platform gets its token on its behalf (the authorizer's token).
        self._on_behalf = issue_token is not None
        self._issue: Issue = self._issue_token if issue_token is None else issue_token
        self._slots(config)

    def _slots(self, config: Config) -> None:
        """The account's credentials, empty: every account's token and ticket under its own
        AppID (shared by every instance)."""
        if self._on_behalf:
            self._app_id, self._app_secret = config.own_account_id, ""
        elif config.relay_url is not None and config.app_secret is None:
            # A site logging in through a relay, without an account of its own.
            self._app_id, self._app_secret = config.app_id or "", ""
        else:
            self._app_id, self._app_secret = config.own_account
        prefix = f"{config.redis_prefix}account:{{{self._app_id}}}:"
        self._token = Slot("access_token", prefix + "token")
        self._ticket = Slot("jsapi_ticket", prefix + "ticket")
        self._force_key = prefix + "force"

    def __repr__(self) -> str:
        return f"Credentials(app_id={self._app_id!r})"

    # -- what the application calls ------------------------------------------------------

    def access_token(self, rejected: str | None = None) -> Flow[str]:
        """The account's server access_token; `rejected`, a token WeChat just refused, is
        never the answer."""
        if self._config.relay_url is not None and self._config.app_secret is None:
            raise ConfigurationError(
                "this site logs in through a relay and has no account of its own: give it "
                "app_id and app_secret for access_token, the JS-SDK and follows."
            )
        return (yield from self._get(self._token, self._issue, rejected))

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

    def _get(self, slot: Slot, issue: Issue, rejected: str | None) -> Flow[str]:
        return (yield from self._keeper.get(slot, issue, rejected))

    # -- asking WeChat ---------------------------------------------------------------------

    def _policy(self) -> CallPolicy:
        config = self._config
        return CallPolicy.of(config.http_timeout, config.retries, config.login_timeout)

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
