"""Starting a login: the redirect to WeChat (or the 401 that tells a front end where to go),
the login state it carries, and the `login_path` endpoint that starts one on purpose."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit

from starlette.requests import cookie_parser

from ..config import WECHAT_AUTHORIZE_HOST, Config
from ..cookie_writer import CookieWriter
from ..cookies import Session
from ..decisions import ANONYMOUS, Decision, is_navigation, query_params
from ..errors import InvalidRequest
from ..messages import HTTPRequest, HTTPResponse
from ..pages import (
    continue_page,
    error_response,
    json_response,
    logged_out_page,
    open_in_wechat_response,
    redirect,
)
from ..relay.client import relay_client
from ..rules import OtherBrowsers
from ..scopes import PROFILE_SCOPES, QRCONNECT_SCOPE, SCOPES, WECOM_SSO_SCOPE
from ..startup.advice import is_upstream_host
from ..urls import authorize_url, request_origin, safe_return_path, same_origin_path
from ..useragent import is_wechat_browser, is_wecom_browser
from ..wecom.pages import open_in_wecom_response
from ..wecom.urls import wecom_login_url
from .in_progress import LoginState, LoginStateCodec, kept_return, with_login, without_login

__all__ = ["LoginStarter"]

logger = logging.getLogger("wxauth_middleware")


class LoginStarter:
    """Sends visitors to WeChat to log in, with a signed login state of their own."""

    def __init__(
        self,
        config: Config,
        cookies: CookieWriter,
        logins: LoginStateCodec,
        component_appid: str | None = None,
    ) -> None:
        self.config = config
        # A third-party platform's, whose users log in on the account's behalf.
        self._component_appid = component_appid
        self._cookies = cookies
        self._logins = logins
        self._warned: set[str] = set()  # the hosts a login started on, off public_url's
        # Called as each login starts (the adapters check there that the emulator answers).
        self.starting: Callable[[], None] = _nothing
        # Whose browser logs in here: WeCom's for a WeCom app, else WeChat's.
        self.in_app: Callable[[str | None], bool] = (
            is_wechat_browser if config.wecom is None else is_wecom_browser
        )
        # A site logging in through a relay (relay_url) sends its visitors there: those of
        # the browsers its relay logs in.
        self.relay = relay_client(config)
        if self.relay is not None:
            self.in_app = _RELAYED_BROWSERS[config.relay_browsers]
        # Whose app other browsers are asked to open the site in: WeCom's, on a WeCom app's
        # host or a site whose relay logs in WeCom's browser only.
        self._wecom_site = config.wecom is not None or (
            self.relay is not None and config.relay_browsers == "wecom"
        )

    def require_login(self, request: HTTPRequest, scope: str) -> HTTPResponse:
        """A WeChat visitor without a session, on a page of `scope`; one who logged out is
        shown so, with a button that logs in again and comes back to the page."""
        if is_navigation(request):
            login_path = self.config.login_path
            if login_path is not None and self._cookies.logged_out_name in cookie_parser(
                request.header("cookie")
            ):
                again = f"{login_path}?{urlencode({'next': request.target})}"
                return logged_out_page(request, again)
            return self.start(request, request.target, scope)
        # An API call can't follow a redirect to WeChat: tell the front end where to send the
        # page. After the login it comes back to the page that made the call, when known.
        return self.start(request, self.referer_path(request), scope, navigation=False)

    def other_browser(self, request: HTTPRequest, policy: OtherBrowsers) -> Decision:
        """A browser that is not WeChat's (a desktop browser, WeCom, ...), without a session;
        on a WeCom app's host, one that is not WeCom's."""
        if self._wecom_site:
            if policy == "wecom_qr":
                return self.require_login(request, WECOM_SSO_SCOPE)
            if policy == "refuse":
                page = (self.origin(request) or "") + request.target
                return open_in_wecom_response(request, page)
            return ANONYMOUS
        if policy in ("pass", "wecom_qr"):
            return ANONYMOUS
        if policy == "qrconnect":
            return self.require_login(request, QRCONNECT_SCOPE)
        origin = self.origin(request) or ""
        return open_in_wechat_response(request, origin + request.target)

    def endpoint(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        """`login_path?next=/page[&scope=snsapi_userinfo]`: start a login on purpose (a
        single-page app's button, hash routes that never reach the server)."""
        params = query_params(request)
        next_page = safe_return_path(params.get("next")) or "/"
        policy = self.config.policy(next_page.partition("?")[0])
        scope = params.get("scope") or policy.scope
        if scope not in SCOPES:
            scope = self.config.scope
        # Asked on purpose (a "share my profile" button): ask even after an earlier refusal.
        if session is not None and (
            scope != "snsapi_userinfo" or session.user.scope in PROFILE_SCOPES
        ):
            return redirect(next_page)
        if self.in_app(request.header("user-agent")):
            started = self.start(request, next_page, scope, session)
            if self._cookies.logged_out_name not in cookies:
                return started
            # Logging in again on purpose ends the logged-out mark.
            clear = self._cookies.logged_out(request, clear=True)
            return HTTPResponse(started.status, (*started.headers, clear), started.body)
        if self._wecom_site:
            if policy.other_browsers == "wecom_qr":
                return self.start(request, next_page, WECOM_SSO_SCOPE, session)
            return open_in_wecom_response(request, (self.origin(request) or "") + next_page)
        if policy.other_browsers == "qrconnect":
            return self.start(request, next_page, QRCONNECT_SCOPE, session)
        if policy.other_browsers == "scan":
            return redirect(f"{self.config.scan_path}?{urlencode({'next': next_page})}")
        origin = self.origin(request) or ""
        return open_in_wechat_response(request, origin + next_page)

    def start(
        self,
        request: HTTPRequest,
        return_to: str,
        scope: str,
        session: Session | None = None,
        *,
        attempt: int = 0,
        navigation: bool = True,
        replaces: str | None = None,
        restart_page: bool = False,
    ) -> HTTPResponse:
        """Off to WeChat, to come back to `return_to`: a redirect for a page, a 401 with the
        authorize URL for an API call. The login is bound to `session` (the one it starts
        from, if any); it joins the browser's other logins in progress, replacing the login
        of state `replaces`. With `restart_page`, it restarts a login whose state cookie was
        lost: a 200 page sets the cookie (a cookie set on a redirect is what was lost) and
        goes on to WeChat, with a state that says so, so it happens only once."""
        config = self.config
        origin = self.origin(request)
        if origin is None:
            error = InvalidRequest(
                "the Host header is not a valid host name",
                hint="The request's Host header is malformed. If the site is behind a "
                "proxy, set the public_url option to the site's public origin.",
            )
            return error_response(config.on_error, error, request)
        return_to = kept_return(safe_return_path(return_to) or "/")
        if restart_page:
            state = self._restart_state()
        elif self.relay is not None:
            # The login's nonce: kept in the login-state cookie, never in a URL (the relay's
            # start link carries its hash).
            state = secrets.token_hex(16)
        else:
            state = self._state(request)
        bound = session.user.identity if session is not None else ""
        login = LoginState(
            state, return_to, scope, attempt, False, bound, not navigation, self._logins.now()
        )
        # One cookie holds the browser's logins in progress (two tabs at once), a bounded
        # few: a front end polling while logged out, or pages left at WeChat's consent, must
        # not pile up cookies that the callback request then carries (servers refuse large
        # Cookie headers, and the login would fail).
        value = self._cookies.login_value(request)
        logins = self._logins.decode(value) if value else ()
        if replaces is not None:
            logins = without_login(logins, replaces)
        state_cookie = self._cookies.login_state(
            request, self._logins.encode(with_login(logins, login))
        )
        redirect_uri = origin + config.callback_path
        self.starting()
        if config.public_url is None and self.relay is None:
            self._warn_upstream_host(request)
        if self.relay is not None:
            url = self.relay.start_url(redirect_uri, scope, state, self._logins.now())
        elif config.wecom is not None:
            url = wecom_login_url(config.wecom, redirect_uri, scope, state)
        elif scope == QRCONNECT_SCOPE:
            assert config.website_app_id is not None  # checked by Config
            url = authorize_url(
                config.qrconnect_url, config.website_app_id, redirect_uri, scope, state
            )
        else:
            url = authorize_url(
                config.authorize_url,
                config.own_account_id,
                redirect_uri,
                scope,
                state,
                self._component_appid,
            )
        logger.info("wxauth login start scope=%s attempt=%d page=%s", scope, attempt, navigation)
        if restart_page:
            return continue_page(url, (state_cookie,))
        if not navigation:
            payload: dict[str, object] = {
                "error": "login_required",
                "message": "Log in with WeChat: open authorize_url (or login_url) in the page.",
                "authorize_url": url,
            }
            if config.login_path is not None:
                query = {"next": return_to}
                if scope not in (config.scope, QRCONNECT_SCOPE, WECOM_SSO_SCOPE):
                    query["scope"] = scope  # the page's rule wants more than the site default
                payload["login_url"] = f"{config.login_path}?{urlencode(query)}"
            return json_response(401, payload, (state_cookie,))
        return redirect(url, (state_cookie,))

    def host(self, request: HTTPRequest) -> str | None:
        """The host (and port) the browser sent this request to, if it is a valid one."""
        origin = request_origin(request.scheme, request.header("host"))
        return origin.partition("://")[2] if origin is not None else None

    def started_host(self, state: str) -> str | None:
        """The host a login of `state` started on, when it said so: a login started on
        another host than public_url's, whose login-state cookie stayed with that host."""
        if state[:1] != "H" or len(state) <= _HOST_AT:
            return None
        nonce, tag = state[1:_RESTART_NONCE], state[_RESTART_NONCE:_HOST_AT]
        try:
            host = bytes.fromhex(state[_HOST_AT:]).decode("ascii")
        except ValueError:
            return None
        valid = any(
            hmac.compare_digest(tag, _host_tag(key, nonce, host)) for key in self.config.secret_keys
        )
        return host if valid else None

    def _state(self, request: HTTPRequest) -> str:
        """A new login's state. A login that starts on another host than public_url's comes
        back to public_url's, where its login-state cookie is not (a browser keeps cookies
        per host): its state carries the host it started on, signed, so that the callback
        can say what happened instead of "unknown state". Not with cookie_domain, whose
        cookies every host under it shares."""
        public_url, host = self.config.public_url, self.host(request)
        if public_url is None or host is None or self.config.cookie_domain is not None:
            return secrets.token_hex(16)
        site = public_url.partition("://")[2]
        if host == site or 2 * len(host) > _MAX_STATE - _HOST_AT:
            return secrets.token_hex(16)
        # A proxy that rewrites Host (to 127.0.0.1:8000, "app") with public_url set is the
        # right setup: the visitor is on public_url's host, and so is the cookie.
        upstream = is_upstream_host(host)
        if not upstream and len(self._warned) < _WARNED_HOSTS and host not in self._warned:
            self._warned.add(host)  # once per host: a proxy that rewrites Host says it once
            logger.warning(
                "wxauth login started on host %s, but WeChat will come back to %s "
                "(public_url): the login-state cookie of %s is not sent there, unless a proxy "
                "rewrites the Host header. Send visitors to %s.",
                host,
                site,
                host,
                public_url,
            )
        nonce = secrets.token_hex(12)
        key = self.config.secret_keys[-1]
        return "H" + nonce + _host_tag(key, nonce, host) + host.encode("ascii").hex()

    def _warn_upstream_host(self, request: HTTPRequest) -> None:
        """Without public_url, a Host that looks like a proxy's upstream address (an IP
        address, a name without a dot) makes a redirect_uri WeChat refuses (10003): said
        once per host, with WeChat's own authorize_url."""
        host = self.host(request)
        if host is None or not is_upstream_host(host) or host in self._warned:
            return
        if urlsplit(self.config.authorize_url).hostname != WECHAT_AUTHORIZE_HOST:
            return  # the emulator on 127.0.0.1: local development, as it should be
        if len(self._warned) >= _WARNED_HOSTS:
            return
        self._warned.add(host)
        logger.warning(
            "wxauth login started with redirect_uri %s%s, built from the request's Host "
            "header (public_url is not set): WeChat accepts only the account's registered "
            "网页授权域名 and will answer 10003. Behind a proxy that rewrites Host, set "
            "public_url to the site's public origin (e.g. https://www.example.com).",
            self.origin(request),
            self.config.callback_path,
        )

    def is_restart(self, state: str) -> bool:
        """Whether `state` is one this middleware gave a login restarted after its state
        cookie was lost (signed: it cannot be made up)."""
        nonce, tag = state[1:_RESTART_NONCE], state[_RESTART_NONCE:]
        return state[:1] == "R" and any(
            hmac.compare_digest(tag, _restart_tag(key, nonce)) for key in self.config.secret_keys
        )

    def _restart_state(self) -> str:
        nonce = secrets.token_hex(12)
        return "R" + nonce + _restart_tag(self.config.secret_keys[-1], nonce)

    def origin(self, request: HTTPRequest) -> str | None:
        """The site's origin: public_url, or the request's own when it is valid."""
        if self.config.public_url is not None:
            return self.config.public_url
        return request_origin(request.scheme, request.header("host"))

    def referer_path(self, request: HTTPRequest) -> str:
        """The page of this site an API call came from (its Referer), or "/"."""
        origin = self.origin(request)
        return (origin and same_origin_path(request.header("referer"), origin)) or "/"


# A restarted login's state: "R", 24 hex characters of nonce, 16 of its HMAC (WeChat allows
# [A-Za-z0-9]{1,128}; a page login's state is 32 hex characters, so never starts with "R").
# One started off public_url's host: "H", the nonce, 16 of its HMAC, the host in hex.
_RESTART_NONCE = 25
_HOST_AT = _RESTART_NONCE + 16
_MAX_STATE = 128
# How many hosts off public_url's the log names (the Host header is the client's to make up).
_WARNED_HOSTS = 64


def _restart_tag(key: bytes, nonce: str) -> str:
    return hmac.new(key, b"wxauth_middleware.restart " + nonce.encode(), "sha256").hexdigest()[:16]


def _host_tag(key: bytes, nonce: str, host: str) -> str:
    message = f"wxauth_middleware.host {nonce} {host}".encode()
    return hmac.new(key, message, "sha256").hexdigest()[:16]


def _wechat_or_wecom(user_agent: str | None) -> bool:
    return is_wechat_browser(user_agent) or is_wecom_browser(user_agent)


# Whose visitors a site of a relay sends there (`relay_browsers`).
_RELAYED_BROWSERS: dict[str, Callable[[str | None], bool]] = {
    "wechat": is_wechat_browser,
    "wecom": is_wecom_browser,
    "both": _wechat_or_wecom,
}


def _nothing() -> None:
    pass
