"""A third-party platform (第三方平台) as WeChat's side keeps it: its credentials, the
component_verify_ticket it pushes, the component tokens, pre_auth_codes and authorization
codes it issues, and which Official Accounts authorized it (with their refresh tokens).

Its pushes are encrypted and signed as WeChat does (wechat-protocol.md §14), with the
middleware's own `MessageCipher` over `cryptography`, and POSTed to `events_url`.
"""

from __future__ import annotations

import logging
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import httpx

from ..platform.crypto import MessageCipher, msg_signature
from .authorize import AuthorizeRejection, AuthorizeRequest
from .grants import GrantError

__all__ = [
    "COMPONENT_TOKEN_TTL",
    "PUSH_INTERVAL",
    "TICKET_TTL",
    "EmulatedPlatform",
    "on_behalf_code",
    "on_behalf_rejection",
    "parse_platform",
]

logger = logging.getLogger("wxauth_middleware.emulator")

#: WeChat pushes a new ticket every 10 minutes; a ticket is good for 12 hours.
PUSH_INTERVAL = 600.0
TICKET_TTL = 12 * 3600.0
COMPONENT_TOKEN_TTL = 7200.0
PRE_AUTH_CODE_TTL = 1800.0
AUTH_CODE_TTL = 3600.0
_ALPHABET = string.ascii_letters + string.digits


