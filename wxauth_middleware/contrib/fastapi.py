"""FastAPI dependencies for the WeChat user that `WeChatAuthMiddleware` put on the request.

    from fastapi import FastAPI
    from wxauth_middleware import WeChatAuthMiddleware
    from wxauth_middleware.contrib.fastapi import CurrentWeChatUser, OptionalWeChatUser

    app = FastAPI()
    app.add_middleware(WeChatAuthMiddleware, app_id="wx...", app_secret="...", secret_key="...")

    @app.get("/api/me")
    async def me(user: CurrentWeChatUser) -> dict[str, str]:  # 401 when nobody is logged in
        return {"openid": user.openid}

    @app.get("/")
    async def home(user: OptionalWeChatUser) -> str:  # a WeChatUser or None
        return (user.nickname or user.openid) if user else "stranger"

Why a 401 and never a redirect: behind the middleware, a WeChat-browser page visit without a
session never reaches the route (the middleware sends it to WeChat first, and answers a WeChat
API call with its own 401 and `authorize_url`). So a route reached with no user was called by
another browser (a desktop browser, curl, a bot), which cannot log in with WeChat's web-page
authorization at all: it gets `401 {"detail": {"error": "login_required", ...}}`, the same
`error` code as the middleware's own 401. A websocket is closed with 1008 (policy violation)
instead. Both dependencies take an `HTTPConnection`, so they serve HTTP and websocket routes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, WebSocketException, status
from starlette.requests import HTTPConnection

from ..user import USER_KEY, WeChatUser

__all__ = [
    "CurrentWeChatUser",
    "OptionalWeChatUser",
    "current_user",
    "require_user",
]


def current_user(request: HTTPConnection) -> WeChatUser | None:
    """The logged-in `WeChatUser`, or None for an anonymous visitor.

    Raises RuntimeError when `WeChatAuthMiddleware` did not see the request: a silent None
    there would make every visitor look anonymous and hide the missing middleware.
    """
    if USER_KEY not in request.scope:
        raise RuntimeError(
            "No WeChat user on this request: WeChatAuthMiddleware is not installed. Add it "
            "with app.add_middleware(WeChatAuthMiddleware, app_id=..., app_secret=..., "
            "secret_key=...) (or wrap the app in it) before using the wxauth_middleware "
            "FastAPI dependencies."
        )
    user = request.scope[USER_KEY]
    if user is not None and not isinstance(user, WeChatUser):
        raise RuntimeError(
            f'scope["{USER_KEY}"] holds a {type(user).__name__}, not a WeChatUser: something '
            "other than WeChatAuthMiddleware wrote it."
        )
    return user


def require_user(request: HTTPConnection) -> WeChatUser:
    """The logged-in `WeChatUser`; a 401 (a websocket: close code 1008) when there is none."""
    user = current_user(request)
    if user is not None:
        return user
    if request.scope["type"] == "websocket":
        raise WebSocketException(
            code=status.WS_1008_POLICY_VIOLATION, reason="WeChat login required"
        )
    # Never cached: the same URL answers differently once the visitor has a session.
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail={
            "error": "login_required",  # the code of the middleware's own 401
            "message": "Log in with WeChat: open this page inside the WeChat app.",
        },
        headers={"cache-control": "no-store"},
    )


OptionalWeChatUser = Annotated[WeChatUser | None, Depends(current_user)]
"""A route parameter: the `WeChatUser`, or None for an anonymous visitor."""

CurrentWeChatUser = Annotated[WeChatUser, Depends(require_user)]
"""A route parameter: the `WeChatUser`; anonymous visitors get a 401 and never reach the route."""
