"""WeChat's API as sans-I/O flows: the web authorization (code -> token -> (userinfo) -> user),
and the calls made with the Official Account's own credentials (its server access_token, the
JS-SDK's jsapi_ticket, a user's follow status).

`fetch_user` is a generator that yields the `UpstreamRequest`s to make and is sent back the
`UpstreamResponse`s. It is written once; the drivers (`drivers.py`) run it with an httpx
client, the way httpx runs an `Auth.auth_flow`. Network failures are thrown into the
generator as `UpstreamError`s, so the flow is the one place that decides about them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..effects import Flow, Sleep, UpstreamRequest, UpstreamResponse
from ..errors import (
    UpstreamResponseError,
    UpstreamTimeout,
    UpstreamUnavailable,
    WeChatAPIError,
)
from ..scopes import PROFILE_SCOPES
from ..user import WeChatUser

__all__ = [
    "CallPolicy",
    "Issued",
    "TokenGrant",
    "api_call",
    "exchange_code",
    "fetch_user",
    "follow_status",
    "grant_of",
    "issued_of",
    "jsapi_ticket",
    "parse_body",
    "refresh_grant",
    "stable_token",
    "user_of_grant",
]

logger = logging.getLogger("wxauth_middleware")


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How the flow calls WeChat's API.

    `timeout` bounds each call; `retries` more attempts, `backoff` seconds apart (doubling),
    are made only for failures that spent nothing: errcode -1 ("system busy") and connections
    that could not be opened. A timed-out or answered call is never repeated, since the code
    may be spent. `deadline` (a `time.monotonic()` value) bounds the whole login.
    """

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.2
    deadline: float = math.inf

    @classmethod
    def of(cls, http_timeout: float, retries: int, login_timeout: float) -> CallPolicy:
        """The options' policy for calls starting now: each within `http_timeout`, all of
        them within `login_timeout`."""
        return cls(http_timeout, retries, deadline=time.monotonic() + login_timeout)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """The answer of /sns/oauth2/access_token. The tokens stay on the server, in memory."""

    openid: str
    scope: str
    access_token: str
    refresh_token: str
    expires_in: int
    unionid: str | None
    is_snapshot_user: bool

    def __repr__(self) -> str:
        # Tokens are credentials: keep them out of reprs, tracebacks and logs.
        return f"TokenGrant(openid={self.openid!r}, scope={self.scope!r}, ...)"


def fetch_user(
    api_base_url: str,
    app_id: str,
    app_secret: str,
    code: str,
    lang: str,
    policy: CallPolicy = CallPolicy(),
    identity_key: str = "openid",
) -> Flow[tuple[WeChatUser, TokenGrant]]:
    """Exchange `code` for the user (and the tokens that came with it): the token call, then
    userinfo when the scope allows. The user's `app_id` is `app_id`; its `identity_key`,
    `identity_key` (the identity option)."""
    grant = yield from exchange_code(api_base_url, app_id, app_secret, code, policy)
    return (yield from user_of_grant(api_base_url, grant, lang, policy, app_id, identity_key))


def user_of_grant(
    api_base_url: str,
    grant: TokenGrant,
    lang: str,
    policy: CallPolicy,
    app_id: str = "",
    identity_key: str = "openid",
) -> Flow[tuple[WeChatUser, TokenGrant]]:
    """The user of a code's grant (of the account `app_id`): userinfo when its scope
    allows."""
    granted = PROFILE_SCOPES.intersection(grant.scope.split(","))
    if not granted:
        user = WeChatUser(
            openid=grant.openid,
            unionid=grant.unionid,
            scope="snsapi_base",
            is_snapshot_user=grant.is_snapshot_user,
            app_id=app_id,
            identity_key=identity_key,
        )
        return user, grant
    endpoint = "sns/userinfo"
    params = (("access_token", grant.access_token), ("openid", grant.openid), ("lang", lang))
    body = yield from api_call(api_base_url, endpoint, params, policy)
    openid = _str(body, "openid", endpoint)
    if openid != grant.openid:
        raise UpstreamResponseError(f"WeChat {endpoint} answered for another openid")
    privilege = body.get("privilege") or []
    if not isinstance(privilege, list):
        raise UpstreamResponseError(f"WeChat {endpoint}: privilege is not a list")
    user = WeChatUser(
        openid=openid,
        unionid=_opt_str(body, "unionid", endpoint) or grant.unionid,
        nickname=_opt_str(body, "nickname", endpoint),
        headimgurl=_opt_str(body, "headimgurl", endpoint),
        sex=_opt_int(body, "sex", endpoint),
        province=_opt_str(body, "province", endpoint),
        city=_opt_str(body, "city", endpoint),
        country=_opt_str(body, "country", endpoint),
        privilege=tuple(str(p) for p in privilege),
        scope=min(granted),
        is_snapshot_user=grant.is_snapshot_user,
        app_id=app_id,
        identity_key=identity_key,
    )
    return user, grant