def _random(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def parse_platform(spec: str) -> tuple[str, str, str, str]:
    """`COMPONENT_APPID:SECRET:TOKEN:AESKEY` (the CLI's --platform). ValueError if not."""
    parts = spec.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(
            "--platform takes COMPONENT_APPID:SECRET:TOKEN:AESKEY (four parts, colon-separated)"
        )
    MessageCipher(parts[3], parts[0])  # a 43-character EncodingAESKey, or ValueError
    return parts[0], parts[1], parts[2], parts[3]


@dataclass
class _Authorizer:
    """An Official Account that authorized the platform: its live refresh tokens (the newest
    and the one before, which stays good until the next rotation), revoked or not."""

    refresh_tokens: list[str] = field(default_factory=list)
    revoked: bool = False


class EmulatedPlatform:
    """One platform's server state, guarded by a lock (tests and routes share it)."""

    def __init__(
        self,
        spec: tuple[str, str, str, str],
        events_url: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.component_appid, self.secret, self.token, aes_key = spec
        self.events_url = events_url
        self._cipher = MessageCipher(aes_key, self.component_appid)
        self._clock = clock
        self._lock = threading.Lock()
        # The tickets pushed, newest last, with when: the newest two are accepted.
        self._tickets: list[tuple[str, float]] = []
        self._tokens: dict[str, float] = {}  # component_access_token -> expires at
        self._pre_auth: dict[str, float] = {}
        self._auth_codes: dict[str, tuple[str, float]] = {}  # code -> (appid, expires at)
        self.authorizers: dict[str, _Authorizer] = {}
        # Users' codes issued by an authorize link with component_appid.
        self._user_codes: set[str] = set()
        # What the pushes got back: (InfoType, HTTP status or None when unreachable).
        self.pushes: list[tuple[str, int | None]] = []

    def __repr__(self) -> str:
        return f"EmulatedPlatform(component_appid={self.component_appid!r})"

    # -- tickets and the component token ---------------------------------------------------

    def new_ticket(self) -> str:
        with self._lock:
            ticket = _random("ticket@@@", 64)
            self._tickets = [*self._tickets[-1:], (ticket, self._clock())]
            return ticket

    @property
    def ticket(self) -> str | None:
        with self._lock:
            return self._tickets[-1][0] if self._tickets else None

    def component_token(self, appid: str, secret: str, ticket: str) -> tuple[str, int]:
        if appid != self.component_appid:
            raise GrantError(40013)
        if not secrets.compare_digest(secret.encode(), self.secret.encode()):
            raise GrantError(40125)
        with self._lock:
            issued = dict(self._tickets).get(ticket)
            if issued is None:
                raise GrantError(61006)
            if self._clock() - issued >= TICKET_TTL:
                raise GrantError(61005)
            token = _random("", 96)
            self._tokens[token] = self._clock() + COMPONENT_TOKEN_TTL
            return token, int(COMPONENT_TOKEN_TTL)

    def check_token(self, token: str, account_token: Callable[[str], object]) -> None:
        """41001 missing, 42001 expired, 48001 an authorizer's (an account's) token, 40001
        unknown."""
        if not token:
            raise GrantError(41001)
        with self._lock:
            expires = self._tokens.get(token)
        if expires is not None:
            if self._clock() >= expires:
                raise GrantError(42001)
            return
        try:
            account_token(token)
        except GrantError:
            raise GrantError(40001) from None
        raise GrantError(48001)

    def invalidate_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- the admin's authorization ---------------------------------------------------------

    def pre_auth_code(self) -> tuple[str, int]:
        with self._lock:
            code = _random("preauthcode@@@", 48)
            self._pre_auth[code] = self._clock() + PRE_AUTH_CODE_TTL
            return code, int(PRE_AUTH_CODE_TTL)

    def spend_pre_auth_code(self, code: str) -> bool:
        with self._lock:
            expires = self._pre_auth.pop(code, None)
            return expires is not None and self._clock() < expires

    def authorize(self, app_id: str) -> str:
        """The admin of `app_id` approved: its authorization code (the refresh token comes
        with api_query_auth)."""
        with self._lock:
            code = _random("queryauthcode@@@", 48)
            self._auth_codes[code] = (app_id, self._clock() + AUTH_CODE_TTL)
            self.authorizers.setdefault(app_id, _Authorizer()).revoked = False
            return code

    def query_auth(self, code: str) -> tuple[str, str]:
        """(authorizer appid, its new refresh token) for an authorization code (usable as
        long as it lives: the redirect and the event may both bring it)."""
        with self._lock:
            held = self._auth_codes.get(code)
            if held is None or self._clock() >= held[1]:
                raise GrantError(61010)
            authorizer = self.authorizers[held[0]]
            if authorizer.revoked:
                raise GrantError(61003)
            refresh = _random("refreshtoken@@@", 48)
            authorizer.refresh_tokens = [refresh]
            return held[0], refresh

    def refresh(self, app_id: str, refresh_token: str) -> str:
        """A new refresh token for a live one (rotated: the one before stays good once)."""
        with self._lock:
            authorizer = self.authorizers.get(app_id)
            if authorizer is None or authorizer.revoked:
                raise GrantError(61003)
            if refresh_token not in authorizer.refresh_tokens:
                raise GrantError(61023)
            new = _random("refreshtoken@@@", 48)
            authorizer.refresh_tokens = [authorizer.refresh_tokens[-1], new]
            return new

    def revoke(self, app_id: str) -> None:
        with self._lock:
            authorizer = self.authorizers.setdefault(app_id, _Authorizer())
            authorizer.revoked = True
            authorizer.refresh_tokens = []

    def is_authorizer(self, app_id: str) -> bool:
        with self._lock:
            authorizer = self.authorizers.get(app_id)
            return authorizer is not None and not authorizer.revoked

    def user_code(self, code: str) -> None:
        with self._lock:
            self._user_codes.add(code)

    def is_user_code(self, code: str) -> bool:
        with self._lock:
            return code in self._user_codes

    # -- pushes ----------------------------------------------------------------------------

    def envelope(self, info_type: str, fields: dict[str, str]) -> tuple[str, bytes]:
        """The query string and body of a push of `info_type` with `fields`."""
        now = str(int(self._clock()))
        inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
        message = (
            f"<xml><AppId><![CDATA[{self.component_appid}]]></AppId><CreateTime>{now}"
            f"</CreateTime><InfoType><![CDATA[{info_type}]]></InfoType>{inner}</xml>"
        )
        encrypt = self._cipher.encrypt(message)
        nonce = str(secrets.randbelow(10**10))
        query = urlencode(
            {
                "signature": secrets.token_hex(20),
                "timestamp": now,
                "nonce": nonce,
                "encrypt_type": "aes",
                "msg_signature": msg_signature(self.token, now, nonce, encrypt),
            }
        )
        body = (
            f"<xml><AppId><![CDATA[{self.component_appid}]]></AppId>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ).encode()
        return query, body

    async def push(self, info_type: str, **fields: str) -> int | None:
        """POSTs an event to `events_url`; its HTTP status, or None if it could not be
        delivered (no URL, or unreachable)."""
        if self.events_url is None:
            return None
        if info_type == "component_verify_ticket" and "ComponentVerifyTicket" not in fields:
            fields["ComponentVerifyTicket"] = self.new_ticket()
        query, body = self.envelope(info_type, fields)
        separator = "&" if "?" in self.events_url else "?"
        status: int | None
        try:
            async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
                response = await client.post(
                    self.events_url + separator + query,
                    content=body,
                    headers={"content-type": "text/xml"},
                )
            status = response.status_code
        except httpx.HTTPError as exc:
            logger.warning(
                "emulator: the %s push did not reach %s (%s)",
                info_type,
                self.events_url,
                type(exc).__name__,
            )
            status = None
        with self._lock:
            self.pushes.append((info_type, status))
            del self.pushes[:-100]
        return status


def on_behalf_rejection(
    platform: EmulatedPlatform | None, auth: AuthorizeRequest
) -> AuthorizeRejection | None:
    """Why an authorize link with component_appid (a login on an account's behalf) is
    refused, if it is: another platform's, or an account that has not authorized it."""
    component = dict(parse_qsl(auth.query)).get("component_appid")
    if component is None:
        return None
    if platform is None or component != platform.component_appid:
        return AuthorizeRejection(
            "40013", "授权失败 / invalid component_appid", "component_appid is not this platform's."
        )
    if not platform.is_authorizer(auth.app_id):
        return AuthorizeRejection(
            "61003",
            "该公众号未授权此第三方平台 / the account has not authorized this platform",
            f"{auth.app_id} has not authorized the platform {component} (or revoked it): its "
            "admin must authorize it first.",
        )
    return None


def on_behalf_code(platform: EmulatedPlatform | None, auth: AuthorizeRequest, code: str) -> None:
    """Remember a code issued by a login on an account's behalf (only such a code is
    exchanged at /sns/oauth2/component/access_token)."""
    if platform is not None and "component_appid" in dict(parse_qsl(auth.query)):
        platform.user_code(code)
