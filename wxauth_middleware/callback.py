"""The login callback: where the state is checked, the code exchanged for the user, and the
session written.

A callback is refused (never logging anyone in, never restarting a login from here) unless
its `state` matches a signed login-state cookie of this browser. A replay of a completed
callback goes back to the page; a callback without a code is a refusal; an invalid code
restarts the login once. With the session store, duplicates of one callback (on any
instance) share one exchange of the code.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from .config import Config
from .cookies import API_STATE, CookieWriter, LoginState, LoginStateCodec, Session, SessionCodec
from .decisions import Decision, Forward, query_params
from .effects import Flow, HookCall
from .errors import (
    ConfigurationError,
    LoginDeclined,
    LoginStateError,
    LoginVetoed,
    StoreUnavailable,
    WeChatAPIError,
    WeChatAuthError,
)
from .login import LoginStarter
from .messages import HTTPRequest, HTTPResponse
from .pages import error_response, redirect, snapshot_response
from .scopes import QRCONNECT_SCOPE
from .store import SessionStore
from .urls import is_valid_state
from .user import WeChatUser
from .wechat import CallPolicy, fetch_user

__all__ = ["Callback"]

logger = logging.getLogger("wxauth_middleware")


class Callback:
    """Answers `callback_path?code=...&state=...`."""

    def __init__(
        self,
        config: Config,
        cookies: CookieWriter,
        logins: LoginStateCodec,
        sessions: SessionCodec,
        store: SessionStore | None,
        login: LoginStarter,
    ) -> None:
        self.config = config
        self._cookies = cookies
        self._logins = logins
        self._sessions = sessions
        self._store = store
        self._login = login

    def __call__(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        params = query_params(request)
        state = params.get("state", "")
        login = None
        if is_valid_state(state):
            cookie = cookies.get(self._cookies.state_name(state)) or cookies.get(
                self._cookies.state_name(API_STATE)
            )
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
            drop = self._cookies.clear_login_state(request, login.state)
            if session is not None:
                # They refused to share the profile but are logged in: keep the session,
                # remember the refusal (so the page doesn't ask again), back to the page.
                logger.info("wxauth profile declined openid=%s", session.user.openid)
                declined = replace(session, profile_declined=True)
                return self.with_session(request, login.return_to, declined, session, (drop,))
            logger.info("wxauth login declined scope=%s", login.scope)
            error = LoginDeclined("the callback carried no code")
            return self._error(error, request, login, (drop,))
        return self._exchange(request, login, code, session)

    def _exchange(
        self, request: HTTPRequest, login: LoginState, code: str, session: Session | None
    ) -> Flow[HTTPResponse | Forward]:
        config = self.config
        started = time.monotonic()
        if login.scope == QRCONNECT_SCOPE:
            app_id, app_secret = config.website_app_id, config.website_app_secret
        else:
            app_id, app_secret = config.app_id, config.app_secret
        claim: list[str] = []  # the store key of a code this request exchanges, once claimed
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
            user = yield from self._user_once(
                request, app_id, app_secret, login, code, policy, claim
            )
        except WeChatAPIError as exc:
            yield from self._code_failed(claim)
            _log_failure(exc, started)
            if exc.is_invalid_code and login.attempt == 0:
                # A code can be spent by a replay or expire on a slow phone: start over once.
                # The attempt count rides in the new state cookie, so this happens only once.
                return self._login.start(
                    request,
                    login.return_to,
                    login.scope,
                    attempt=login.attempt + 1,
                    cookies=(self._cookies.clear_login_state(request, login.state),),
                )
            return self._error(exc, request, login)
        except WeChatAuthError as exc:
            yield from self._code_failed(claim)
            _log_failure(exc, started)
            return self._error(exc, request, login)
        except Exception:
            # A bug (or a failing on_login hook) must not show the visitor a traceback; the
            # log keeps it.
            logger.exception("wxauth login failed with an unexpected error")
            yield from self._code_failed(claim)
            return self._error(WeChatAuthError("unexpected error during login"), request, login)
        except BaseException:
            # Cancelled (the browser went away): the driver throws the cancellation in, so
            # that a retry of this callback does not wait for a claim nobody holds.
            yield from self._code_failed(claim)
            raise
        logger.info(
            "wxauth login ok openid=%s unionid=%s scope=%s snapshot=%d duration_ms=%d",
            user.openid,
            user.unionid,
            user.scope,
            user.is_snapshot_user,
            (time.monotonic() - started) * 1000,
        )
        done = self._cookies.login_state(
            request,
            login.state,
            self._logins.encode(LoginState(login.state, login.return_to, login.scope, 0, True)),
        )
        if user.is_snapshot_user:
            # A snapshot identity is virtual: no session at all. The visitor sees the
            # interstitial (or the app its page, for this one request) until they tap
            # WeChat's "use full service", which opens the page for real.
            if config.snapshot_users == "app":
                return Forward(user, target=login.return_to)
            response = snapshot_response(login.return_to)
            return HTTPResponse(response.status, (*response.headers, done), response.body)
        # A fresh login replaces whatever session was there (another account included).
        return (
            yield from self.with_session(request, login.return_to, Session(user), session, (done,))
        )

    def _user_once(
        self,
        request: HTTPRequest,
        app_id: str,
        app_secret: str,
        login: LoginState,
        code: str,
        policy: CallPolicy,
        claim: list[str],
    ) -> Flow[WeChatUser]:
        """The user a code stands for, the code spent once: with the store, a duplicate of a
        callback being (or already) handled, on any instance, gets that one's result. The key
        this request claims is appended to `claim`, for `_code_failed`."""
        store = self._store
        if store is None:
            return (yield from self._fetch_user(request, app_id, app_secret, code, policy))
        key = store.code_key(app_id, login.state, code)
        if not (yield from store.claim_code(key)):
            earlier = yield from store.code_result(key, policy.deadline)
            if earlier is not None:
                return earlier.user
            # The first one failed or vanished: try for ourselves, without a claim.
            return (yield from self._fetch_user(request, app_id, app_secret, code, policy))
        claim.append(key)
        user = yield from self._fetch_user(request, app_id, app_secret, code, policy)
        yield from store.code_done(key, Session(user))
        return user

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
        # A snapshot identity is virtual (its unionid may be shared by many openids): never
        # handed to the hook that upserts users.
        if config.on_login is not None and not user.is_snapshot_user:
            verdict = yield HookCall(config.on_login, (user, request))
            if verdict is False:
                raise LoginVetoed(f"on_login refused openid {user.openid}")
        if config.keep_tokens and self._store is not None and not user.is_snapshot_user:
            yield from self._store.keep(user.identity, app_id, grant)
        return user

    def _code_failed(self, claim: list[str]) -> Flow[None]:
        # Duplicates waiting for this code's result stop waiting and try for themselves. If
        # the store fails too, they time out at their deadline: nothing else is at stake.
        if claim and self._store is not None:
            with contextlib.suppress(StoreUnavailable):
                yield from self._store.code_failed(claim[0])

    def with_session(
        self,
        request: HTTPRequest,
        return_to: str,
        session: Session,
        old: Session | None,
        cookies: tuple[tuple[str, str], ...],
    ) -> Flow[HTTPResponse]:
        """Back to `return_to` with `session` (replacing `old`) in place: in its cookie, or in
        the store with its id in the cookie. Every login ends here (the scan login's too)."""
        try:
            if self._store is None:
                value = self._sessions.encode(session)
            else:
                value = yield from self._store.save(session, old)
        except StoreUnavailable as exc:
            return error_response(self.config.on_error, exc, request, return_to)
        return redirect(return_to, (*cookies, self._cookies.session(request, value)))

    def _error(
        self,
        error: WeChatAuthError,
        request: HTTPRequest,
        login: LoginState | None = None,
        cookies: tuple[tuple[str, str], ...] = (),
    ) -> HTTPResponse:
        return_to = login.return_to if login is not None else None
        return error_response(self.config.on_error, error, request, return_to, cookies)


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
