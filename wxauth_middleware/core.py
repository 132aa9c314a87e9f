"""The decision core: what to do with a request, with no I/O.

`LoginCore.handle` looks at an `HTTPRequest` and answers one of:

- `Forward(user)`: call the application, with `user` (a `WeChatUser` or None) attached;
- an `HTTPResponse`: answer with it (a redirect to WeChat, a 401, an error page);
- a login `Flow`: a generator that yields the calls to make to WeChat's API and finally
  returns the `HTTPResponse` to answer with (this is the callback).

The ASGI and WSGI middleware are thin drivers around it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

from starlette.requests import cookie_parser

from .config import SCOPES, Config
from .cookies import (
    LoginState,
    LoginStateCodec,
    Session,
    SessionCodec,
    delete_cookie_header,
    set_cookie_header,
)
from .effects import Flow, HookCall
from .errors import (
    ConfigurationError,
    InvalidRequest,
    LoginDeclined,
    LoginStateError,
    LoginVetoed,
    StoreUnavailable,
    TokenUnavailable,
    WeChatAPIError,
    WeChatAuthError,
)
from .messages import HTTPRequest, HTTPResponse
from .pages import (
    default_error_response,
    json_response,
    open_in_wechat_response,
    redirect,
    snapshot_response,
)
from .store import SessionStore
from .urls import (
    authorize_url,
    is_valid_state,
    request_origin,
    safe_return_path,
    same_origin_path,
)
from .user import WeChatUser
from .useragent import classify_user_agent, is_wechat_browser
from .wechat import PROFILE_SCOPES, CallPolicy, fetch_user, refresh_grant

__all__ = ["Decision", "Forward", "LoginCore", "is_navigation"]

logger = logging.getLogger("wxauth_middleware")


@dataclass(frozen=True, slots=True)
class Forward:
    """Call the application, with `user` attached to the request.

    `target` (a path and query) replaces the request's own: a snapshot user's callback is
    handed to the page the login started from, as that page.
    """

    user: WeChatUser | None
    target: str | None = None


ANONYMOUS = Forward(None)
Decision = Forward | HTTPResponse | Flow[HTTPResponse | Forward]
# A path the middleware answers itself: (request, its cookies, its session) -> decision.
OwnPath = Callable[[HTTPRequest, Mapping[str, str], Session | None], Decision]

# Sec-Fetch-Dest values of a top-level or framed page load.
_PAGE_DESTS = frozenset({"document", "iframe", "frame"})
# The scope of WeChat's website QR-code login (desktop browsers).
QRCONNECT_SCOPE = "snsapi_login"
# A kept access_token is renewed when it has less than this many seconds left.
_TOKEN_MARGIN = 300
# The name suffix of the login-state cookie of logins started by an API call's 401 (states are
# hex, so it cannot collide with a page login's cookie).
_API_STATE = "api"


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
        self._sessions = SessionCodec(config.secret_keys, config.max_age, config.identity)
        self._logins = LoginStateCodec(config.secret_keys, config.login_max_age)
        self._state_prefix = config.state_cookie_prefix
        self._api_state = self._state_prefix + _API_STATE
        self._always_secure = config.https_only or (config.public_url or "").startswith("https:")
        self._rules = config.rule_set
        # With redis_url, sessions live in Redis and the cookie holds a signed id.
        self.store = (
            SessionStore(config.redis_prefix, config.secret_keys, config.max_age, config.identity)
            if config.redis_url is not None
            else None
        )
        # What quick_forward needs to know about the configuration, derived once.
        self._session_cookie_eq = config.session_cookie + "="
        self._upgrades = config.scope == "snsapi_userinfo" or any(
            rule.scope == "snsapi_userinfo" for rule in config.rule_set.rules
        )
        self._others_pass = config.other_browsers == "pass" and all(
            rule.other_browsers in (None, "pass") for rule in config.rule_set.rules
        )
        # The paths the middleware answers itself, whatever the browser.
        self._own_paths: dict[str, OwnPath] = {config.callback_path: self._callback}
        if config.login_path is not None:
            self._own_paths[config.login_path] = self._login_endpoint
        if config.logout_path is not None:
            self._own_paths[config.logout_path] = self._logout_endpoint
        for name, content in config.verify_files.items():
            self._own_paths["/" + name] = _text_file(content)

    # -- the entry point -------------------------------------------------------------------

    def quick_forward(self, path: str, user_agent: str, cookie_header: str) -> Forward | None:
        """The two common cases, decided from three strings without building an HTTPRequest:
        a valid session whose page needs nothing more, and another browser without a session
        where other browsers pass. None means "ask `handle`", which decides the same way."""
        if path in self._own_paths:
            return None
        if cookie_header and self.store is not None:
            if _cookie_value(cookie_header, self._session_cookie_eq):
                return None  # a stored session: `handle` looks it up
        elif cookie_header:
            session = self.session(cookie_header)
            if session is not None:
                if self._upgrades and self._needs_profile(session, "snsapi_userinfo"):
                    return None
                return Forward(session.user)
        if self._others_pass and not is_wechat_browser(user_agent):
            return ANONYMOUS
        return None

    def handle(self, request: HTTPRequest) -> Decision:
        cookie_header = request.header("cookie")
        if self.store is None:
            return self._decide(request, self.session(cookie_header))
        sid = self._session_id(cookie_header)
        if sid is None:
            return self._decide(request, None)
        return self._stored_session(request, sid)

    def _stored_session(self, request: HTTPRequest, sid: str) -> Flow[HTTPResponse | Forward]:
        assert self.store is not None
        try:
            session = yield from self.store.load(sid)
        except StoreUnavailable as exc:
            # Neither anonymous (a login would loop) nor logged in: say so.
            return self._error(exc, request)
        decision = self._decide(request, session)
        if isinstance(decision, (Forward, HTTPResponse)):
            return decision
        return (yield from decision)

    def _decide(self, request: HTTPRequest, session: Session | None) -> Decision:
        own = self._own_paths.get(request.path)
        if own is not None:
            return own(request, cookie_parser(request.header("cookie")), session)
        rule = self._rules.match(request.path) if self._rules else None
        if rule is not None and rule.exempt:
            return Forward(session.user if session else None)
        scope = rule.scope if rule is not None and rule.scope else self.config.scope
        if session is not None:
            if (
                self._needs_profile(session, scope)
                and is_navigation(request)
                and is_wechat_browser(request.header("user-agent"))
            ):
                # The page wants the profile and the session has only the silent scope: ask
                # once; a refusal is remembered in the session.
                return self._start_login(request, request.target, scope)
            return Forward(session.user)
        client = classify_user_agent(request.header("user-agent"))
        if client.is_wechat:
            return self._require_login(request, scope)
        policy = rule.other_browsers if rule is not None and rule.other_browsers else None
        return self._other_browser(request, policy or self.config.other_browsers)

    def session(self, cookie_header: str) -> Session | None:
        """The session a session cookie carries, if any valid one (without a store)."""
        value = _cookie_value(cookie_header, self._session_cookie_eq) if cookie_header else ""
        return self._sessions.decode(value) if value else None

    def _session_id(self, cookie_header: str) -> str | None:
        """The id of the stored session a session cookie carries, if its signature verifies."""
        assert self.store is not None
        value = _cookie_value(cookie_header, self._session_cookie_eq) if cookie_header else ""
        return self.store.session_id(value) if value else None

    def session_user(self, cookie_header: str) -> Flow[WeChatUser | None]:
        """The user of the session a Cookie header carries (a websocket's), if any. Raises
        StoreUnavailable if the store fails."""
        if self.store is None:
            session = self.session(cookie_header)
        else:
            sid = self._session_id(cookie_header)
            session = (yield from self.store.load(sid)) if sid is not None else None
        return session.user if session is not None else None

    # -- the store: revocation and kept tokens ------------------------------------------

    def revoke(self, identity: str) -> Flow[int]:
        """End every session of `identity` (an openid, or a unionid with identity='unionid')
        on every instance, and drop its kept tokens; returns how many sessions ended."""
        if self.store is None:
            raise ConfigurationError(
                "revoke needs the session store: set redis_url (signed-cookie sessions cannot "
                "be ended from the server; rotate secret_key to end them all)."
            )
        return (yield from self.store.revoke(identity))

    def user_access_token(self, openid: str) -> Flow[str]:
        """A valid WeChat access_token of `openid` (keep_tokens), renewed with the kept
        refresh_token when it is (nearly) expired. Raises TokenUnavailable when there is
        none to give: the user must log in again."""
        store = self.store
        if store is None or not self.config.keep_tokens:
            raise ConfigurationError("user_access_token needs keep_tokens=True and redis_url.")
        tokens = yield from store.kept(openid)
        if tokens is None:
            raise TokenUnavailable(f"no WeChat token is kept for openid {openid}")
        if tokens.expires_at - time.time() > _TOKEN_MARGIN:
            return tokens.access_token
        policy = CallPolicy(timeout=self.config.http_timeout, retries=self.config.retries)
        try:
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
            expires_at=time.time() + grant.expires_in,
        )
        yield from store.renewed(renewed)
        return renewed.access_token

    @staticmethod
    def _needs_profile(session: Session, scope: str) -> bool:
        return (
            scope == "snsapi_userinfo"
            and session.user.scope not in PROFILE_SCOPES
            and not session.profile_declined
        )

    # -- starting a login ------------------------------------------------------------------

    def _require_login(self, request: HTTPRequest, scope: str) -> HTTPResponse:
        if is_navigation(request):
            return self._start_login(request, request.target, scope)
        # An API call can't follow a redirect to WeChat: tell the front end where to send the
        # page. After the login it comes back to the page that made the call, when known.
        return self._start_login(request, self._referer_path(request), scope, navigation=False)

    def _other_browser(self, request: HTTPRequest, policy: str) -> Decision:
        """A browser that is not WeChat's (a desktop browser, WeCom, ...), without a session."""
        if policy == "pass":
            return ANONYMOUS
        if policy == "qrconnect":
            return self._require_login(request, QRCONNECT_SCOPE)
        origin = self._origin(request) or ""
        return open_in_wechat_response(request, origin + request.target)

    def _referer_path(self, request: HTTPRequest) -> str:
        origin = self._origin(request)
        return (origin and same_origin_path(request.header("referer"), origin)) or "/"

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
        config = self.config
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
        return_to = safe_return_path(return_to) or "/"
        state = secrets.token_hex(16)
        login = LoginState(state, return_to, scope, attempt)
        # A page's login gets a cookie of its own (two tabs at once). An API call's 401 gets
        # the one API cookie, replaced each time: a front end polling while logged out must
        # not pile up cookies that the callback request then carries (servers refuse large
        # Cookie headers, and the login would fail).
        state_cookie = set_cookie_header(
            self._state_prefix + (state if navigation else _API_STATE),
            self._logins.encode(login),
            max_age=config.login_max_age,
            path=config.callback_path,
            domain=config.cookie_domain,
            secure=self._secure(request),
        )
        redirect_uri = origin + config.callback_path
        if scope == QRCONNECT_SCOPE:
            assert config.website_app_id is not None  # checked by Config
            url = authorize_url(
                config.qrconnect_url, config.website_app_id, redirect_uri, scope, state
            )
        else:
            url = authorize_url(config.authorize_url, config.app_id, redirect_uri, scope, state)
        logger.info("wxauth login start scope=%s attempt=%d page=%s", scope, attempt, navigation)
        if not navigation:
            payload: dict[str, object] = {
                "error": "login_required",
                "message": "Log in with WeChat: open authorize_url (or login_url) in the page.",
                "authorize_url": url,
            }
            if config.login_path is not None:
                query = {"next": return_to}
                if scope not in (config.scope, QRCONNECT_SCOPE):
                    query["scope"] = scope  # the page's rule wants more than the site default
                payload["login_url"] = f"{config.login_path}?{urlencode(query)}"
            return json_response(401, payload, (*cookies, state_cookie))
        return redirect(url, (*cookies, state_cookie))

    def _origin(self, request: HTTPRequest) -> str | None:
        if self.config.public_url is not None:
            return self.config.public_url
        return request_origin(request.scheme, request.header("host"))

    def _secure(self, request: HTTPRequest) -> bool:
        # Secure cookies on https; also on http when public_url says the public site is https
        # (a TLS-terminating proxy in front) or https_only is set.
        return self._always_secure or (self.config.public_url is None and request.scheme == "https")

    # -- login and logout endpoints --------------------------------------------------------

    def _login_endpoint(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        """`login_path?next=/page[&scope=snsapi_userinfo]`: start a login on purpose (a
        single-page app's button, hash routes that never reach the server)."""
        params = _query_params(request)
        next_page = safe_return_path(params.get("next")) or "/"
        rule = self._rules.match(next_page.partition("?")[0]) if self._rules else None
        scope = params.get("scope") or (rule.scope if rule and rule.scope else self.config.scope)
        if scope not in SCOPES:
            scope = self.config.scope
        # Asked on purpose (a "share my profile" button): ask even after an earlier refusal.
        if session is not None and (
            scope != "snsapi_userinfo" or session.user.scope in PROFILE_SCOPES
        ):
            return redirect(next_page)
        if is_wechat_browser(request.header("user-agent")):
            return self._start_login(request, next_page, scope)
        policy = rule.other_browsers if rule and rule.other_browsers else self.config.other_browsers
        if policy == "qrconnect":
            return self._start_login(request, next_page, QRCONNECT_SCOPE)
        origin = self._origin(request) or ""
        return open_in_wechat_response(request, origin + next_page)

    def _logout_endpoint(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Flow[HTTPResponse | Forward]:
        """`logout_path[?next=/page]`: forget the session, back to a page of this site."""
        next_page = safe_return_path(_query_params(request).get("next")) or "/"
        if session is not None:
            if self.store is not None:
                try:
                    yield from self.store.delete(session)
                except StoreUnavailable as exc:
                    return self._error(exc, request)  # not logged out: never pretend it
            logger.info("wxauth logout openid=%s", session.user.openid)
        clear = delete_cookie_header(
            self.config.session_cookie,
            path=self.config.cookie_path,
            domain=self.config.cookie_domain,
            secure=self._secure(request),
        )
        return redirect(next_page, (clear,))

    # -- the callback ----------------------------------------------------------------------

    def _callback(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        params = _query_params(request)
        state = params.get("state", "")
        login = None
        if is_valid_state(state):
            cookie = cookies.get(self._state_prefix + state) or cookies.get(self._api_state)
            login = self._logins.decode(cookie, state) if cookie else None
        if login is None:
            # Unknown, forged, expired or another browser's state: never log anyone in, and
            # never restart the login from here (a browser refusing cookies would loop).
            return self._error(LoginStateError("unknown or expired login state"), request)
        if login.done:
            # A replay of a completed callback: back button, refresh, a double redirect.
            if session is not None:
                return redirect(login.return_to)
            return self._error(LoginStateError("login state already used"), request, login)
        code = params.get("code")
        if not code:
            # The user refused (older WeChat clients come back with state and no code).
            drop = self._drop_state(request, login)
            if session is not None:
                # They refused to share the profile but are logged in: keep the session,
                # remember the refusal (so the page doesn't ask again), back to the page.
                logger.info("wxauth profile declined openid=%s", session.user.openid)
                declined = replace(session, profile_declined=True)
                return self._with_session(request, login, declined, session, (drop,))
            logger.info("wxauth login declined scope=%s", login.scope)
            error = LoginDeclined("the callback carried no code")
            return self._error(error, request, login, (drop,))
        return self._exchange(request, login, code, session)

    def _exchange(
        self, request: HTTPRequest, login: LoginState, code: str, session: Session | None
    ) -> Flow[HTTPResponse | Forward]:
        config = self.config
        store = self.store
        started = time.monotonic()
        if login.scope == QRCONNECT_SCOPE:
            app_id, app_secret = config.website_app_id, config.website_app_secret
        else:
            app_id, app_secret = config.app_id, config.app_secret
        claimed = None  # the store key of a code this request exchanges
        try:
            if app_id is None or app_secret is None:
                raise ConfigurationError(
                    "a QR-code login came back, but website_app_id/website_app_secret are not set"
                )
            policy = CallPolicy(
                timeout=config.http_timeout,
                retries=config.retries,
                deadline=started + config.login_timeout,
            )
            earlier = None
            if store is not None:
                # A duplicate of a callback being (or already) handled, on any instance: its
                # result, rather than spending the code twice.
                key = store.code_key(app_id, login.state, code)
                if (yield from store.claim_code(key)):
                    claimed = key
                else:
                    earlier = yield from store.code_result(key, policy.deadline)
            if earlier is not None:
                user = earlier.user
            else:
                user = yield from self._fetch_user(request, app_id, app_secret, code, policy)
                if store is not None and claimed is not None:
                    yield from store.code_done(claimed, Session(user))
        except WeChatAPIError as exc:
            yield from self._code_failed(claimed)
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
            yield from self._code_failed(claimed)
            _log_failure(exc, started)
            return self._error(exc, request, login)
        except Exception:
            # A bug (or a failing on_login hook) must not show the visitor a traceback; the
            # log keeps it.
            logger.exception("wxauth login failed with an unexpected error")
            yield from self._code_failed(claimed)
            return self._error(WeChatAuthError("unexpected error during login"), request, login)
        logger.info(
            "wxauth login ok openid=%s unionid=%s scope=%s snapshot=%d duration_ms=%d",
            user.openid,
            user.unionid,
            user.scope,
            user.is_snapshot_user,
            (time.monotonic() - started) * 1000,
        )
        done = self._done_state(request, login)
        if user.is_snapshot_user:
            # A snapshot identity is virtual: no session at all. The visitor sees the
            # interstitial (or the app its page, for this one request) until they tap
            # WeChat's "use full service", which opens the page for real.
            if config.snapshot_users == "app":
                return Forward(user, target=login.return_to)
            response = snapshot_response(login.return_to)
            return HTTPResponse(response.status, (*response.headers, done), response.body)
        # A fresh login replaces whatever session was there (another account included).
        return (yield from self._with_session(request, login, Session(user), session, (done,)))

    def _fetch_user(
        self,
        request: HTTPRequest,
        app_id: str,
        app_secret: str,
        code: str,
        policy: CallPolicy,
    ) -> Flow[WeChatUser]:
        """The user a code stands for, checked and accepted (on_login), tokens kept."""
        config = self.config
        user, grant = yield from fetch_user(
            config.api_base_url, app_id, app_secret, code, config.lang, policy
        )
        user = replace(user, identity_key=config.identity)
        if config.identity == "unionid" and not user.unionid and not user.is_snapshot_user:
            raise ConfigurationError(
                f"WeChat gave no unionid for openid {user.openid}",
                hint="identity='unionid' needs the Official Account (and the website app) "
                "bound to one Open Platform account, and the snsapi_userinfo scope.",
            )
        if config.on_login is not None:
            verdict = yield HookCall(config.on_login, (user, request))
            if verdict is False:
                raise LoginVetoed(f"on_login refused openid {user.openid}")
        if config.keep_tokens and self.store is not None and not user.is_snapshot_user:
            yield from self.store.keep(user.identity, app_id, grant)
        return user

    def _code_failed(self, key: str | None) -> Flow[None]:
        # Duplicates waiting for this code's result stop waiting and try for themselves. If
        # the store fails too, they time out at their deadline: nothing else is at stake.
        if key is not None and self.store is not None:
            with contextlib.suppress(StoreUnavailable):
                yield from self.store.code_failed(key)

    def _with_session(
        self,
        request: HTTPRequest,
        login: LoginState,
        session: Session,
        old: Session | None,
        cookies: tuple[tuple[str, str], ...],
    ) -> Flow[HTTPResponse | Forward]:
        """Back to the login's page with `session` (replacing `old`) in place."""
        config = self.config
        try:
            if self.store is None:
                value = self._sessions.encode(session)
            else:
                value = yield from self.store.save(session, old)
        except StoreUnavailable as exc:
            return self._error(exc, request, login)
        cookie = set_cookie_header(
            config.session_cookie,
            value,
            max_age=config.max_age,
            path=config.cookie_path,
            domain=config.cookie_domain,
            secure=self._secure(request),
        )
        return redirect(login.return_to, (*cookies, cookie))

    def _done_state(self, request: HTTPRequest, login: LoginState) -> tuple[str, str]:
        return set_cookie_header(
            self._state_prefix + login.state,
            self._logins.encode(LoginState(login.state, login.return_to, login.scope, 0, True)),
            max_age=self.config.login_max_age,
            path=self.config.callback_path,
            domain=self.config.cookie_domain,
            secure=self._secure(request),
        )

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


def _cookie_value(header: str, name_eq: str) -> str:
    """The value of the cookie `name_eq` ("name=") in a Cookie header, or "".

    The header is split into its `name=value` pairs and names are compared whole: a session
    hidden inside another cookie's value (`utm=x wxauth_session=...`) is not a session. The
    first pair of that name wins (browsers send the most specific cookie first).
    """
    if name_eq not in header:
        return ""
    name = name_eq[:-1]
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def _query_params(request: HTTPRequest) -> dict[str, str]:
    """The query's parameters, the first value of each."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(request.query_string, keep_blank_values=True):
        params.setdefault(key, value)
    return params


def _text_file(content: str) -> OwnPath:
    response = HTTPResponse(
        200, (("content-type", "text/plain; charset=utf-8"),), content.encode("utf-8")
    )

    def serve(
        request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        return response

    return serve


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
