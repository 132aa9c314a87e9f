"""The decision core: what to do with a request, with no I/O.

`LoginCore.handle` looks at an `HTTPRequest` and answers one of:

- `Forward(user)`: call the application, with `user` (a `WeChatUser` or None) attached;
- an `HTTPResponse`: answer with it (a redirect to WeChat, a 401, an error page);
- a login `Flow`: a generator that yields the calls to make to WeChat's API and finally
  returns the `HTTPResponse` to answer with (this is the callback).

The ASGI and WSGI middleware are thin drivers around it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import cookie_parser

from .config import Config
from .cookies import LoginState, LoginStateCodec, SessionCodec
from .errors import (
    InvalidRequest,
    LoginDeclined,
    LoginStateError,
    WeChatAPIError,
    WeChatAuthError,
)
from .http import HTTPRequest, HTTPResponse, delete_cookie_header, set_cookie_header
from .pages import default_error_response, json_response, redirect
from .urls import authorize_url, is_valid_state, request_origin, same_origin_path
from .user import WeChatUser
from .useragent import is_wechat_browser
from .wechat import Flow, fetch_user

__all__ = ["Decision", "Forward", "LoginCore", "is_navigation"]

logger = logging.getLogger("wxauth_middleware")


@dataclass(frozen=True, slots=True)
class Forward:
    """Call the application, with `user` attached to the request."""

    user: WeChatUser | None


ANONYMOUS = Forward(None)
Decision = Forward | HTTPResponse | Flow[HTTPResponse]

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


class LoginCore:
    """Everything the middleware decides, configured once from a `Config`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._sessions = SessionCodec(config.secret_keys, config.max_age)
        self._logins = LoginStateCodec(config.secret_keys, config.login_max_age)
        self._state_prefix = config.state_cookie_prefix
        self._always_secure = config.https_only or (config.public_url or "").startswith("https:")

    # -- the entry point -------------------------------------------------------------------

    def handle(self, request: HTTPRequest) -> Decision:
        cookies = cookie_parser(request.header("cookie"))
        if request.path == self.config.callback_path:
            return self._callback(request, cookies)
        user = self.session_user(cookies)
        if user is not None:
            return Forward(user)
        if not is_wechat_browser(request.header("user-agent")):
            return ANONYMOUS
        return self._require_login(request)

    def session_user(self, cookies: Mapping[str, str]) -> WeChatUser | None:
        value = cookies.get(self.config.session_cookie)
        return self._sessions.decode(value) if value else None

    # -- starting a login ------------------------------------------------------------------

    def _require_login(self, request: HTTPRequest) -> HTTPResponse:
        scope = self.config.scope
        if is_navigation(request):
            return self._start_login(request, request.target, scope)
        # An API call can't follow a redirect to WeChat: tell the front end where to send the
        # page. After the login it comes back to the page that made the call, when known.
        origin = self._origin(request)
        return_to = (origin and same_origin_path(request.header("referer"), origin)) or "/"
        return self._start_login(request, return_to, scope, navigation=False)

    def _start_login(
        self,
        request: HTTPRequest,
        return_to: str,
        scope: str,
        *,
        attempt: int = 0,
        navigation: bool = True,
        cookies: tuple[tuple[str, str], ...] = (),
    ) -> HTTPResponse:
        origin = self._origin(request)
        if origin is None:
            return self._error(
                InvalidRequest(
                    "the Host header is not a valid host name",
                    hint="The request's Host header is malformed. If the site is behind a "
                    "proxy, set the public_url option to the site's public origin.",
                ),
                request,
            )
        if not return_to.startswith("/") or return_to.startswith(("//", "/\\")):
            return_to = "/"
        state = secrets.token_hex(16)
        login = LoginState(state, return_to, scope, attempt)
        state_cookie = set_cookie_header(
            self._state_prefix + state,
            self._logins.encode(login),
            max_age=self.config.login_max_age,
            path=self.config.callback_path,
            domain=self.config.cookie_domain,
            secure=self._secure(request),
        )
        url = authorize_url(
            self.config.authorize_url,
            self.config.app_id,
            origin + self.config.callback_path,
            scope,
            state,
        )
        logger.debug("wxauth login start scope=%s attempt=%d", scope, attempt)
        if not navigation:
            return json_response(
                401,
                {
                    "error": "login_required",
                    "message": "Log in with WeChat: open authorize_url in the page.",
                    "authorize_url": url,
                },
                (*cookies, state_cookie),
            )
        return redirect(url, (*cookies, state_cookie))

    def _origin(self, request: HTTPRequest) -> str | None:
        if self.config.public_url is not None:
            return self.config.public_url
        return request_origin(request.scheme, request.header("host"))

    def _secure(self, request: HTTPRequest) -> bool:
        # Secure cookies on https; also on http when public_url says the public site is https
        # (a TLS-terminating proxy in front) or https_only is set.
        return self._always_secure or (self.config.public_url is None and request.scheme == "https")

    # -- the callback ----------------------------------------------------------------------

    def _callback(self, request: HTTPRequest, cookies: Mapping[str, str]) -> Decision:
        params: dict[str, str] = {}
        for key, value in parse_qsl(request.query_string, keep_blank_values=True):
            params.setdefault(key, value)
        state = params.get("state", "")
        login = None
        if is_valid_state(state):
            cookie = cookies.get(self._state_prefix + state)
            login = self._logins.decode(cookie, state) if cookie else None
        if login is None:
            # Unknown, forged, expired or another browser's state: never log anyone in, and
            # never restart the login from here (a browser refusing cookies would loop).
            return self._error(LoginStateError("unknown or expired login state"), request)
        if login.done:
            # A replay of a completed callback: back button, refresh, a double redirect.
            if self.session_user(cookies) is not None:
                return redirect(login.return_to)
            return self._error(LoginStateError("login state already used"), request, login)
        code = params.get("code")
        if not code:
            # The user refused (older WeChat clients come back with state and no code).
            error = LoginDeclined("the callback carried no code")
            return self._error(error, request, login, (self._drop_state(request, login),))
        return self._exchange(request, login, code)

    def _exchange(self, request: HTTPRequest, login: LoginState, code: str) -> Flow[HTTPResponse]:
        config = self.config
        started = time.monotonic()
        try:
            user = yield from fetch_user(
                config.api_base_url, config.app_id, config.app_secret, code, config.lang
            )
        except WeChatAPIError as exc:
            _log_failure(exc, started)
            if exc.is_invalid_code and login.attempt == 0:
                # A code can be spent by a replay or expire on a slow phone: start over once.
                # The attempt count rides in the new state cookie, so this happens only once.
                return self._start_login(
                    request,
                    login.return_to,
                    login.scope,
                    attempt=login.attempt + 1,
                    cookies=(self._drop_state(request, login),),
                )
            return self._error(exc, request, login)
        except WeChatAuthError as exc:
            _log_failure(exc, started)
            return self._error(exc, request, login)
        except Exception:
            # A bug must not show the visitor a traceback; the log keeps it.
            logger.exception("wxauth login failed with an unexpected error")
            return self._error(WeChatAuthError("unexpected error during login"), request, login)
        logger.info(
            "wxauth login ok openid=%s scope=%s snapshot=%s duration_ms=%d",
            user.openid,
            user.scope,
            int(user.is_snapshot_user),
            (time.monotonic() - started) * 1000,
        )
        return redirect(login.return_to, self._login_cookies(request, login, user))

    def _login_cookies(
        self, request: HTTPRequest, login: LoginState, user: WeChatUser
    ) -> tuple[tuple[str, str], ...]:
        config = self.config
        secure = self._secure(request)
        # A snapshot-mode identity is virtual: it lives only as long as the browser session.
        max_age = None if user.is_snapshot_user else config.max_age
        session = set_cookie_header(
            config.session_cookie,
            self._sessions.encode(user),
            max_age=max_age,
            path=config.cookie_path,
            domain=config.cookie_domain,
            secure=secure,
        )
        done = set_cookie_header(
            self._state_prefix + login.state,
            self._logins.encode(LoginState(login.state, login.return_to, login.scope, 0, True)),
            max_age=config.login_max_age,
            path=config.callback_path,
            domain=config.cookie_domain,
            secure=secure,
        )
        return (session, done)

    def _drop_state(self, request: HTTPRequest, login: LoginState) -> tuple[str, str]:
        return delete_cookie_header(
            self._state_prefix + login.state,
            path=self.config.callback_path,
            domain=self.config.cookie_domain,
            secure=self._secure(request),
        )

    # -- errors ----------------------------------------------------------------------------

    def _error(
        self,
        error: WeChatAuthError,
        request: HTTPRequest,
        login: LoginState | None = None,
        cookies: tuple[tuple[str, str], ...] = (),
    ) -> HTTPResponse:
        if login is not None:
            error.return_to = login.return_to
        response = None
        if self.config.on_error is not None:
            try:
                response = self.config.on_error(error, request)
            except Exception:
                logger.exception("wxauth on_error hook failed; using the default error page")
        if response is None:
            response = default_error_response(error, request)
        if cookies:
            response = HTTPResponse(response.status, (*response.headers, *cookies), response.body)
        return response


def _log_failure(error: WeChatAuthError, started: float) -> None:
    duration_ms = int((time.monotonic() - started) * 1000)
    if isinstance(error, WeChatAPIError):
        logger.warning(
            "wxauth login failed error=%s endpoint=%s errcode=%d rid=%s duration_ms=%d",
            error.code,
            error.endpoint,
            error.errcode,
            error.rid,
            duration_ms,
        )
    else:
        logger.warning(
            "wxauth login failed error=%s reason=%s duration_ms=%d",
            error.code,
            error.message,
            duration_ms,
        )
