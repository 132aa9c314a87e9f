"""The logins in progress in one browser: what each `state` stands for, kept in the signed
login-state cookie (which `CookieWriter` writes), a bounded few at a time.

The cookie's payload is text, signed as it is (no JSON, no base64 of the whole): each login's
eight fields joined by `~`, the logins one after another. The return path and the identity
the login is bound to are in base64url (they may hold any character); the state and scope are
as they are; the numbers in decimal, the flags `0` or `1`. Values of the format before (a JSON
list of lists) are still read: they live `login_max_age` (ten minutes by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..cookies import LOGIN_STATE_SALT, Clock, Signer, _b64, _unb64, wall_clock

__all__ = [
    "MAX_KEPT_RETURN",
    "MAX_LOGINS",
    "LoginState",
    "LoginStateCodec",
    "completed",
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


def completed(login: LoginState) -> LoginState:
    """`login`, marked done (its callback came and was used)."""
    return LoginState(
        login.state,
        login.return_to,
        login.scope,
        login.attempt,
        True,
        login.bound,
        login.api,
        login.issued,
    )


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
            "~".join(
                f"{x.state}~{_b64(x.return_to.encode()).decode()}~{x.scope}~{x.attempt}~"
                f"{x.done:d}~{_b64(x.bound.encode()).decode()}~{x.api:d}~{x.issued}"
                for x in logins
            )
        )

    def decode(self, value: str) -> tuple[LoginState, ...]:
        """The unexpired logins a valid cookie value holds; none for anything else."""
        verified = self._signer.verify(value, self._max_age)
        if verified is None:
            return ()
        payload = verified[0]
        logins: Iterator[LoginState | None]
        if type(payload) is str:
            logins = _logins(payload.split("~"))
        elif type(payload) is list:  # the format before
            logins = (_login(entry) for entry in payload[:MAX_LOGINS])
        else:
            return ()
        oldest = self._clock() - self._max_age
        return tuple(login for login in logins if login is not None and login.issued >= oldest)


def _logins(fields: list[str]) -> Iterator[LoginState | None]:
    if len(fields) % _FIELDS:
        return  # not what `encode` wrote (an empty payload is no login)
    for at in range(0, min(len(fields), MAX_LOGINS * _FIELDS), _FIELDS):
        state, back, scope, attempt, done, bound, api, issued = fields[at : at + _FIELDS]
        try:
            return_to, bound = _unb64(back).decode(), _unb64(bound).decode()
            yield LoginState(
                state, return_to, scope, int(attempt), done == "1", bound, api == "1", int(issued)
            )
        except ValueError:  # never for what `encode` wrote
            yield None


def _login(entry: object) -> LoginState | None:
    # The format before: a JSON list per login. One look at every field's exact type (JSON
    # makes no subclasses: no bool for an int).
    if type(entry) is not list or tuple(map(type, entry)) != _LOGIN_TYPES:
        return None
    return LoginState(*entry)


# A login's fields: the state, return_to and scope; attempt, done, bound, api and issued.
_FIELDS = 8
_LOGIN_TYPES = (str, str, str, int, bool, str, bool, int)
