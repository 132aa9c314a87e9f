"""The logins in progress in one browser: what each `state` stands for, kept in the signed
login-state cookie (which `CookieWriter` writes), a bounded few at a time."""

from __future__ import annotations

from dataclasses import dataclass

from ..cookies import LOGIN_STATE_SALT, Clock, Signer, wall_clock

__all__ = [
    "MAX_KEPT_RETURN",
    "MAX_LOGINS",
    "LoginState",
    "LoginStateCodec",
    "find_login",
    "kept_return",
    "with_login",
    "without_login",
]


@dataclass(frozen=True, slots=True)
class LoginState:
    """What a `state` handle stands for: one entry of the login-state cookie.

    `attempt` counts restarts after an invalid code, so a restart happens at most once even
    across the round trip through WeChat. `done` marks a login already completed, so a
    replayed callback (back button, refresh, WeChat's double redirect) lands on the page
    again instead of spending another code. `bound` is the openid of the session the login
    started from ("" for none): a callback never switches a logged-in browser to another
    account unless that account's own session started the login. `api` marks the login of an
    API call's 401 (one at a time: a front end polling while logged out replaces it).
    `issued` is when it started (seconds since the epoch).
    """

    state: str
    return_to: str
    scope: str
    attempt: int = 0
    done: bool = False
    bound: str = ""
    api: bool = False
    issued: int = 0


# How many logins one browser may have in progress at once (tabs), newest first; an older
# one is dropped. With return paths kept to MAX_KEPT_RETURN characters, the login-state
# cookie stays under about 2 KB whatever the browser does (servers refuse Cookie headers of
# 8 KB and more).
MAX_LOGINS = 3
MAX_KEPT_RETURN = 384


def kept_return(return_to: str) -> str:
    """`return_to` as a login keeps it: a path too long to keep loses its query, then is
    the site's root."""
    if len(return_to) <= MAX_KEPT_RETURN:
        return return_to
    path = return_to.partition("?")[0]
    return path if len(path) <= MAX_KEPT_RETURN else "/"


def with_login(logins: tuple[LoginState, ...], login: LoginState) -> tuple[LoginState, ...]:
    """`logins` with `login` first, replacing one of its state (and any other API login if
    it is one), at most MAX_LOGINS."""
    others = tuple(
        kept for kept in logins if kept.state != login.state and not (login.api and kept.api)
    )
    return (login, *others)[:MAX_LOGINS]


def without_login(logins: tuple[LoginState, ...], state: str) -> tuple[LoginState, ...]:
    return tuple(kept for kept in logins if kept.state != state)


def find_login(logins: tuple[LoginState, ...], state: str) -> LoginState | None:
    return next((kept for kept in logins if kept.state == state), None)


class LoginStateCodec:
    """The logins in progress in one browser, as the signed value of its login-state cookie."""

    def __init__(
        self, secret_keys: tuple[bytes, ...], max_age: int, clock: Clock = wall_clock
    ) -> None:
        self._signer = Signer(secret_keys, LOGIN_STATE_SALT, clock)
        self._max_age = max_age
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    def encode(self, logins: tuple[LoginState, ...]) -> str:
        return self._signer.sign(
            [
                [x.state, x.return_to, x.scope, x.attempt, x.done, x.bound, x.api, x.issued]
                for x in logins
            ]
        )

    def decode(self, value: str) -> tuple[LoginState, ...]:
        """The unexpired logins a valid cookie value holds; none for anything else."""
        verified = self._signer.verify(value, self._max_age)
        if verified is None or not isinstance(verified[0], list):
            return ()
        payload = verified[0]
        oldest = self._clock() - self._max_age
        logins = (_login(entry) for entry in payload[:MAX_LOGINS])
        return tuple(login for login in logins if login is not None and login.issued >= oldest)


def _login(entry: object) -> LoginState | None:
    # One look at every field's exact type (JSON makes no subclasses: no bool for an int).
    if type(entry) is not list or tuple(map(type, entry)) != _LOGIN_TYPES:
        return None
    return LoginState(*entry)


# The state, return_to and scope; attempt, done, bound, api and issued.
_LOGIN_TYPES = (str, str, str, int, bool, str, bool, int)
