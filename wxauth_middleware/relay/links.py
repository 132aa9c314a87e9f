"""What a relay and its sites say to each other, signed: the start link a site sends a
browser to, the redemption of a ticket a site makes server to server, and the user in its
answer. Written once here for both ends (`relay/service.py`, and the site's `login/`).

A site signs with its secret (HMAC-SHA256, the message prefixed by what it is, so a signature
of one kind never passes for another); the relay checks with any of the site's secrets (the
newest first, so that a secret can be rotated: add the new one to the relay, then give it to
the site, then drop the old one).

A start link binds the login to the browser that started it: the site keeps a random nonce in
its own signed login-state cookie and puts only the nonce's SHA-256 (the `binding`) in the
link; the redemption must show a nonce whose hash is the ticket's binding, which only that
browser's cookie holds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..user import User, WeChatUser, WeComUser

__all__ = [
    "RELAY_PATHS",
    "START_FIELDS",
    "StartLink",
    "binding_of",
    "redemption",
    "redemption_signature",
    "start_signature",
    "start_url",
    "user_from_wire",
    "user_to_wire",
]

# The relay's own paths, under its public_url.
RELAY_PATHS = {
    "start": "/wxauth/relay/start",
    "callback": "/wxauth/relay/callback",
    "finish": "/wxauth/relay/finish",
    "redeem": "/wxauth/relay/redeem",
}
# A start link's fields, in the order they are signed; then `sig`.
START_FIELDS = ("site", "scope", "binding", "return", "ts")


@dataclass(frozen=True, slots=True)
class StartLink:
    """A start link's fields (`return` is the site's callback URL)."""

    site: str
    scope: str
    binding: str
    return_url: str
    ts: int

    def values(self) -> tuple[str, ...]:
        return (self.site, self.scope, self.binding, self.return_url, str(self.ts))


def binding_of(nonce: str) -> str:
    """The binding a start link carries for the login whose nonce is `nonce`."""
    return hashlib.sha256(b"wxauth relay binding " + nonce.encode()).hexdigest()


def start_signature(secret: bytes, link: StartLink) -> str:
    return _sign(secret, "wxauth relay start", link.values())


def start_url(relay_url: str, secret: bytes, link: StartLink) -> str:
    """The relay's start link for `link`, signed with the site's `secret`."""
    query = dict(zip(START_FIELDS, link.values(), strict=True))
    query["sig"] = start_signature(secret, link)
    return f"{relay_url}{RELAY_PATHS['start']}?{urlencode(query)}"


def redemption_signature(
    secret: bytes, site: str, ticket: str, nonces: Sequence[str], ts: int
) -> str:
    return _sign(secret, "wxauth relay redeem", (site, ticket, str(ts), *nonces))


def redemption(
    secret: bytes, site: str, ticket: str, nonces: Sequence[str], ts: int
) -> dict[str, object]:
    """The JSON body a site POSTs to the relay's redeem path."""
    return {
        "site": site,
        "ticket": ticket,
        "nonces": list(nonces),
        "ts": ts,
        "sig": redemption_signature(secret, site, ticket, nonces, ts),
    }


def _sign(secret: bytes, kind: str, values: Sequence[str]) -> str:
    # Each value's length before it: no two lists of values sign the same message.
    message = kind + "".join(f"\n{len(value)}:{value}" for value in values)
    return hmac.new(secret, message.encode("utf-8"), "sha256").hexdigest()


# -- the user, as the relay's answer carries it ------------------------------------------------


def user_to_wire(user: User) -> dict[str, object]:
    """A user as JSON: its kind and its public fields (never a token)."""
    if isinstance(user, WeComUser):
        return {
            "kind": "wecom",
            "corp_id": user.corp_id,
            "agent_id": user.agent_id,
            **{name: getattr(user, name) for name in _WECOM_TEXT},
        }
    return {
        "kind": "wechat",
        "app_id": user.app_id,
        "openid": user.openid,
        **{name: getattr(user, name) for name in _TEXT},
        "sex": user.sex,
        "privilege": list(user.privilege),
        "is_snapshot_user": user.is_snapshot_user,
    }


def user_from_wire(data: object, identity_key: str) -> User | None:
    """The user a relay's answer carries, or None when it is not one (every field checked)."""
    if not isinstance(data, Mapping):
        return None
    if data.get("kind") == "wecom":
        return _wecom_user(data)
    if data.get("kind") != "wechat":
        return None
    openid, app_id, sex = data.get("openid"), data.get("app_id"), data.get("sex")
    privilege, snapshot = data.get("privilege"), data.get("is_snapshot_user")
    texts = {name: data.get(name) for name in _TEXT}
    if not isinstance(openid, str) or not openid or not isinstance(app_id, str):
        return None
    if not all(value is None or isinstance(value, str) for value in texts.values()):
        return None
    if sex is not None and (not isinstance(sex, int) or isinstance(sex, bool)):
        return None
    if not isinstance(privilege, list) or not all(isinstance(p, str) for p in privilege):
        return None
    if not isinstance(snapshot, bool) or not isinstance(texts["scope"], str):
        return None
    fields: dict[str, Any] = texts
    return WeChatUser(
        openid=openid,
        sex=sex,
        privilege=tuple(privilege),
        is_snapshot_user=snapshot,
        app_id=app_id,
        identity_key=identity_key,
        **fields,
    )


def _wecom_user(data: Mapping[str, object]) -> WeComUser | None:
    corp_id, agent_id = data.get("corp_id"), data.get("agent_id")
    texts = {name: data.get(name) for name in _WECOM_TEXT}
    if not isinstance(corp_id, str) or not corp_id:
        return None
    if not isinstance(agent_id, int) or isinstance(agent_id, bool):
        return None
    if not all(value is None or isinstance(value, str) for value in texts.values()):
        return None
    if not isinstance(texts["scope"], str) or not (texts["userid"] or texts["openid"]):
        return None
    fields: dict[str, Any] = texts
    return WeComUser(corp_id=corp_id, agent_id=agent_id, **fields)


_TEXT = ("unionid", "nickname", "headimgurl", "province", "city", "country", "scope")
_WECOM_TEXT = (
    "userid",
    "openid",
    "external_userid",
    "gender",
    "avatar",
    "qr_code",
    "mobile",
    "email",
    "biz_mail",
    "address",
    "scope",
)
