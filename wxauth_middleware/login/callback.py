"""The login callback: where the state is checked, the code exchanged for the user, and the
session written.

A callback is refused (never logging anyone in, never restarting a login from here) unless
its `state` matches a signed login-state cookie of this browser. A replay of a completed
callback goes back to the page; a callback without a code is a refusal; an invalid code
restarts the login once. With the session store, duplicates of one callback (on any
instance) share one exchange of the code.

A page the callback shows (an error, the refusal, the snapshot interstitial) is shown at a
clean address, without the code and state (`login/clean_pages.py`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ..config import Config
from ..cookie_writer import CookieWriter
from ..cookies import Session, SessionCodec
from ..decisions import Decision, Forward, query_params
from ..effects import Flow, HookCall
from ..errors import (
    ConfigurationError,
    HostMismatch,
    LoginDeclined,
    LoginStateError,
    LoginVetoed,
    StoreUnavailable,
    WeChatAPIError,
    WeChatAuthError,
)
from ..messages import HTTPRequest, HTTPResponse
from ..pages import redirect
from ..scopes import QRCONNECT_SCOPE
from ..storage.store import CODE_LIFE, SessionStore
from ..urls import is_valid_state
from ..user import User, WeChatUser
from ..wechat.api import CallPolicy, fetch_user, user_of_grant
from .clean_pages import CleanPages
from .in_progress import (
    LoginState,
    LoginStateCodec,
    completed,
    find_login,
    with_login,
    without_login,
)
from .log_lines import log_failure, log_login
from .relayed import RelayedCallback
from .spent_states import SpentStates
from .start import LoginStarter

if TYPE_CHECKING:
    from ..platform.service import PlatformService
    from ..wecom.credentials import WeComCredentials

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
        wecom: WeComCredentials | None = None,
        platform: PlatformService | None = None,
    ) -> None:
        self.config = config
        # A WeCom app's: its login asks WeCom, with the app's token.
        self._wecom = wecom
        # The third-party platform that exchanges the account's codes on its behalf.
        self._platform = platform
        self._cookies = cookies
        self._logins = logins
        self._sessions = sessions
        self._store = store
        self._login = login
        self._spent = SpentStates(config.login_max_age, logins.now)
        # How long the store remembers a state's exchange: the result is shared that long,
        # and the state cannot be exchanged again while its login could come back.
        self._state_life = max(CODE_LIFE, config.login_max_age)
        self._pages = CleanPages(config, logins.now)
        # A site logging in through a relay: its callbacks come with a ticket.
        relay = login.relay
        self._relayed = RelayedCallback(self, relay, logins) if relay is not None else None

    def __call__(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        params = query_params(request)
        if "page" in params and "state" not in params and "code" not in params:
            return self._pages.show(request, params["page"])
        if self._relayed is not None:
            # A site of a relay: its visitors come back with a ticket, never with a code.
            if "ticket" not in params:
                return self.error(LoginStateError("a callback without a ticket"), request)
            return self._relayed(request, cookies, session, params["ticket"])
        state = params.get("state", "")
        if not is_valid_state(state):
            return self.error(LoginStateError("unknown or expired login state"), request)
        value = cookies.get(self._cookies.login_name(request))
        logins = self._logins.decode(value) if value is not None else ()
        login = find_login(logins, state)
        if login is None:
            started, here = self._login.started_host(state), self._login.host(request)
            if started is not None and here is not None and started != here:
                # The login-state cookie stayed on the host the login started on.
                logger.warning(
                    "wxauth callback on host %s of a login started on host %s: its login-state "
                    "cookie is there. Send visitors to public_url's host, or set public_url to "
                    "the host they use.",
                    here,
                    started,
                )
                site = self.config.public_url or ""
                return self.error(HostMismatch(started, here, site), request)
            if value is None and params.get("code"):
                return self._cookie_lost(request, state, session)
            # Unknown, forged, expired or another browser's state: never log anyone in, and
            # never restart the login from here (a browser refusing cookies would loop). No
            # cookie and no code (a refusal): nothing to resume, and asking again would show
            # the visitor the consent they just refused.
            return self.error(LoginStateError("unknown or expired login state"), request)
        if login.done:
            # A replay of a completed callback: back button, refresh, a double redirect.
            if session is not None:
                return redirect(login.return_to)
            return self.error(LoginStateError("login state already used"), request, login)
        if session is not None and login.bound != session.user.identity:
            # A login this session did not start (one from before this browser logged in, or
            # one another site planted): it never switches the browser to another account.
            logger.warning("wxauth callback of a login this session did not start: ignored")
            drop = self.logins_cookie(request, without_login(logins, state))
            return redirect(login.return_to, (drop,))
        code = params.get("code")
        if not code:
            drop = self.logins_cookie(request, without_login(logins, state))
            # The user refused (older WeChat clients come back with state and no code).
            if session is not None:
                # They refused to share the profile but are logged in: keep the session,
                # remember the refusal (so the page doesn't ask again), back to the page.
                logger.info("wxauth profile declined openid=%s", session.user.openid)
                declined = replace(session, profile_declined=True)
                return self.with_session(request, login.return_to, declined, session, (drop,))
            logger.info("wxauth login declined scope=%s", login.scope)
            error = LoginDeclined("the callback carried no code")
            return self.error(error, request, login, (drop,))
        done = self.logins_cookie(request, with_login(logins, completed(login)))
        return self._exchange(request, login, code, session, done)

    def _cookie_lost(self, request: HTTPRequest, state: str, session: Session | None) -> Decision:
        """A callback from a browser that sent no login-state cookie at all (WeChat's webview
        sometimes loses a cookie set on a redirect): the login starts over once, from a page
        that sets the cookie itself. The new state says it is that restart: a second loss
        ends on the error page, never in a loop, and the code that came is never used."""
        if self._login.is_restart(state) or not self._login.in_app(request.header("user-agent")):
            return self.error(LoginStateError("unknown or expired login state"), request)
        logger.warning("wxauth login state cookie missing at the callback: login restarted")
        scope = self.config.policy("/").scope
        return self._login.start(request, "/", scope, session, restart_page=True)

    def login_cookie_name(self, request: HTTPRequest) -> str:
        return self._cookies.login_name(request)

    def logins_cookie(
        self, request: HTTPRequest, logins: tuple[LoginState, ...]
    ) -> tuple[str, str]:
        # Kept even when empty: a callback finding no cookie at all is a lost cookie
        # (restarted once), one finding no login of its state is refused.
        return self._cookies.login_state(request, self._logins.encode(logins))

    def _exchange(
        self,
        request: HTTPRequest,
        login: LoginState,
        code: str,
        session: Session | None,
        done: tuple[str, str],
    ) -> Flow[HTTPResponse | Forward]:
        config = self.config
        started = time.monotonic()
        app_id: str | None
        app_secret: str | None
        if config.wecom is not None:
            app_id, app_secret = config.wecom.key, ""  # the app's token is its credentials'
        elif login.scope == QRCONNECT_SCOPE:
            app_id, app_secret = config.website_app_id, config.website_app_secret
        elif self._platform is not None:
            app_id, app_secret = config.own_account_id, ""  # exchanged on its behalf
        else:
            app_id, app_secret = config.own_account
        claim: list[str] = []  # what this request claimed: its state (and store key)
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
            # A code WeChat refused keeps the state spent; anything else lets it be retried.
            yield from self._code_failed(claim, spent=exc.is_invalid_code)
            log_failure(exc, started)
            if exc.is_invalid_code:
                return self._code_spent(request, login, session, exc)
            return self.error(exc, request, login)
        except _StateSpent:
            logger.warning("wxauth callback of a state already exchanged: no call to WeChat")
            return self._code_spent(
                request, login, session, LoginStateError("login state already used")
            )
        except WeChatAuthError as exc:
            yield from self._code_failed(claim)
            log_failure(exc, started)
            return self.error(exc, request, login)
        except Exception:
            # A bug (or a failing on_login hook) must not show the visitor a traceback; the
            # log keeps it.
            logger.exception("wxauth login failed with an unexpected error")
            yield from self._code_failed(claim)
            return self.error(WeChatAuthError("unexpected error during login"), request, login)
        except BaseException:
            # Cancelled (the browser went away): the driver throws the cancellation in, so
            # that a retry of this callback does not wait for a claim nobody holds.
            yield from self._code_failed(claim)
            raise
        log_login(user, started)
        return (yield from self.logged_in(request, login, Session(user), session, done))

    def logged_in(
        self,
        request: HTTPRequest,
        login: LoginState,
        new: Session,
        session: Session | None,
        done: tuple[str, str],
    ) -> Flow[HTTPResponse | Forward]:
        """Back to the login's page with the session of its user (`new`)."""
        if new.user.is_snapshot_user:
            # A snapshot identity is virtual: no session at all. The visitor sees the
            # interstitial (or the app its page, for this one request) until they tap
            # WeChat's "use full service", which opens the page for real.
            if self.config.snapshot_users == "app":
                return Forward(new.user, target=login.return_to)
            return self._pages.snapshot(request, login.return_to, (done,))
        # A fresh login replaces whatever session was there (another account included).
        return (yield from self.with_session(request, login.return_to, new, session, (done,)))

    def _code_spent(
        self,
        request: HTTPRequest,
        login: LoginState,
        session: Session | None,
        error: WeChatAuthError,
    ) -> HTTPResponse:
        """A code that cannot be used (WeChat refused it, or the state was already
        exchanged): a replay or a slow phone, so the login starts over once. The attempt
        count rides in the new login's state, so this happens only once."""
        if login.attempt > 0:
            return self.error(error, request, login)
        return self._login.start(
            request, login.return_to, login.scope, session, attempt=1, replaces=login.state
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
    ) -> Flow[User]:
        """The user a state's code stands for, a state exchanged once: a callback with a
        state already exchanged (or being exchanged), whatever its code, makes no call to
        WeChat (raises _StateSpent). With the store this holds on every instance, and a
        duplicate of a callback being (or already) handled gets that one's result. What this
        request claims is appended to `claim`, for `_code_failed`."""
        store = self._store
        if store is None:
            if not self._spent.claim(login.state):
                raise _StateSpent
            claim.append(login.state)
            return (yield from self._fetch_user(request, app_id, app_secret, login, code, policy))
        key = store.code_key(app_id, login.state)
        if not (yield from store.claim_code(key, self._state_life)):
            earlier = yield from store.code_result(key, policy.deadline)
            if earlier is not None:
                return earlier.user
            # The first one failed: if it could be retried its claim is gone; else spent.
            if not (yield from store.claim_code(key, self._state_life)):
                raise _StateSpent
        claim.append(key)
        user = yield from self._fetch_user(request, app_id, app_secret, login, code, policy)
        yield from store.code_done(key, Session(user))
        return user

    def _fetch_user(
        self,
        request: HTTPRequest,
        app_id: str,
        app_secret: str,
        login: LoginState,
        code: str,
        policy: CallPolicy,
    ) -> Flow[User]:
        """The user a code stands for, checked and accepted (on_login), tokens kept."""
        config = self.config
        user: User
        if self._wecom is not None:
            trusted = self._login.host(request) or ""
            user = yield from self._wecom.login_user(code, login.scope, trusted, policy)
            grant = None
        else:
            if self._platform is not None and not app_secret:
                on_behalf = yield from self._platform.code_grant(app_id, code, policy)
                user, grant = yield from user_of_grant(
                    config.api_base_url, on_behalf, config.lang, policy, app_id, config.identity
                )
            else:
                user, grant = yield from fetch_user(
                    config.api_base_url,
                    app_id,
                    app_secret,
                    code,
                    config.lang,
                    policy,
                    config.identity,
                )
        yield from self.accepted(user, request)
        keep = grant is not None and config.keep_tokens and not user.is_snapshot_user
        if keep and self._store is not None and grant is not None:
            yield from self._store.keep(user.identity, app_id, grant)
        return user

    def accepted(self, user: User, request: HTTPRequest) -> Flow[None]:
        """Checks a user WeChat (or the relay) vouched for against the options, and lets
        on_login veto them."""
        config = self.config
        if (
            isinstance(user, WeChatUser)
            and config.identity == "unionid"
            and not user.unionid
            and not user.is_snapshot_user
        ):
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
                raise LoginVetoed(f"on_login refused {user.identity}")

    def _code_failed(self, claim: list[str], spent: bool = False) -> Flow[None]:
        """A claimed exchange failed: unless WeChat refused the code (`spent`), the state may
        be exchanged again (a reload of the callback). Duplicates waiting for its result stop
        waiting. If the store fails too, they time out at their deadline: nothing else is at
        stake."""
        if not claim:
            return
        if self._store is None:
            if not spent:
                self._spent.release(claim[0])
            return
        with contextlib.suppress(StoreUnavailable):
            yield from self._store.code_failed(claim[0], spent)

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
            return self._pages.error(exc.leading_back_to(return_to), request)
        return redirect(return_to, (*cookies, self._cookies.session(request, value)))

    def error(
        self,
        error: WeChatAuthError,
        request: HTTPRequest,
        login: LoginState | None = None,
        cookies: tuple[tuple[str, str], ...] = (),
    ) -> HTTPResponse:
        if login is not None:
            error = error.leading_back_to(login.return_to)
        return self._pages.error(error, request, cookies)


class _StateSpent(Exception):
    """The callback's state was already exchanged (or is being exchanged) for a code."""
