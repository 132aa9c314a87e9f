"""The signed values the middleware's cookies carry: the session (the logins in progress are
`login/in_progress.py`'s; every cookie is written by `cookie_writer.py`).

A signed value is `payload.time.signature`: the payload as compact JSON in unpadded base64url,
the time it was signed (seconds since the epoch, decimal), and HMAC-SHA256 over both, in
base64url (`Signer`). Each purpose (the session, the logins in progress, a stored session's id)
signs with a key of its own derived from the configured `secret_key` (a list rotates keys: the
newest, last, signs; every key verifies), so one kind of value can never be replayed as
another. Anything that fails to verify or decode is treated as absent: a tampered, expired,
truncated or foreign cookie never raises.
"""

from __future__ import annotations

import hmac
import itertools
import json
import time
from binascii import a2b_base64, b2a_base64
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from hmac import compare_digest
from typing import Any, Generic, TypeVar

from .scopes import QRCONNECT_SCOPE
from .user import User, WeChatUser, WeComUser
from .wecom.session import wecom_payload, wecom_user

__all__ = [
    "BROWSER_SESSION_LIFE",
    "NO_APP",
    "AppIds",
    "Clock",
    "Session",
    "SessionCodec",
    "Signer",
    "VerifiedCache",
    "session_from_payload",
    "session_payload",
    "wall_clock",
]

# The purposes values are signed for (each with a key of its own).
SESSION_SALT = "wxauth_middleware.session"
LOGIN_STATE_SALT = "wxauth_middleware.login-state"

# Version tag of the session payload layout, so a future layout can reject old cookies cleanly.
_SESSION_V = 1
# How long a session's signature is accepted with max_age=None (a cookie that lasts as long as
# the browser runs, which some browsers restore for ever): a copied cookie must not work for
# years.
BROWSER_SESSION_LIFE = 30 * 24 * 3600
# How many verified session cookies a codec remembers (a few hundred KB at most).
_VERIFIED_CACHE_SIZE = 1024


T = TypeVar("T")
# The AppIDs a session's openid may belong to: the Official Account's, and the website app's
# (a desktop's QR-code login, scope snsapi_login).
AppIds = tuple[str, "str | None"]
NO_APP: AppIds = ("", None)
# The current time in seconds since the epoch; injectable, so tests step time themselves.
Clock = Callable[[], float]


def wall_clock() -> float:
    # Looked up on each call, not bound once: time.time as it is when asked.
    return time.time()


