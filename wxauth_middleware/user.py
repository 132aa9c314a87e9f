"""The logged-in WeChat user, and how an application finds it on a request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["USER_KEY", "User", "WeChatUser", "WeComUser", "attached_user", "get_wechat_user"]

# The key under which the middleware puts the user, in the ASGI scope and in the WSGI environ.
USER_KEY = "wechat_user"


@dataclass(frozen=True, slots=True)
class WeChatUser:
    """Who the visitor is, as WeChat told us.

    `openid` identifies the user within one Official Account; `unionid` (when the account is
    bound to an Open Platform account and the scope was snsapi_userinfo) identifies them across
    all of the company's apps. Profile fields are None with the silent snsapi_base scope. Since
    October 2021 WeChat returns sex 0 and empty region fields for everyone: keep them, don't rely
    on them. `is_snapshot_user` marks the virtual identity of WeChat's "snapshot" page mode: it is
    not a real account and must not be persisted or linked. `scope` is `snsapi_base`,
    `snsapi_userinfo`, or `snsapi_login` for a desktop browser logged in by WeChat's website
    QR-code login. `app_id` names the account whose openid it is: the Official Account's
    AppID (with several accounts, the one serving the request's host), or the website app's
    for a QR-code login.
    """

    openid: str
    unionid: str | None = None
    nickname: str | None = None
    headimgurl: str | None = None
    sex: int | None = None
    province: str | None = None
    city: str | None = None
    country: str | None = None
    privilege: tuple[str, ...] = field(default=())
    scope: str = "snsapi_base"
    is_snapshot_user: bool = False
    # An openid belongs to one AppID already: two users with one openid are one user, whatever
    # each says its app_id is (a user made by hand, without it, included).
    app_id: str = field(default="", compare=False)
    # Which field identifies the user in the application: the middleware's `identity` option.
    identity_key: str = field(default="openid", repr=False)

    @property
    def identity(self) -> str:
        """The key to store the user under: `openid` (one per Official Account) or `unionid`
        (one per person across the company's apps), as the `identity` option chose. With
        `identity="unionid"` the middleware only logs in users that have a unionid."""
        return self.unionid if self.identity_key == "unionid" and self.unionid else self.openid


@dataclass(frozen=True, slots=True)
class WeComUser:
    """A visitor logged in with a WeCom (企业微信) app, as WeCom told us.

    A member of the corp has a `userid`; someone who is not (a WeChat user, a member of another
    corp) has an `openid` and, when the corp may see it, an `external_userid`. The profile
    fields come from getuserdetail with the snsapi_privateinfo scope, only those the admin
    enabled and the member agreed to share (WeCom gives no name there); they are None
    otherwise. `gender` is WeCom's string: "0" unknown, "1" male, "2" female. `scope` is
    "snsapi_base", "snsapi_privateinfo", or "sso" for a desktop browser logged in by WeCom's
    desktop login.
    """

    corp_id: str
    agent_id: int
    userid: str | None = None
    openid: str | None = None
    external_userid: str | None = None
    gender: str | None = None
    avatar: str | None = None
    qr_code: str | None = None
    mobile: str | None = None
    email: str | None = None
    biz_mail: str | None = None
    address: str | None = None
    scope: str = "snsapi_base"
    # WeCom has no snapshot pages: never a virtual identity.
    is_snapshot_user: ClassVar[bool] = False

    @property
    def identity(self) -> str:
        """The key to store the user under: the member's userid, else the openid."""
        return self.userid or self.openid or ""


# Whom the middleware logs in: a WeChat user, or a WeCom one.
User = WeChatUser | WeComUser


def get_wechat_user(request: Any) -> User | None:
    """The user (a `WeChatUser`, or a `WeComUser` on a WeCom app's host) the middleware
    attached to `request`, or None when there is none.

    `request` may be an ASGI scope, a WSGI environ, or a Starlette/FastAPI, Django or Flask
    request object. Anything else raises TypeError: a silent None there would hide a bug.
    """
    if isinstance(request, Mapping):
        return _from_mapping(request)
    # Starlette/FastAPI requests and Django's ASGIRequest carry the ASGI scope.
    scope = getattr(request, "scope", None)
    if isinstance(scope, Mapping):
        return _from_mapping(scope)
    # Flask/Werkzeug requests carry the WSGI environ; Django's WSGIRequest too.
    environ = getattr(request, "environ", None)
    if isinstance(environ, Mapping):
        return _from_mapping(environ)
    meta = getattr(request, "META", None)
    if isinstance(meta, Mapping):
        return _from_mapping(meta)
    raise TypeError(
        "get_wechat_user() takes an ASGI scope, a WSGI environ, or a Starlette, Django or "
        f"Flask request, not {type(request).__name__}"
    )


def attached_user(
    carrier: Mapping[str, Any], *, missing: str, where: str, writer: str
) -> User | None:
    """The user the middleware attached to `carrier` (a scope or an environ), for the
    framework helpers: a RuntimeError saying `missing` when the middleware did not see the
    request (a silent None would make every visitor look anonymous), and one when something
    other than the middleware (`writer`) wrote the key."""
    if USER_KEY not in carrier:
        raise RuntimeError(missing)
    user = carrier[USER_KEY]
    if user is not None and not isinstance(user, (WeChatUser, WeComUser)):
        raise RuntimeError(
            f'{where}["{USER_KEY}"] holds a {type(user).__name__}, not a WeChatUser: something '
            f"other than {writer} wrote it."
        )
    return user


def _from_mapping(mapping: Mapping[str, Any]) -> User | None:
    user = mapping.get(USER_KEY)
    return user if isinstance(user, (WeChatUser, WeComUser)) else None
