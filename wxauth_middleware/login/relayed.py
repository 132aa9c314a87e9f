"""A site's callback when it logs in through a relay (`relay_url`): the browser comes back
with a one-time ticket, which the site redeems with the relay, server to server, for the user
of the login this browser started (`relay/client.py`)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from ..config import Config
from ..cookies import Session
from ..decisions import Decision, Forward
from ..effects import Flow
from ..errors import ConfigurationError, LoginDeclined, LoginStateError, WeChatAuthError
from ..messages import HTTPRequest, HTTPResponse
from ..pages import redirect
from ..relay.client import RelayClient
from ..user import User, WeChatUser
from ..wechat.api import CallPolicy
from .in_progress import LoginState, LoginStateCodec, completed, with_login
from .log_lines import log_login

__all__ = ["RelayedCallback"]

logger = logging.getLogger("wxauth_middleware")


class Callback(Protocol):
    """What of the login callback (`login/callback.py`) a relayed callback goes on with."""

    config: Config

    def login_cookie_name(self, request: HTTPRequest) -> str: ...

    def logins_cookie(
        self, request: HTTPRequest, logins: tuple[LoginState, ...]
    ) -> tuple[str, str]: ...

    def error(
        self,
        error: WeChatAuthError,
        request: HTTPRequest,
        login: LoginState | None = None,
        cookies: tuple[tuple[str, str], ...] = (),
    ) -> HTTPResponse: ...

    def accepted(self, user: User, request: HTTPRequest) -> Flow[None]: ...

    def logged_in(
        self,
        request: HTTPRequest,
        login: LoginState,
        new: Session,
        session: Session | None,
        done: tuple[str, str],
    ) -> Flow[HTTPResponse | Forward]: ...


class RelayedCallback:
    """Answers `callback_path?ticket=...` on a site that logs in through a relay."""

    def __init__(self, callback: Callback, relay: RelayClient, logins: LoginStateCodec) -> None:
        self._callback = callback
        self._relay = relay
        self._logins = logins

    def __call__(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None, ticket: str
    ) -> Decision:
        callback = self._callback
        value = cookies.get(callback.login_cookie_name(request))
        logins = self._logins.decode(value) if value is not None else ()
        pending = tuple(login for login in logins if not login.done)
        if not pending:
            done = next((login for login in logins if login.done), None)
            if done is not None and session is not None:
                # A replay of a completed callback: back button, refresh.
                return redirect(done.return_to)
            # No login of this browser waits for a ticket (a login started elsewhere, sent
            # here): the ticket is spent at once, so no one who copies it can use it.
            return self._spent(request, ticket)
        return self._redeemed(request, logins, pending, session, ticket)

    def _spent(self, request: HTTPRequest, ticket: str) -> Flow[HTTPResponse]:
        config = self._callback.config
        policy = CallPolicy.of(config.http_timeout, config.retries, config.login_timeout)
        # Without a nonce, the relay gives no user: the redemption only spends the ticket.
        with contextlib.suppress(WeChatAuthError):
            yield from self._relay.redeem(ticket, (), self._logins.now(), policy)
        logger.warning("wxauth relay ticket of a login this browser did not start: spent")
        error = LoginStateError("a ticket of a login this browser did not start")
        return self._callback.error(error, request)

    def _redeemed(
        self,
        request: HTTPRequest,
        logins: tuple[LoginState, ...],
        pending: tuple[LoginState, ...],
        session: Session | None,
        ticket: str,
    ) -> Flow[HTTPResponse | Forward]:
        callback, config = self._callback, self._callback.config
        newest = pending[0]
        started = time.monotonic()
        policy = CallPolicy.of(config.http_timeout, config.retries, config.login_timeout)
        nonces = tuple(login.state for login in pending)
        try:
            redeemed = yield from self._relay.redeem(ticket, nonces, self._logins.now(), policy)
            login = next(login for login in pending if login.state == redeemed.nonce)
            user = redeemed.user
            if user is None:
                return (yield from self._declined(request, logins, login, session))
            if isinstance(user, WeChatUser):
                _check_account(user, config.app_id)
                user = replace(user, identity_key=config.identity)
            yield from callback.accepted(user, request)
        except WeChatAuthError as exc:
            logger.warning(
                "wxauth relay redemption failed error=%s duration_ms=%d: %s",
                exc.code,
                int((time.monotonic() - started) * 1000),
                exc.message,
            )
            return callback.error(exc, request, newest)
        except Exception:
            logger.exception("wxauth relayed login failed with an unexpected error")
            return callback.error(WeChatAuthError("unexpected error during login"), request, newest)
        log_login(user, started)
        done = callback.logins_cookie(request, with_login(logins, completed(login)))
        if session is not None and login.bound != session.user.identity:
            logger.warning("wxauth callback of a login this session did not start: ignored")
            return redirect(login.return_to, (done,))
        if redeemed.profile_declined and session is not None:
            # They refused to share the profile but are logged in: keep the session,
            # remember the refusal (so the page doesn't ask again).
            new = replace(session, profile_declined=True)
        else:
            new = Session(user, profile_declined=redeemed.profile_declined)
        return (yield from callback.logged_in(request, login, new, session, done))

    def _declined(
        self,
        request: HTTPRequest,
        logins: tuple[LoginState, ...],
        login: LoginState,
        session: Session | None,
    ) -> Flow[HTTPResponse | Forward]:
        """The visitor refused to share the profile: a session keeps the refusal (the page
        does not ask again); without one, the site says so, with the way back to the page."""
        callback = self._callback
        done = callback.logins_cookie(request, with_login(logins, completed(login)))
        if session is not None:
            logger.info("wxauth profile declined openid=%s", session.user.openid)
            declined = replace(session, profile_declined=True)
            return (yield from callback.logged_in(request, login, declined, session, done))
        logger.info("wxauth login declined scope=%s", login.scope)
        error = LoginDeclined("the visitor refused at the relay")
        return callback.error(error, request, login, (done,))


def _check_account(user: WeChatUser, app_id: str | None) -> None:
    """A relayed site's app_id, if given, is the account the relay logs in with."""
    if app_id is not None and user.app_id != app_id:
        raise ConfigurationError(
            f"the relay logs visitors in with account {user.app_id}, not this site's "
            f"app_id {app_id}",
            hint="A relayed site's app_id is the relay's account's (openids are per "
            "AppID): give this site the relay's app_id, or none.",
        )