def exchange_code(
    api_base_url: str,
    app_id: str,
    app_secret: str,
    code: str,
    policy: CallPolicy = CallPolicy(),
) -> Flow[TokenGrant]:
    endpoint = "sns/oauth2/access_token"
    params = (
        ("appid", app_id),
        ("secret", app_secret),
        ("code", code),
        ("grant_type", "authorization_code"),
    )
    body = yield from api_call(api_base_url, endpoint, params, policy)
    return grant_of(body, endpoint)


def refresh_grant(
    api_base_url: str, app_id: str, refresh_token: str, policy: CallPolicy = CallPolicy()
) -> Flow[TokenGrant]:
    """A new access_token for a kept refresh_token (valid 30 days; refreshing does not
    extend it)."""
    endpoint = "sns/oauth2/refresh_token"
    params = (("appid", app_id), ("grant_type", "refresh_token"), ("refresh_token", refresh_token))
    body = yield from api_call(api_base_url, endpoint, params, policy)
    return grant_of(body, endpoint)


def grant_of(body: dict[str, Any], endpoint: str) -> TokenGrant:
    expires_in = _opt_int(body, "expires_in", endpoint)
    return TokenGrant(
        openid=_str(body, "openid", endpoint),
        scope=_opt_str(body, "scope", endpoint) or "snsapi_base",
        access_token=_str(body, "access_token", endpoint),
        refresh_token=_opt_str(body, "refresh_token", endpoint) or "",
        expires_in=7200 if expires_in is None else expires_in,
        unionid=_opt_str(body, "unionid", endpoint) or None,
        is_snapshot_user=body.get("is_snapshotuser") in (1, "1", True),
    )


@dataclass(frozen=True, slots=True)
class Issued:
    """A credential of the account's own (its server access_token, a jsapi_ticket) as WeChat
    issued it: good for `expires_in` seconds from the answer."""

    value: str
    expires_in: int

    def __repr__(self) -> str:
        return f"Issued(expires_in={self.expires_in}, ...)"


def stable_token(
    api_base_url: str, app_id: str, app_secret: str, force_refresh: bool, policy: CallPolicy
) -> Flow[Issued]:
    """The account's server access_token from /cgi-bin/stable_token. The normal mode answers
    the same token while it is valid, so instances calling it do not invalidate each other's;
    `force_refresh` issues a new one and invalidates the old (a last resort)."""
    endpoint = "cgi-bin/stable_token"
    body = yield from api_call(
        api_base_url,
        endpoint,
        (),
        policy,
        json_body={
            "grant_type": "client_credential",
            "appid": app_id,
            "secret": app_secret,
            "force_refresh": force_refresh,
        },
    )
    return issued_of(body, "access_token", endpoint)


def jsapi_ticket(api_base_url: str, access_token: str, policy: CallPolicy) -> Flow[Issued]:
    """The account's jsapi_ticket, which signs the JS-SDK's `wx.config`."""
    endpoint = "cgi-bin/ticket/getticket"
    params = (("access_token", access_token), ("type", "jsapi"))
    body = yield from api_call(api_base_url, endpoint, params, policy)
    return issued_of(body, "ticket", endpoint)


