"""The decision core's entry point: what to do with a request, with no I/O.

`LoginCore.handle` reads the request's session and routes the request, answering one of:

- `Forward(user)`: call the application, with `user` (a `WeChatUser` or None) attached;
- an `HTTPResponse`: answer with it (a redirect to WeChat, a 401, an error page);
- a `Flow`: a generator that yields the calls to make (to WeChat's API, the session store,
  a hook) and finally returns one of those (the callback, a stored session's lookup).

Each job has a module of its own: starting a login (`login/start.py`), the callback
(`login/callback.py`), logging out and the application API (`login/logout.py`), the cookies
(`cookies.py`), the Official Account's credentials (`wechat/credentials.py`) and the JS-SDK's
paths (`jssdk/endpoint.py`). The ASGI and WSGI middleware are thin drivers around this one object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from starlette.requests import cookie_parser

from .config import Config
from .cookie_writer import CookieWriter, cookie_value
from .cookies import Clock, Session, SessionCodec, wall_clock
from .decisions import ANONYMOUS, Decision, Forward, OwnPath, is_navigation, needs_profile
from .effects import Flow
from .errors import StoreUnavailable, WeChatAuthError
from .jssdk.endpoint import jssdk_paths
from .login.callback import Callback
from .login.in_progress import LoginStateCodec
from .login.logout import Account
from .login.start import LoginStarter
from .messages import HTTPRequest, HTTPResponse
from .pages import error_response
from .platform.service import PlatformService
from .scan.flow import ScanLogin
from .storage.store import SessionStore
from .user import User
from .wechat.credentials import Credentials
from .wecom.credentials import WeComCredentials

__all__ = ["Decision", "Forward", "LoginCore", "is_navigation"]


class LoginCore:
    """Everything the middleware decides, configured once from a `Config`.

    `clock` gives the time for cookie signatures and token expiry (tests step it).
    `namespace` is put after `redis_prefix` in the keys of its sessions, kept tokens and scan
    tickets: an account's own, with several accounts (see `routing.py`). `platform`: the
    third-party platform of an account without an AppSecret (`platform/`).
    """

    def __init__(
        self,
        config: Config,
        clock: Clock = wall_clock,
        namespace: str = "",
        platform: PlatformService | None = None,
    ) -> None:
        self.config = config
        # The third-party platform that logs users in on this account's behalf, if any.
        self.platform = platform
        self.cookies = CookieWriter(config)
        self._sessions = SessionCodec(
            config.secret_keys, config.max_age, config.identity, clock, config.app_ids
        )
        logins = LoginStateCodec(config.secret_keys, config.login_max_age, clock)
        wecom = config.wecom
        # The account's own credentials (a WeCom app's login calls WeCom with its token; an
        # account of a platform gets its token on its behalf, the authorizer's).
        self.credentials: Credentials
        if wecom is not None:
            self.credentials = WeComCredentials(config, wecom, clock=clock)
        elif platform is not None:
            app_id = config.own_account_id
            issue = lambda rejected: platform.authorizer_token(app_id, rejected)  # noqa: E731
            self.credentials = Credentials(config, clock=clock, issue_token=issue)
        else:
            self.credentials = Credentials(config, clock=clock)
        # With redis_url, sessions live in Redis and the cookie holds a signed id.
        self.store = (
            SessionStore(
                config.redis_prefix + namespace,
                config.secret_keys,
                config.max_age,
                config.identity,
                clock,
                config.app_ids,
            )
            if config.redis_url is not None
            else None
        )
        self.login = LoginStarter(
            config, self.cookies, logins, platform.component_appid if platform else None
        )
        # A WeCom app's core logs in WeCom's browser; an Official Account's, WeChat's.
        self._in_app = self.login.in_app
        self.callback = Callback(
            config,
            self.cookies,
            logins,
            self._sessions,
            self.store,
            self.login,
            wecom=self.credentials if isinstance(self.credentials, WeComCredentials) else None,
            platform=platform,
        )
        self.account = Account(config, self.cookies, self.store, clock, platform)
        # What quick_user needs to know about the configuration, derived once.
        self._upgrades = config.scope == "snsapi_userinfo" or any(
            rule.scope == "snsapi_userinfo" for rule in config.rule_set.rules
        )
        self._others_pass = config.other_browsers == "pass" and all(
            rule.other_browsers in (None, "pass") for rule in config.rule_set.rules
        )
        # The paths the middleware answers itself, whatever the browser.
        self._own_paths: dict[str, OwnPath] = {config.callback_path: self.callback}
        if config.login_path is not None:
            self._own_paths[config.login_path] = self._ready_first(self.login.endpoint)
        if config.logout_path is not None:
            self._own_paths[config.logout_path] = self.account.logout
        for name, content in config.verify_files.items():
            self._own_paths["/" + name] = _text_file(content)
        # other_browsers="scan": the desktop login by scanning, and its own paths.
        self.scan: ScanLogin | None = None
        # The paths whose POST form the adapters read into `HTTPRequest.body`.
        self.form_paths: frozenset[str] = frozenset()
        if config.uses_scan and wecom is None:
            self.scan = ScanLogin(
                config,
                self.cookies,
                self.login,
                self.callback,
                clock,
                config.redis_prefix + namespace,
            )
            self._own_paths.update(self.scan.own_paths())
            self.form_paths = frozenset({self.scan.phone_path})
        # The JS-SDK's paths: answered without a look at the session (whose store may be
        # down), for any browser.
        self._sessionless = jssdk_paths(config, self.credentials)

    def serve(self, paths: Mapping[str, OwnPath], forms: Iterable[str] = ()) -> None:
        """Answers `paths` too, as its own (a relay's, `relay/app.py`); a POST to one of
        `forms` reaches it with its body."""
        self._own_paths.update(paths)
        self.form_paths = self.form_paths | frozenset(forms)

    def quick_user(
        self, path: str, user_agent: str | bytes, cookie_header: str, scheme: str
    ) -> User | Literal[False] | None:
        """The two common cases, decided from four strings without building an HTTPRequest:
        a valid session whose page needs nothing more (its user), and another browser without
        a session where other browsers pass (None): the application is called with that
        user. False means "ask `handle`", which decides the same way. The User-Agent may be
        an ASGI header's bytes: decoded (latin-1) only for a request without a session."""
        if path in self._own_paths or path in self._sessionless:
            return False
        if cookie_header and self.store is not None:
            if self.cookies.session_value(cookie_header, scheme):
                return False  # a stored session: `handle` looks it up
        elif cookie_header:
            # (self.session(...), a few calls of Python fewer: every logged-in request.)
            value = cookie_value(cookie_header, self.cookies.session_name_of(scheme))
            session = self._sessions.decode(value) if value else None
            if session is not None:
                if self._upgrades and needs_profile(session, "snsapi_userinfo"):
                    return False
                return session.user
        if not self._others_pass:
            return False
        if isinstance(user_agent, bytes):
            user_agent = user_agent.decode("latin-1")
        return False if self._in_app(user_agent) else None

    def handle(self, request: HTTPRequest) -> Decision:
        if request.method == "OPTIONS" and request.header("access-control-request-method"):
            # A CORS preflight: browsers never send cookies with it, so it can prove no
            # session; it is the application's (its CORS layer's) to answer, untouched.
            return ANONYMOUS
        sessionless = self._sessionless.get(request.path)
        if sessionless is not None:
            return sessionless(request)
        cookie_header = request.header("cookie")
        if self.store is None:
            return self._decide(request, self.session(cookie_header, request.scheme))
        sid = self._session_id(cookie_header, request.scheme)
        if sid is None:
            return self._decide(request, None)
        return self._stored_session(request, sid)

    def _stored_session(self, request: HTTPRequest, sid: str) -> Flow[HTTPResponse | Forward]:
        assert self.store is not None
        try:
            session = yield from self.store.load(sid)
        except StoreUnavailable as exc:
            # Neither anonymous (a login would loop) nor logged in: say so.
            return error_response(self.config.on_error, exc, request)
        decision = self._decide(request, session)
        if isinstance(decision, (Forward, HTTPResponse)):
            return decision
        return (yield from decision)

    def _decide(self, request: HTTPRequest, session: Session | None) -> Decision:
        own = self._own_paths.get(request.path)
        if own is not None:
            return own(request, cookie_parser(request.header("cookie")), session)
        policy = self.config.policy(request.path)
        if policy.exempt:
            return Forward(session.user if session else None)
        if session is not None and not needs_profile(session, policy.scope):
            return Forward(session.user)
        wechat = self._in_app(request.header("user-agent"))  # classified once, here
        if session is not None:
            if wechat and is_navigation(request):
                # The page wants the profile and the session has only the silent scope: ask
                # once; a refusal is remembered in the session.
                return self.login.start(request, request.target, policy.scope, session)
            return Forward(session.user)
        if wechat:
            return self._when_ready(request, self.login.require_login(request, policy.scope))
        if policy.other_browsers == "scan" and self.scan is not None:
            return self.scan.login_required(request)
        return self.login.other_browser(request, policy.other_browsers)

    # -- on a platform's behalf -----------------------------------------------------------

    def _when_ready(self, request: HTTPRequest, decision: Decision) -> Decision:
        """`decision` (a login's start), unless the account's platform cannot log anyone in
        yet (no verify ticket) or any more (the account revoked it): then a page says so."""
        if self.platform is None:
            return decision
        return self._checked(request, decision, self.platform)

    def _checked(
        self, request: HTTPRequest, decision: Decision, platform: PlatformService
    ) -> Flow[HTTPResponse | Forward]:
        try:
            yield from platform.ready(self.config.own_account_id)
        except WeChatAuthError as exc:  # not ready, revoked, or the store down
            return error_response(self.config.on_error, exc, request)
        if isinstance(decision, (Forward, HTTPResponse)):
            return decision
        return (yield from decision)

    def _ready_first(self, endpoint: OwnPath) -> OwnPath:
        if self.platform is None:
            return endpoint

        def checked(
            request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
        ) -> Decision:
            return self._when_ready(request, endpoint(request, cookies, session))

        return checked

    # -- reading the session ---------------------------------------------------------------

    def session(self, cookie_header: str, scheme: str) -> Session | None:
        """The session a session cookie carries, if any valid one (without a store)."""
        value = self.cookies.session_value(cookie_header, scheme) if cookie_header else ""
        return self._sessions.decode(value) if value else None

    def _session_id(self, cookie_header: str, scheme: str) -> str | None:
        """The id of the stored session a session cookie carries, if its signature verifies."""
        assert self.store is not None
        value = self.cookies.session_value(cookie_header, scheme) if cookie_header else ""
        return self.store.session_id(value) if value else None

    def session_user(self, cookie_header: str, scheme: str) -> Flow[User | None]:
        """The user of the session a Cookie header carries (a websocket's, of `scheme`), if
        any. Raises StoreUnavailable if the store fails."""
        if self.store is None:
            session = self.session(cookie_header, scheme)
        else:
            sid = self._session_id(cookie_header, scheme)
            session = (yield from self.store.load(sid)) if sid is not None else None
        return session.user if session is not None else None


def _text_file(content: str) -> OwnPath:
    response = HTTPResponse(
        200, (("content-type", "text/plain; charset=utf-8"),), content.encode("utf-8")
    )

    def serve(request: HTTPRequest, cookies: object, session: Session | None) -> Decision:
        return response

    return serve
