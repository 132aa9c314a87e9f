"""Starlette's `request.user`, `request.auth` and `@requires(...)` for WeChat users.

`WeChatAuthBackend` is an `AuthenticationBackend` for Starlette's `AuthenticationMiddleware`.
It does not log anyone in: it reads the user `WeChatAuthMiddleware` put at
`scope["wechat_user"]`. So `WeChatAuthMiddleware` must be the OUTER middleware, and
`AuthenticationMiddleware` sit inside it:

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware

    app = Starlette(
        routes=routes,
        middleware=[  # the first one listed is the outermost
            Middleware(WeChatAuthMiddleware, app_id="wx...", app_secret="...", secret_key="..."),
            Middleware(AuthenticationMiddleware, backend=WeChatAuthBackend()),
        ],
    )

or, with `add_middleware` (each call wraps what is there: the LAST added is the outermost):

    app.add_middleware(AuthenticationMiddleware, backend=WeChatAuthBackend())
    app.add_middleware(WeChatAuthMiddleware, app_id="wx...", app_secret="...", secret_key="...")

In the wrong order the backend sees no `scope["wechat_user"]` and raises a RuntimeError that says
so, rather than treating every visitor as anonymous.

A logged-in visitor gets `request.user`, a `WeChatStarletteUser` (`.wechat` is the
`WeChatUser`), and `request.auth.scopes`: "authenticated", "wechat", "snsapi_base", plus
"snsapi_userinfo" after a userinfo login, plus "wechat_snapshot" for the virtual user of
WeChat's snapshot page mode (`@requires("snsapi_userinfo")` guards pages that need the
profile). Anyone else gets Starlette's `UnauthenticatedUser` and no scopes, so
`@requires("authenticated")` answers 403, or redirects with `redirect="route_name"`. Websockets
work the same way: `websocket.user`, `websocket.auth`, `@requires` on websocket endpoints.
"""

from __future__ import annotations

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection

from ..user import USER_KEY, WeChatUser

__all__ = ["WeChatAuthBackend", "WeChatStarletteUser", "wechat_scopes"]


class WeChatStarletteUser(BaseUser):
    """A logged-in WeChat user, as Starlette's `request.user`."""

    def __init__(self, wechat: WeChatUser) -> None:
        self.wechat = wechat

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        """The nickname; the openid with snsapi_base (which has no profile) or no nickname."""
        return self.wechat.nickname or self.wechat.openid

    @property
    def identity(self) -> str:
        """`WeChatUser.identity`: the openid, or the unionid with `identity="unionid"`."""
        return self.wechat.identity

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WeChatStarletteUser):
            return NotImplemented
        return self.wechat == other.wechat

    def __hash__(self) -> int:
        return hash(self.wechat)

    def __repr__(self) -> str:
        return f"WeChatStarletteUser({self.wechat!r})"


def wechat_scopes(user: WeChatUser) -> list[str]:
    """The `request.auth.scopes` of a logged-in `user` (see the module's docstring)."""
    scopes = ["authenticated", "wechat", "snsapi_base"]
    if user.scope == "snsapi_userinfo":
        scopes.append("snsapi_userinfo")
    if user.is_snapshot_user:
        scopes.append("wechat_snapshot")
    return scopes


class WeChatAuthBackend(AuthenticationBackend):
    """Starlette authentication from the user `WeChatAuthMiddleware` found on the request.

    Use it inside `WeChatAuthMiddleware`: `AuthenticationMiddleware(app,
    backend=WeChatAuthBackend())`. HTTP and websocket connections alike.
    """

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if USER_KEY not in conn.scope:
            raise RuntimeError(
                "WeChatAuthBackend found no WeChat user on this request: WeChatAuthMiddleware "
                "must wrap AuthenticationMiddleware. List Middleware(WeChatAuthMiddleware, ...) "
                "before Middleware(AuthenticationMiddleware, backend=WeChatAuthBackend()) in "
                "Starlette(middleware=[...]), or call app.add_middleware(WeChatAuthMiddleware, "
                "...) after app.add_middleware(AuthenticationMiddleware, ...)."
            )
        user = conn.scope[USER_KEY]
        if user is None:
            return None
        if not isinstance(user, WeChatUser):
            raise RuntimeError(
                f'scope["{USER_KEY}"] holds a {type(user).__name__}, not a WeChatUser: '
                "something other than WeChatAuthMiddleware wrote it."
            )
        return AuthCredentials(wechat_scopes(user)), WeChatStarletteUser(user)
