"""Ending sessions and the user's own WeChat tokens: the `logout_path` endpoint, and the
application API behind the middleware's `revoke` and `user_access_token`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urlencode

from ..config import Config
from ..cookie_writer import CookieWriter
from ..cookies import Clock, Session
from ..decisions import Forward, query_params
from ..effects import Flow
from ..errors import ConfigurationError, StoreUnavailable, TokenUnavailable, WeChatAPIError
from ..messages import HTTPRequest, HTTPResponse
from ..pages import error_response, logout_page, redirect
from ..platform.service import PlatformService
from ..storage.store import SessionStore
from ..urls import request_origin, safe_return_path
from ..wechat.api import CallPolicy, refresh_grant

__all__ = ["Account"]

logger = logging.getLogger("wxauth_middleware")
# A kept access_token is renewed when it has less than this many seconds left.
_TOKEN_MARGIN = 300


class Account:
    """What the application (and the visitor, by logging out) does with sessions and tokens."""

    def __init__(
        self,
        config: Config,
        cookies: CookieWriter,
        store: SessionStore | None,
        clock: Clock,
        platform: PlatformService | None = None,
    ) -> None:
        self.config, self._cookies, self._store, self._clock = config, cookies, store, clock
        # A third-party platform's account: its users' tokens are renewed on its behalf.
        self._platform = platform

    def logout(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Flow[HTTPResponse | Forward]:
        """`POST logout_path[?next=/page]` from a page of this site: forget the session, back
        to a page of this site, marking the browser as logged out (a WeChat visitor then sees
        the logged-out page, not a new login, on every page until they log in again). Any
        other request (a GET, another site's form) gets the page
        with the logout button, and the session stays."""
        next_page = safe_return_path(query_params(request).get("next")) or "/"
        if request.method != "POST" or not self._same_origin(request):
            action = f"{self.config.logout_path}?{urlencode({'next': next_page})}"
            return logout_page(request, action, 200 if request.method in ("GET", "HEAD") else 403)
        if session is not None:
            if self._store is not None:
                try:
                    yield from self._store.delete(session)
                except StoreUnavailable as exc:
                    # Not logged out: never pretend it.
                    return error_response(self.config.on_error, exc, request)
            logger.info("wxauth logout openid=%s", session.user.openid)
        cookies_out = [self._cookies.clear_session(request)]
        if self.config.login_path is not None:
            # Back on a page, WeChat's visitor would be logged in again at once (silently with
            # snsapi_base): the mark shows them the logged-out page, with one tap to log in.
            cookies_out.append(self._cookies.logged_out(request))
        return redirect(next_page, tuple(cookies_out))

    def _same_origin(self, request: HTTPRequest) -> bool:
        """Whether the browser says the request comes from a page of this site: Sec-Fetch-Site
        (current browsers), else an Origin equal to the site's. No evidence is no."""
        site = request.header("sec-fetch-site")
        if site:
            return site == "same-origin"
        origin = request.header("origin")
        own = self.config.public_url or request_origin(request.scheme, request.header("host"))
        return bool(origin) and origin == own

    def revoke(self, identity: str) -> Flow[int]:
        """End every session of `identity` (an openid, or a unionid with identity='unionid')
        on every instance, and drop its kept tokens; returns how many sessions ended."""
        if self._store is None:
            raise ConfigurationError(
                "revoke needs the session store: set redis_url (signed-cookie sessions cannot "
                "be ended from the server; rotate secret_key to end them all)."
            )
        return (yield from self._store.revoke(identity))

    def user_access_token(self, openid: str) -> Flow[str]:
        """A valid WeChat access_token of `openid` (keep_tokens), renewed with the kept
        refresh_token when it is (nearly) expired. Raises TokenUnavailable when there is
        none to give: the user must log in again."""
        store = self._store
        if store is None or not self.config.keep_tokens:
            raise ConfigurationError("user_access_token needs keep_tokens=True and redis_url.")
        tokens = yield from store.kept(openid)
        if tokens is None:
            raise TokenUnavailable(f"no WeChat token is kept for openid {openid}")
        if tokens.expires_at - self._clock() > _TOKEN_MARGIN:
            return tokens.access_token
        policy = CallPolicy(timeout=self.config.http_timeout, retries=self.config.retries)
        try:
            if self._platform is not None and tokens.app_id == self.config.app_id:
                grant = yield from self._platform.user_refresh(
                    tokens.app_id, tokens.refresh_token, policy
                )
            else:
                grant = yield from refresh_grant(
                    self.config.api_base_url, tokens.app_id, tokens.refresh_token, policy
                )
        except WeChatAPIError as exc:
            if exc.errcode not in (40030, 42002):
                raise
            yield from store.forget(openid)
            raise TokenUnavailable(
                f"the refresh_token of openid {openid} is no longer valid ({exc.errcode})"
            ) from None
        renewed = replace(
            tokens,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token or tokens.refresh_token,
            expires_at=self._clock() + grant.expires_in,
        )
        yield from store.renewed(renewed)
        return renewed.access_token