def follow_status(
    api_base_url: str, access_token: str, openid: str, lang: str, policy: CallPolicy
) -> Flow[bool]:
    """Whether `openid` follows the account (/cgi-bin/user/info's `subscribe`)."""
    endpoint = "cgi-bin/user/info"
    params = (("access_token", access_token), ("openid", openid), ("lang", lang))
    body = yield from api_call(api_base_url, endpoint, params, policy)
    subscribe = _opt_int(body, "subscribe", endpoint)
    if subscribe not in (0, 1):
        raise UpstreamResponseError(f"WeChat {endpoint} answered without a valid 'subscribe'")
    return subscribe == 1


def issued_of(body: dict[str, Any], key: str, endpoint: str) -> Issued:
    expires_in = _opt_int(body, "expires_in", endpoint)
    if expires_in is not None and expires_in <= 0:
        raise UpstreamResponseError(f"WeChat {endpoint} answered expires_in {expires_in}")
    return Issued(_str(body, key, endpoint), 7200 if expires_in is None else expires_in)


def api_call(
    api_base_url: str,
    endpoint: str,
    params: tuple[tuple[str, str], ...],
    policy: CallPolicy,
    json_body: Mapping[str, object] | None = None,
) -> Flow[dict[str, Any]]:
    """A GET of WeChat's API at `endpoint` (a POST of `json_body`, if given), retried as
    `policy` allows; its answer's body."""
    url = f"{api_base_url}/{endpoint}"
    method: Literal["GET", "POST"] = "GET" if json_body is None else "POST"
    attempt = 0
    while True:
        remaining = policy.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout(f"the login's deadline passed before WeChat {endpoint}")
        try:
            timeout = min(policy.timeout, remaining)
            response = yield UpstreamRequest(url, params, endpoint, timeout, method, json_body)
            return parse_body(response, endpoint)
        except (WeChatAPIError, UpstreamUnavailable) as exc:
            transient = exc.errcode == -1 if isinstance(exc, WeChatAPIError) else exc.transient
            if not transient or attempt >= policy.retries:
                raise
            delay = policy.backoff * 2**attempt
            if time.monotonic() + delay >= policy.deadline:
                raise
            attempt += 1
            logger.info(
                "wxauth retrying WeChat %s in %.2fs (attempt %d): %s",
                endpoint,
                delay,
                attempt + 1,
                exc.code,
            )
            yield Sleep(delay)


def parse_body(response: UpstreamResponse, endpoint: str) -> dict[str, Any]:
    """A WeChat API answer as a dict, or the error it stands for.

    WeChat answers errors with HTTP 200 and a nonzero errcode, so the status is not success.
    Bodies come as text/plain or with a bogus charset parameter: decode the bytes as UTF-8
    ourselves, and tolerate the raw control characters nicknames can carry.
    """
    if response.status != 200:
        raise UpstreamResponseError(f"WeChat {endpoint} answered HTTP {response.status}")
    try:
        body = _JSON.decode(response.body.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise UpstreamResponseError(
            f"WeChat {endpoint} answered a body that is not JSON ({len(response.body)} bytes)"
        ) from None
    if not isinstance(body, dict):
        raise UpstreamResponseError(f"WeChat {endpoint} answered JSON that is not an object")
    errcode = body.get("errcode", 0)
    if errcode != 0:
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise UpstreamResponseError(f"WeChat {endpoint} answered errcode {errcode!r}")
        errmsg = body.get("errmsg")
        raise WeChatAPIError(errcode, errmsg if isinstance(errmsg, str) else "", endpoint=endpoint)
    return body


# Raw control characters allowed in strings; made once (json.loads given an option makes a
# decoder per call).
_JSON = json.JSONDecoder(strict=False)


def _str(body: dict[str, Any], key: str, endpoint: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise UpstreamResponseError(f"WeChat {endpoint} answered without a valid {key!r}")
    return value


def _opt_str(body: dict[str, Any], key: str, endpoint: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise UpstreamResponseError(f"WeChat {endpoint}: {key!r} is not a string")


def _opt_int(body: dict[str, Any], key: str, endpoint: str) -> int | None:
    value = body.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise UpstreamResponseError(f"WeChat {endpoint}: {key!r} is not an integer")
