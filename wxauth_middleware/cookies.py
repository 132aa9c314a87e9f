"""The signed values the middleware's cookies carry: the session (the logins in progress are
`login/in_progress.py`'s; every cookie is written by `cookie_writer.py`).

A signed value is `2.time.payload.mac`: the format's version, the time it was signed (seconds
since the epoch, decimal), the payload as compact JSON in unpadded base64url (or, a string of
base64url characters and `~`, as it is after a `~`), and a MAC over all that (keyed BLAKE2b,
16 bytes, in hex; `Signer`). Each purpose (the session, the logins in progress, a stored
session's id, a callback's clean page) signs with a key of its own derived from the
configured `secret_key` (a list rotates keys: the newest, last, signs; every key verifies),
so one kind of value can never be replayed as another. Anything that fails to verify
or decode is treated as absent: a tampered, expired, truncated or foreign cookie never raises.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
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

# How long a session's signature is accepted with max_age=None (a cookie that lasts as long as
# the browser runs, which some browsers restore for ever): a copied cookie must not work for
# years.
BROWSER_SESSION_LIFE = 30 * 24 * 3600
# How many verified session cookies a codec remembers (a few hundred KB at most).
_VERIFIED_CACHE_SIZE = 1024
_GENERATION = _VERIFIED_CACHE_SIZE // 2


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
    the MAC (and parsing the payload) again. Bounded: two generations of at most half the
    size each; when the young one is full it becomes the old one, and the old one is dropped
    (a value asked for again from the old generation moves to the young one, so a visitor
    who keeps coming stays). Only values that verified and decoded are kept, so a flood of
    forged cookies cannot fill it.
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
        # Two plain dicts: a miss costs two lookups and one insertion, and the oldest are
        # dropped all at once, where a dict or an OrderedDict dropping its oldest entry on
        # nearly every request of a busy site costs about a microsecond more.
        self._young: dict[str, tuple[T, float]] = {}
        self._old: dict[str, tuple[T, float]] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def verify(self, value: str) -> T | None:
        """What `value` stands for, or None if it does not verify or decode."""
        young = self._young
        cached = young.get(value) or self._old.get(value)
        if cached is None:
            verified = self._signer.verify(value, self._max_age)
            if verified is None:
                return None
            decoded = self._decode(verified[0])
            if decoded is None:
                return None
            cached = (decoded, verified[1] + self._max_age)
        # (The usual clock without wall_clock's call: time.time as it is when asked.)
        elif (time.time() if self._clock is wall_clock else self._clock()) >= cached[1]:
            return None
        elif value in young:
            return cached[0]
        # New, or a regular visitor's from the old generation.
        young[value] = cached
        if len(young) >= _GENERATION:
            # (Another thread may do the same meanwhile: a few entries lost, none wrong.)
            self._old, self._young = young, {}
        return cached[0]


class Signer:
    """Signs JSON-able payloads for one purpose, and verifies them: `2.time.payload.mac`
    (see the module's docstring), nothing but base64url, `~`, digits and dots, so a value
    needs no quoting in a cookie or a URL.

    The key for `purpose` is HMAC-SHA256(secret key, "wxauth_middleware.key2 " + purpose):
    one per secret key, newest first; the newest signs, each verifies. The MAC, keyed
    BLAKE2b of 16 bytes, covers all but itself (the version, the time, the payload), and is
    compared in constant time; a value is verified before its payload is decoded.

    Values of the format before (`payload.time.signature`, HMAC-SHA256 with the key of
    "wxauth_middleware.key " + purpose; see `_verify_v1`) still verify.
    """

    def __init__(self, secret_keys: tuple[bytes, ...], purpose: str, clock: Clock) -> None:
        newest_first = tuple(reversed(secret_keys))
        label = b"wxauth_middleware.key2 " + purpose.encode()
        keys = (hmac.digest(key, label, "sha256") for key in newest_first)
        # Each key's BLAKE2b state, its key already absorbed: a copy per value.
        self._macs = tuple(hashlib.blake2b(key=key, digest_size=_MAC_SIZE) for key in keys)
        v1_label = b"wxauth_middleware.key " + purpose.encode()
        v1_keys = (hmac.digest(key, v1_label, "sha256") for key in newest_first)
        v1_macs = (hmac.new(key, digestmod="sha256") for key in v1_keys)
        # OpenSSL's HMAC object itself where there is one (hmac.HMAC wraps it in Python).
        self._v1_macs = tuple(getattr(mac, "_hmac", None) or mac for mac in v1_macs)
        self._clock = clock

    def sign(self, payload: object) -> str:
        if type(payload) is str and _AS_IS.fullmatch(payload):
            data = _TEXT + payload  # needs no encoding: as it is
        else:
            data = _b64(_JSON_OUT.encode(payload).encode()).decode()
        signed = f"{_V2}{int(self._clock())}.{data}."
        mac = self._macs[0].copy()
        mac.update(signed.encode())
        return signed + mac.hexdigest()

    def verify(self, value: str, max_age: int) -> tuple[Any, int] | None:
        """The payload of `value` and when it was signed, if this signer signed it less than
        `max_age` seconds ago (and not more than CLOCK_SKEW seconds in the future); None for
        anything else."""
        if not value.startswith(_V2):
            return self._verify_v1(value, max_age)
        if len(value) > MAX_SIGNED or not value.isascii():
            return None
        signed = value[:-_MAC_CHARS]
        raw, expected = signed.encode(), value[-_MAC_CHARS:]
        for state in self._macs:
            mac = state.copy()
            mac.update(raw)
            if compare_digest(mac.hexdigest(), expected):
                break
        else:
            return None
        # Signed with this purpose's key of this format: written by `sign`, whole.
        stamp, _, data = signed[_V2_LENGTH:-1].partition(".")
        signed_at = int(stamp)
        now = time.time() if self._clock is wall_clock else self._clock()
        if not -CLOCK_SKEW <= now - signed_at <= max_age:
            return None
        if data[0] == _TEXT:
            return data[1:], signed_at
        try:
            # (_unb64, without its call.)
            text = a2b_base64(data.encode().translate(_FROM_URLSAFE) + b"==").decode()
            return _JSON_IN.raw_decode(text)[0], signed_at
        except ValueError:  # never for what `sign` wrote
            return None

    def _verify_v1(self, value: str, max_age: int) -> tuple[Any, int] | None:
        # The format before `2.` (releases up to 0.1.0). Its longest-lived values are session
        # cookies and stored sessions' ids (max_age; 30 days with max_age=None): this reader
        # can go in a release made that long after the first one that writes `2.`, after
        # which any value it would read has expired.
        if len(value) > MAX_SIGNED or not value.isascii():
            return None
        signed, _, signature = value.rpartition(".")
        raw, expected = signed.encode(), signature.encode()
        for state in self._v1_macs:
            mac = state.copy()
            mac.update(raw)
            if compare_digest(_b64(mac.digest()), expected):
                break
        else:
            return None
        data, _, stamp = signed.partition(".")
        if not stamp.isdigit() or not -CLOCK_SKEW <= self._clock() - int(stamp) <= max_age:
            return None
        try:
            text = _unb64(data).decode()
            payload, end = _JSON_IN.raw_decode(text)
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
        return (payload, int(stamp)) if end == len(text) else None


# The version of the signed values' format written, and the MAC's size (bytes, hex digits).
_V2 = "2."
# A payload that is a string of these characters is signed as it is, after `_TEXT` (which
# base64url never starts with); any other, as base64url of its JSON.
_TEXT = "~"
_AS_IS = re.compile(r"[A-Za-z0-9_~-]*")
_V2_LENGTH = len(_V2)
_MAC_SIZE = 16
_MAC_CHARS = 2 * _MAC_SIZE
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
            # (A partial, not a lambda: no frame of Python more per cookie verified.)
            partial(_session, identity_key, app_ids),
            clock,
        )
        # The session `value` stands for, or None (a layer of call less than a method).
        self.decode: Callable[[str], Session | None] = self._verified.verify

    def encode(self, session: Session) -> str:
        return self._signer.sign(session_payload(session))


def session_payload(session: Session) -> str | list[Any]:
    """A session as a JSON-able value: the session cookie's payload, or a stored session's.

    Without a profile (snsapi_base, the default scope), `openid~scope~flags` (the flags: 1 if
    a snapshot user, + 2 if the profile was declined), signed as it is; otherwise the openid,
    the scope, the two flags and the profile's fields, as a list."""
    user = session.user
    if isinstance(user, WeComUser):
        return wecom_payload(user, session.profile_declined)
    profile = (
        user.unionid,
        user.nickname,
        user.headimgurl,
        user.sex,
        user.province,
        user.city,
        user.country,
    )
    plain = _PLAIN.fullmatch(user.openid) and _PLAIN.fullmatch(user.scope)
    if plain and profile == _NO_PROFILE and not user.privilege:
        flags = user.is_snapshot_user + 2 * session.profile_declined
        return f"{user.openid}~{user.scope}~{flags}"
    return [
        user.openid,
        user.scope,
        user.is_snapshot_user,
        session.profile_declined,
        *profile,
        list(user.privilege),
    ]


def session_from_payload(
    payload: Any, identity_key: str, app_ids: AppIds = NO_APP
) -> Session | None:
    """The session a payload stands for, or None if it is not one (every field is checked:
    a payload from an older layout or another deployment sharing the key must not crash
    the request, even though its signature or its store vouches for its origin). Its user's
    `app_id` is the account's (`app_ids`: the Official Account's, the website app's), whose
    keys alone sign its sessions."""
    return _session(identity_key, app_ids, payload)


def _session(identity_key: str, app_ids: AppIds, payload: Any) -> Session | None:
    # One look at every field's exact type (JSON makes no subclasses), then a few values.
    if type(payload) is str:
        parts = payload.split("~")
        if len(parts) != 3 or parts[2] not in _FLAGS:
            return None
        openid, scope, (snapshot, declined) = parts[0], parts[1], _FLAGS[parts[2]]
        profile: Sequence[Any] = _NO_PROFILE
        privilege: tuple[str, ...] = ()
    elif type(payload) is not list:
        return None
    elif tuple(map(type, payload)) in _PROFILE_TYPES:
        openid, scope, snapshot, declined = payload[:4]
        profile = payload[4:11]
        privilege = tuple(payload[11])
        if not all(type(value) is str for value in privilege):
            return None
    elif tuple(map(type, payload)) in _V1_TYPES and payload[0] == _V1:
        # The layout before (releases up to 0.1.0): readable as long as what it wrote lives
        # (see Signer._verify_v1).
        return _session(identity_key, app_ids, _from_v1(payload))
    else:
        wecom = wecom_user(payload)  # a WeCom user's session has a layout of its own
        return None if wecom is None else Session(*wecom)
    if not openid or not scope:
        return None
    # Built slot by slot (see _new): less than half the cost of the dataclasses' __init__.
    user = _new(WeChatUser)
    _openid(user, openid)
    _unionid(user, profile[0])
    _nickname(user, profile[1])
    _headimgurl(user, profile[2])
    _sex(user, profile[3])
    _province(user, profile[4])
    _city(user, profile[5])
    _country(user, profile[6])
    _privilege(user, privilege)
    _scope(user, scope)
    _is_snapshot_user(user, snapshot)
    _app_id(user, (app_ids[1] or "") if scope == QRCONNECT_SCOPE else app_ids[0])
    _identity_key(user, identity_key)
    session = _new(Session)
    _session_user(session, user)
    _session_declined(session, declined)
    _session_sid(session, None)
    return session


def _from_v1(payload: list[Any]) -> list[Any]:
    # [1, openid, unionid, nickname, headimgurl, sex, province, city, country, privilege,
    #  scope, is_snapshot_user, profile_declined]
    return [payload[1], payload[10], payload[11], payload[12], *payload[2:10]]


_V1 = 1
_NO_PROFILE = (None,) * 7
# A session without a profile, as it is: the openid and scope of these characters, the flags.
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_FLAGS = {"0": (False, False), "1": (True, False), "2": (False, True), "3": (True, True)}
# `tuple(map(type, payload))` of each valid session payload as a list: the openid, the scope,
# two flags, six optional strings and the optional sex, and the privileges. The layout before:
# its version, the openid, the profile, the privileges, the scope, the flags.
_OPTIONAL_STR: tuple[type, type] = (str, type(None))
_PROFILES = [
    (*strings[:3], sex, *strings[3:])
    for strings in itertools.product(_OPTIONAL_STR, repeat=6)
    for sex in (int, type(None))
]
_PROFILE_TYPES = frozenset((str, str, bool, bool, *profile, list) for profile in _PROFILES)
_V1_TYPES = frozenset((int, str, *profile, list, str, bool, bool) for profile in _PROFILES)
# Sessions are built as their frozen dataclasses' __init__ would (past their __setattr__), but
# by each slot's descriptor, without keywords: in the fields' order (a test checks).
_new = object.__new__
_USER_SLOTS = tuple(getattr(WeChatUser, field.name).__set__ for field in fields(WeChatUser))
_openid, _unionid, _nickname, _headimgurl, _sex, _province, _city = _USER_SLOTS[:7]
_country, _privilege, _scope, _is_snapshot_user, _app_id, _identity_key = _USER_SLOTS[7:]
_session_user, _session_declined, _session_sid = (
    getattr(Session, field.name).__set__ for field in fields(Session)
)