class VerifiedCache(Generic[T]):
    """Signed values verified by `signer` (within `max_age`) and decoded by `decode`, and what
    they verified to, remembered until their signature's own expiry.

    Logged-in visitors send the same cookie on every request: remembering it spares checking
    the HMAC (and parsing the payload) again. Bounded, oldest out first; only values that
    verified and decoded are kept, so a flood of forged cookies cannot fill it.
    """

    def __init__(
        self,
        signer: Signer,
        max_age: int,
        decode: Callable[[Any], T | None],
        clock: Clock = wall_clock,
    ) -> None:
        self._signer = signer
        self._max_age = max_age
        self._decode = decode
        self._clock = clock
        # An OrderedDict drops its oldest entry in O(1); a dict's oldest is found by skipping
        # the entries deleted before it, about a microsecond per eviction at this size.
        self._entries: OrderedDict[str, tuple[T, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, value: str) -> T | None:
        """What `value` stands for, or None if it does not verify or decode."""
        cached = self._entries.get(value)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        verified = self._signer.verify(value, self._max_age)
        if verified is None:
            return None
        payload, signed_at = verified
        decoded = self._decode(payload)
        if decoded is not None:
            entries = self._entries
            if len(entries) >= _VERIFIED_CACHE_SIZE:
                # (Not contextlib.suppress: a context manager per eviction costs more.)
                try:  # noqa: SIM105
                    entries.popitem(last=False)
                except KeyError:  # emptied by another thread meanwhile
                    pass
            entries[value] = (decoded, signed_at + self._max_age)
        return decoded


class Signer:
    """Signs JSON-able payloads for one purpose, and verifies them: `payload.time.signature`
    (see the module's docstring), nothing but base64url, digits and dots, so a cookie value
    needs no quoting.

    The key for `purpose` is HMAC-SHA256(secret key, "wxauth_middleware.key " + purpose): one
    per secret key, newest first; the newest signs, each verifies. The signature covers the
    payload and the time, and is compared in constant time; a value is verified before its
    payload is decoded.
    """

    def __init__(self, secret_keys: tuple[bytes, ...], purpose: str, clock: Clock) -> None:
        label = b"wxauth_middleware.key " + purpose.encode()
        keys = (hmac.digest(key, label, "sha256") for key in reversed(secret_keys))
        # Each key's HMAC state, its key already absorbed: a copy per value costs a third
        # less than hmac.digest, which sets the key up again every time. (hmac.HMAC wraps
        # OpenSSL's HMAC object, `_hmac`, in a layer of Python per copy, update and digest:
        # that object itself when there is one, the same methods.)
        macs = (hmac.new(key, digestmod="sha256") for key in keys)
        self._macs = tuple(getattr(mac, "_hmac", None) or mac for mac in macs)
        self._clock = clock

    def sign(self, payload: object) -> str:
        data = _JSON_OUT.encode(payload).encode()
        signed = _b64(data) + b"." + str(int(self._clock())).encode()
        mac = self._macs[0].copy()
        mac.update(signed)
        return (signed + b"." + _b64(mac.digest())).decode()

    def verify(self, value: str, max_age: int) -> tuple[Any, int] | None:
        """The payload of `value` and when it was signed, if this signer signed it less than
        `max_age` seconds ago (and not more than CLOCK_SKEW seconds in the future); None for
        anything else."""
        if len(value) > MAX_SIGNED or not value.isascii():
            return None
        signed, _, signature = value.rpartition(".")
        raw, expected = signed.encode(), signature.encode()
        for state in self._macs:
            mac = state.copy()
            mac.update(raw)
            if compare_digest(_b64(mac.digest()), expected):
                break
        else:
            return None
        # Signed by this purpose's key, so written by `sign`: the checks below are for a key
        # shared with something else that signs differently.
        data, _, stamp = signed.partition(".")
        if not stamp.isdigit() or not -CLOCK_SKEW <= self._clock() - int(stamp) <= max_age:
            return None
        try:
            text = _unb64(data).decode()
            payload, end = _JSON_IN.raw_decode(text)
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
        return (payload, int(stamp)) if end == len(text) else None


# The longest signed value verified (browsers keep cookies of up to 4096 bytes).
MAX_SIGNED = 4096
# How far in the future a signature may be dated: the instances of a site sign and verify each
# other's cookies, and their clocks differ by a little.
CLOCK_SKEW = 60


# base64url by binascii directly (base64's urlsafe functions wrap the same calls in several
# layers of Python: a third of a verification's time).
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_JSON_IN = json.JSONDecoder()
# Compact JSON (json.dumps given options makes a new encoder for every call).
_JSON_OUT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _b64(data: bytes) -> bytes:
    return b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _unb64(data: str) -> bytes:
    # Padding is optional in what `sign` writes; binascii ignores what is beyond the needed.
    return a2b_base64(data.encode().translate(_FROM_URLSAFE) + b"==")


@dataclass(frozen=True, slots=True)
class Session:
    """What a session holds: the user, and whether they declined to share their profile (so a
    page that wants it does not ask again, and again). `sid` is the id of a session kept in
    the session store (the `redis_url` option); None for a session kept in its cookie."""

    user: User
    profile_declined: bool = False
    sid: str | None = None


class SessionCodec:
    """Encodes the logged-in user's identity fields (never tokens) into a signed cookie value."""

    def __init__(
        self,
        secret_keys: tuple[bytes, ...],
        max_age: int | None,
        identity_key: str = "openid",
        clock: Clock = wall_clock,
        app_ids: AppIds = NO_APP,
    ) -> None:
        self._signer = Signer(secret_keys, SESSION_SALT, clock)
        self._max_age = max_age or BROWSER_SESSION_LIFE
        self._identity_key = identity_key
        self._verified: VerifiedCache[Session] = VerifiedCache(
            self._signer,
            self._max_age,
            lambda payload: session_from_payload(payload, identity_key, app_ids),
            clock,
        )
        # The session `value` stands for, or None (a layer of call less than a method).
        self.decode: Callable[[str], Session | None] = self._verified.verify

    def encode(self, session: Session) -> str:
        return self._signer.sign(session_payload(session))


def session_payload(session: Session) -> list[Any]:
    """A session as a JSON-able list: the session cookie's payload, or a stored session's."""
    user = session.user
    if isinstance(user, WeComUser):
        return wecom_payload(user, session.profile_declined)
    return [
        _SESSION_V,
        user.openid,
        user.unionid,
        user.nickname,
        user.headimgurl,
        user.sex,
        user.province,
        user.city,
        user.country,
        list(user.privilege),
        user.scope,
        user.is_snapshot_user,
        session.profile_declined,
    ]


def session_from_payload(
    payload: Any, identity_key: str, app_ids: AppIds = NO_APP
) -> Session | None:
    """The session a payload stands for, or None if it is not one (every field is checked:
    a payload from an older layout or another deployment sharing the key must not crash
    the request, even though its signature or its store vouches for its origin). Its user's
    `app_id` is the account's (`app_ids`: the Official Account's, the website app's), whose
    keys alone sign its sessions."""
    # One look at every field's exact type (JSON makes no subclasses), then a few values.
    if (
        type(payload) is not list
        or tuple(map(type, payload)) not in _SESSION_TYPES
        or payload[0] != _SESSION_V
        or not payload[1]
    ):
        wecom = wecom_user(payload)  # a WeCom user's session has a layout of its own
        return None if wecom is None else Session(*wecom)
    privilege = payload[9]
    if privilege and not all(type(value) is str for value in privilege):
        return None
    scope = payload[10]
    # Built slot by slot (see _new): less than half the cost of the dataclasses' __init__.
    user = _new(WeChatUser)
    _openid(user, payload[1])
    _unionid(user, payload[2])
    _nickname(user, payload[3])
    _headimgurl(user, payload[4])
    _sex(user, payload[5])
    _province(user, payload[6])
    _city(user, payload[7])
    _country(user, payload[8])
    _privilege(user, tuple(privilege) if privilege else ())
    _scope(user, scope)
    _is_snapshot_user(user, payload[11])
    _app_id(user, (app_ids[1] or "") if scope == QRCONNECT_SCOPE else app_ids[0])
    _identity_key(user, identity_key)
    session = _new(Session)
    _session_user(session, user)
    _session_declined(session, payload[12])
    _session_sid(session, None)
    return session


# `tuple(map(type, payload))` of each valid session payload: the version, the openid, six
# optional strings and the optional sex, the privileges, the scope, two flags.
_OPTIONAL_STR: tuple[type, type] = (str, type(None))
_SESSION_TYPES = frozenset(
    (int, str, *strings[:3], sex, *strings[3:], list, str, bool, bool)
    for strings in itertools.product(_OPTIONAL_STR, repeat=6)
    for sex in (int, type(None))
)
# Sessions are built as their frozen dataclasses' __init__ would (past their __setattr__), but
# by each slot's descriptor, without keywords: in the fields' order (a test checks).
_new = object.__new__
_USER_SLOTS = tuple(getattr(WeChatUser, field.name).__set__ for field in fields(WeChatUser))
_openid, _unionid, _nickname, _headimgurl, _sex, _province, _city = _USER_SLOTS[:7]
_country, _privilege, _scope, _is_snapshot_user, _app_id, _identity_key = _USER_SLOTS[7:]
_session_user, _session_declined, _session_sid = (
    getattr(Session, field.name).__set__ for field in fields(Session)
)
