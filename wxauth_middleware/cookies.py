"""The middleware's cookies: every one it writes (`CookieWriter`), and the signed session they
carry (the logins in progress are `logins.py`'s).

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
import json
import re
import time
from binascii import a2b_base64, b2a_base64
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from starlette.requests import cookie_parser

from .errors import ConfigurationError
from .scopes import QRCONNECT_SCOPE
from .user import WeChatUser

if TYPE_CHECKING:
    from .config import Config
    from .messages import HTTPRequest

__all__ = [
    "BROWSER_SESSION_LIFE",
    "COOKIE_PREFIXES",
    "NO_APP",
    "AppIds",
    "Clock",
    "CookieWriter",
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
_SESSION_FIELDS = 13
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
# Cookie name prefixes browsers enforce (RFC 6265bis): __Host- cookies are Secure, on '/',
# without a Domain; __Secure- cookies are Secure.
COOKIE_PREFIXES = ("__Host-", "__Secure-")


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
        # less than hmac.digest, which sets the key up again every time.
        self._macs = tuple(hmac.new(key, digestmod="sha256") for key in keys)
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
        raw = signed.encode()
        for state in self._macs:
            mac = state.copy()
            mac.update(raw)
            if hmac.compare_digest(_b64(mac.digest()), signature.encode()):
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

    user: WeChatUser
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

    def encode(self, session: Session) -> str:
        return self._signer.sign(session_payload(session))

    def decode(self, value: str) -> Session | None:
        return self._verified.verify(value)


def session_payload(session: Session) -> list[Any]:
    """A session as a JSON-able list: the session cookie's payload, or a stored session's."""
    user = session.user
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
    # Exact types (JSON makes no subclasses), tested inline: this runs for every session
    # cookie verified.
    if type(payload) is not list or len(payload) != _SESSION_FIELDS or payload[0] != _SESSION_V:
        return None
    (
        _,
        openid,
        unionid,
        nickname,
        headimgurl,
        sex,
        province,
        city,
        country,
        privilege,
        scope,
        snapshot,
        declined,
    ) = payload
    if (
        type(openid) is not str
        or not openid
        or type(scope) is not str
        or type(snapshot) is not bool
        or type(declined) is not bool
        or (sex is not None and type(sex) is not int)
        or type(privilege) is not list
    ):
        return None
    for value in (unionid, nickname, headimgurl, province, city, country):
        if value is not None and type(value) is not str:
            return None
    for value in privilege:
        if type(value) is not str:
            return None
    user = WeChatUser(
        openid=openid,
        unionid=unionid,
        nickname=nickname,
        headimgurl=headimgurl,
        sex=sex,
        province=province,
        city=city,
        country=country,
        privilege=tuple(privilege),
        scope=scope,
        is_snapshot_user=snapshot,
        app_id=(app_ids[1] or "") if scope == QRCONNECT_SCOPE else app_ids[0],
        identity_key=identity_key,
    )
    return Session(user, declined)


class CookieWriter:
    """Every cookie the middleware sets or clears, each attribute decided here, once.

    All are HttpOnly and SameSite=Lax (not Strict: the login callback is a top-level
    navigation coming from WeChat's site, and a Strict cookie would not be sent with it).
    Secure on https; also on http when public_url says the public site is https (a
    TLS-terminating proxy in front) or https_only is set. The session cookie lives on
    cookie_path. The login-state cookie (the logins in progress) lives on '/', where a new
    login finds the others; on https, without cookie_domain, it is a `__Host-` cookie, which
    a sibling subdomain cannot plant (its signed value binds a login to this browser). A scan
    login's binding cookie lives only on scan_path (and below), where it is read.
    """

    def __init__(self, config: Config) -> None:
        self._session = config.session_cookie
        self._max_age = config.max_age
        self._path = config.cookie_path
        self._domain = config.cookie_domain
        self._state_max_age = config.login_max_age
        self._binding_max_age = config.scan_ticket_life
        self._binding_path = config.scan_path
        self._always_secure = config.https_only or (config.public_url or "").startswith("https:")
        self._scheme_decides = config.public_url is None
        base = config.session_cookie
        for prefix in COOKIE_PREFIXES:
            if base.lower().startswith(prefix.lower()):
                base = base[len(prefix) :]
        self._login_host = f"__Host-{base}_login"
        # A prefixed session name (https guaranteed) makes the others __Secure- (the binding
        # cookie's path, and cookie_domain, rule __Host- out for them).
        secure = "__Secure-" if base != config.session_cookie else ""
        self._login = f"{secure}{base}_login"
        self._binding_prefix = f"{secure}{base}_scan_"
        # Set-Cookie is written by hand (`_set`): what goes in unquoted is checked once, here
        # (Config checks the name and the domain; a path of a URL may hold a ';').
        for option, path in (("cookie_path", self._path), ("scan_path", self._binding_path)):
            if not _ATTRIBUTE.fullmatch(path):
                raise ConfigurationError(f"{option} {path!r}: a cookie's path cannot hold ';'.")

    def secure(self, request: HTTPRequest) -> bool:
        return self._always_secure or (self._scheme_decides and request.scheme == "https")

    def session(self, request: HTTPRequest, value: str) -> tuple[str, str]:
        return self._set(request, self._session, value, self._max_age, self._path, self._domain)

    def clear_session(self, request: HTTPRequest) -> tuple[str, str]:
        return self._set(request, self._session, "", 0, self._path, self._domain)

    def login_name(self, request: HTTPRequest) -> str:
        """The name of the login-state cookie, for this request's scheme."""
        if self._domain is None and self.secure(request):
            return self._login_host
        return self._login

    def login_value(self, request: HTTPRequest) -> str | None:
        """The login-state cookie's value in the request, None if it sent none."""
        return cookie_parser(request.header("cookie")).get(self.login_name(request))

    def login_state(self, request: HTTPRequest, value: str) -> tuple[str, str]:
        """Sets the login-state cookie to `value` (the codec's)."""
        name = self.login_name(request)
        domain = None if name == self._login_host else self._domain
        return self._set(request, name, value, self._state_max_age, "/", domain)

    def binding_name(self, ticket: str) -> str:
        """The name of the cookie that binds a scan login's `ticket` to its desktop browser."""
        return self._binding_prefix + ticket

    def binding(self, request: HTTPRequest, ticket: str, value: str) -> tuple[str, str]:
        return self._set(
            request,
            self.binding_name(ticket),
            value,
            self._binding_max_age,
            self._binding_path,
            self._domain,
        )

    def clear_binding(self, request: HTTPRequest, ticket: str) -> tuple[str, str]:
        return self._set(
            request, self.binding_name(ticket), "", 0, self._binding_path, self._domain
        )

    def _set(
        self,
        request: HTTPRequest,
        name: str,
        value: str,
        max_age: int | None,
        path: str,
        domain: str | None,
    ) -> tuple[str, str]:
        # Values are signed values or random tokens (base64url, digits, dots) or empty, and
        # names and attributes were checked in __init__: nothing needs quoting.
        header = f"{name}={value}"
        if max_age is not None:
            header += f"; Max-Age={max_age}"
        header += f"; Path={path}"
        if domain is not None:
            header += f"; Domain={domain}"
        header += "; HttpOnly; SameSite=Lax"
        if self.secure(request):
            header += "; Secure"
        return ("set-cookie", header)


# What a cookie's Path may be written with (RFC 6265: any character but controls and ';').
_ATTRIBUTE = re.compile(r"[ -:<-~]+")
