"""FastAPI dependencies for the WeChat user that `WeChatAuthMiddleware` put on the request.

    from fastapi import FastAPI
    from wxauth_middleware import WeChatAuthMiddleware
    from wxauth_middleware.contrib.fastapi import CurrentWeChatUser, OptionalWeChatUser, install

    app = FastAPI()
    app.add_middleware(WeChatAuthMiddleware, app_id="wx...", app_secret="...", secret_key="...")
    install(app)  # the 401 body: {"error": "login_required", ...}, as Flask's and Django's

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
authorization at all: it gets `401 {"error": "login_required", "message": ...}`, the body of
the Flask and Django helpers' 401, with the `error` code of the middleware's own 401. FastAPI
wraps an `HTTPException`'s detail in `{"detail": ...}`, so the dependency raises
`LoginRequired` (an `HTTPException`) and `install(app)` registers the handler that answers it
flat; `require_user` raises a RuntimeError that says so when the handler is missing. An
`@app.exception_handler(401)` of the application's own still takes precedence. A websocket is
closed with 1008 (policy violation) instead. Both dependencies take an `HTTPConnection`, so
they serve HTTP and websocket routes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, WebSocketException, status
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from ..user import USER_KEY, WeChatUser
from . import LOGIN_REQUIRED

__all__ = [
    "CurrentWeChatUser",
    "LoginRequired",
    "OptionalWeChatUser",
    "current_user",
    "install",
    "require_user",
]


class LoginRequired(HTTPException):
    """Nobody is logged in: answered `401 {"error": "login_required", "message": ...}` by the
    handler `install(app)` registers."""

    def __init__(self) -> None:
        # Never cached: the same URL answers differently once the visitor has a session.
        super().__init__(
            status.HTTP_401_UNAUTHORIZED, LOGIN_REQUIRED, headers={"cache-control": "no-store"}
        )


def install(app: FastAPI) -> None:
    """Register the handler that answers `LoginRequired` with the flat 401 body."""
    app.add_exception_handler(LoginRequired, _login_required)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return JSONResponse(exc.detail, exc.status_code, headers=exc.headers)


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
    """The logged-in `WeChatUser`; a 401 (`LoginRequired`; a websocket: close code 1008) when
    there is none."""
    user = current_user(request)
    if user is not None:
        return user
    if request.scope["type"] == "websocket":
        raise WebSocketException(
            code=status.WS_1008_POLICY_VIOLATION, reason="WeChat login required"
        )
    handlers = getattr(request.scope.get("app"), "exception_handlers", None)
    if handlers is not None and LoginRequired not in handlers:
        raise RuntimeError(
            "The login_required handler is not installed: call "
            "wxauth_middleware.contrib.fastapi.install(app) once, after creating the FastAPI "
            "app, so that a route of CurrentWeChatUser answers 401 "
            '{"error": "login_required", ...} (the same body as the Flask and Django helpers).'
        )
    raise LoginRequired


OptionalWeChatUser = Annotated[WeChatUser | None, Depends(current_user)]
"""A route parameter: the `WeChatUser`, or None for an anonymous visitor."""

CurrentWeChatUser = Annotated[WeChatUser, Depends(require_user)]
"""A route parameter: the `WeChatUser`; anonymous visitors get a 401 and never reach the route."""
