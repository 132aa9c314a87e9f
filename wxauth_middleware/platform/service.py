"""A third-party platform at work: its component_access_token (kept like an account's token:
one call per burst, shared by every instance through Redis), the admin's authorization, the
authorizers' tokens, and the code exchange of a login on an account's behalf.

One `PlatformService` per platform serves all of its accounts; each account's core is handed
the service (a value, never a "current platform").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

from ..config import Config
from ..effects import Flow
from ..errors import ConfigurationError, UpstreamResponseError, WeChatAPIError
from ..urls import beside_authorize
from ..wechat.api import CallPolicy, Issued, TokenGrant
from ..wechat.kept import Keeper, Slot
from . import api
from .errors import AuthorizationRevoked, PlatformNotReady
from .store import MemoryValues, PlatformStore, RedisValues
from .values import Platform

__all__ = ["COMPONENT_LOGIN_PAGE", "PlatformService", "component_login_page"]

logger = logging.getLogger("wxauth_middleware")
T = TypeVar("T")

COMPONENT_LOGIN_PAGE = "https://mp.weixin.qq.com/cgi-bin/componentloginpage"
_WECHAT_AUTHORIZE_HOST = "open.weixin.qq.com"
# errcodes: the component token is stale; the ticket is expired or invalid; the refresh
# token is no longer valid (the admin must authorize again).
_STALE_TOKEN = frozenset({40001, 42001})
_BAD_TICKET = frozenset({61005, 61006})
_LOST_REFRESH = 61023


def component_login_page(config: Config) -> str:
    """The admin's consent page: WeChat's, or that of the emulator `authorize_url` names."""
    if urlsplit(config.authorize_url).hostname == _WECHAT_AUTHORIZE_HOST:
        return COMPONENT_LOGIN_PAGE
    return beside_authorize(config.authorize_url, "/cgi-bin/componentloginpage")


class PlatformService:
    """A platform's credentials and flows, for the middleware configured by `config`."""

    def __init__(
        self, platform: Platform, config: Config, clock: Callable[[], float] = time.time
    ) -> None:
        self.platform = platform
        self.component_appid = platform.component_appid
        self._config = config
        shared = config.redis_url is not None
        self.store = PlatformStore(
            RedisValues() if shared else MemoryValues(clock),
            config.redis_prefix,
            self.component_appid,
        )
        self._keeper = Keeper(clock, shared, config.login_timeout)
        key = f"{config.redis_prefix}platform:{{{self.component_appid}}}:token"
        self._token = Slot("component_access_token", key)

    def __repr__(self) -> str:
        return f"PlatformService(component_appid={self.component_appid!r})"

    def _policy(self) -> CallPolicy:
        config = self._config
        return CallPolicy.of(config.http_timeout, config.retries, config.login_timeout)

    # -- the component_access_token --------------------------------------------------------

    def component_token(self, rejected: str | None = None) -> Flow[str]:
        return (yield from self._keeper.get(self._token, self._issue_component, rejected))

    def _issue_component(self, rejected: str | None) -> Flow[Issued]:
        ticket = yield from self.store.ticket()
        if ticket is None:
            raise PlatformNotReady(f"platform {self.component_appid} has no verify ticket yet")
        platform = self.platform
        try:
            return (
                yield from api.component_token(
                    self._config.api_base_url,
                    self.component_appid,
                    platform.component_appsecret,
                    ticket,
                    self._policy(),
                )
            )
        except WeChatAPIError as exc:
            if exc.errcode not in _BAD_TICKET:
                raise
            raise PlatformNotReady(
                f"WeChat refused platform {self.component_appid}'s verify ticket "
                f"(errcode {exc.errcode}): waiting for its next push"
            ) from None

    def _with_component(self, call: Callable[[str], Flow[T]]) -> Flow[T]:
        """`call` with the component token; once more with a new one if WeChat says it is
        stale (40001/42001)."""
        token = yield from self.component_token()
        try:
            return (yield from call(token))
        except WeChatAPIError as exc:
            if exc.errcode not in _STALE_TOKEN:
                raise
            logger.warning(
                "wxauth platform %s: WeChat %s rejected the component_access_token (errcode "
                "%d): using a new one",
                self.component_appid,
                exc.endpoint,
                exc.errcode,
            )
        token = yield from self.component_token(rejected=token)
        return (yield from call(token))

    # -- the admin's authorization ---------------------------------------------------------

    def authorize_url(self, redirect_uri: str) -> Flow[str]:
        """The admin's authorization link, with a fresh pre_auth_code."""
        parts = urlsplit(redirect_uri) if isinstance(redirect_uri, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"platform_authorize_url: redirect_uri must be an absolute http(s) URL (on the "
                f"platform's 授权发起页域名), not {redirect_uri!r}."
            )
        config, appid = self._config, self.component_appid
        code = yield from self._with_component(
            lambda token: api.pre_auth_code(config.api_base_url, appid, token, self._policy())
        )
        query = urlencode(
            {
                "component_appid": appid,
                "pre_auth_code": code.value,
                "redirect_uri": redirect_uri,
                "auth_type": "1",
            }
        )
        return f"{component_login_page(config)}?{query}"

    def authorized(self, auth_code: str) -> Flow[str]:
        """Completes an authorization (the admin's `auth_code`, or an `authorized` event's
        AuthorizationCode): keeps the authorizer's refresh token; returns its AppID."""
        if not isinstance(auth_code, str) or not auth_code or not auth_code.isprintable():
            raise ConfigurationError(
                f"platform_authorized: auth_code must be the auth_code WeChat sent back to "
                f"redirect_uri, not {auth_code!r}."
            )
        config, appid = self._config, self.component_appid
        grant = yield from self._with_component(
            lambda token: api.query_auth(
                config.api_base_url, appid, token, auth_code, self._policy()
            )
        )
        if not grant.refresh_token:
            raise UpstreamResponseError(
                "WeChat cgi-bin/component/api_query_auth answered without an "
                "authorizer_refresh_token"
            )
        yield from self.store.keep_refresh_token(grant.app_id, grant.refresh_token)
        yield from self.store.set_revoked(grant.app_id, False)
        logger.info("wxauth platform %s: account %s authorized it", appid, grant.app_id)
        return grant.app_id

    # -- on an account's behalf ------------------------------------------------------------

    def authorizer_token(self, app_id: str, rejected: str | None = None) -> Flow[Issued]:
        """A new access token of the authorizer `app_id` (its kept refresh token replaced
        when WeChat sends another)."""
        _, revoked = yield from self.store.readiness(app_id)
        if revoked:
            raise AuthorizationRevoked(f"account {app_id} revoked its authorization")
        refresh = yield from self.store.refresh_token(app_id)
        if refresh is None:
            raise AuthorizationRevoked(
                f"no refresh token is kept for account {app_id}",
                hint="The account's admin has not authorized the platform here yet: send "
                "them to platform_authorize_url, then call platform_authorized(auth_code).",
            )
        config, appid = self._config, self.component_appid
        try:
            grant = yield from self._with_component(
                lambda token: api.authorizer_token(
                    config.api_base_url, appid, token, app_id, refresh, self._policy()
                )
            )
        except WeChatAPIError as exc:
            if exc.errcode != _LOST_REFRESH:
                raise
            logger.error(
                "wxauth platform %s: WeChat no longer accepts account %s's refresh token "
                "(61023): its admin must authorize the platform again",
                appid,
                app_id,
            )
            raise AuthorizationRevoked(f"account {app_id}'s refresh token is invalid") from None
        if grant.refresh_token and grant.refresh_token != refresh:
            yield from self.store.keep_refresh_token(app_id, grant.refresh_token)
        return grant.access

    def ready(self, app_id: str) -> Flow[None]:
        """Raises PlatformNotReady (no ticket yet) or AuthorizationRevoked (`app_id` revoked
        its authorization): a login on its behalf cannot succeed."""
        has_ticket, revoked = yield from self.store.readiness(app_id)
        if revoked:
            raise AuthorizationRevoked(f"account {app_id} revoked its authorization")
        if not has_ticket:
            raise PlatformNotReady(f"platform {self.component_appid} has no verify ticket yet")

    def code_grant(self, app_id: str, code: str, policy: CallPolicy) -> Flow[TokenGrant]:
        """A user's login code of account `app_id`, exchanged on its behalf."""
        yield from self.ready(app_id)
        config, appid = self._config, self.component_appid
        return (
            yield from self._with_component(
                lambda token: api.code_grant(
                    config.api_base_url, app_id, code, appid, token, policy
                )
            )
        )

    def user_refresh(self, app_id: str, refresh_token: str, policy: CallPolicy) -> Flow[TokenGrant]:
        """A user's kept refresh token of account `app_id` (keep_tokens), used on its behalf."""
        config, appid = self._config, self.component_appid
        return (
            yield from self._with_component(
                lambda token: api.code_refresh(
                    config.api_base_url, app_id, refresh_token, appid, token, policy
                )
            )
        )
