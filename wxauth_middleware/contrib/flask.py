"""Flask helpers for the WeChat user that `WeChatAuthWSGIMiddleware` put on the request.

    from flask import Flask, render_template_string
    from wxauth_middleware import WeChatAuthWSGIMiddleware
    from wxauth_middleware.contrib.flask import (
        current_wechat_user,
        login_required,
        require_wechat_user,
    )

    app = Flask(__name__)
    app.wsgi_app = WeChatAuthWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, app_id="wx...", app_secret="...", secret_key="..."
    )

    @app.get("/")
    def home() -> str:
        user = current_wechat_user()  # a WeChatUser, or None
        name = user.nickname if user else "stranger"
        return render_template_string("你好, {{ name }}", name=name)  # Jinja escapes it

    @app.get("/api/me")
    @login_required  # 401 JSON when nobody is logged in
    def me() -> dict[str, str]:
        return {"openid": require_wechat_user().openid}

Wrapping `app.wsgi_app` (not `app`) keeps `app` the Flask object, so `flask run`, the test
client and extensions still work; the middleware sees the request before Flask does. Mounted
under a prefix (SCRIPT_NAME), the middleware sees the full path: give it
`callback_path="/prefix/wxauth/callback"`.

Why a 401 and never a redirect: behind the middleware, a WeChat-browser page visit without a
session never reaches the view (the middleware sends it to WeChat first, and answers a WeChat
API call with its own 401 and `authorize_url`). A view reached with no user was called by
another browser (a desktop browser, curl, a bot), which cannot log in with WeChat's web-page
authorization: it gets `401 {"error": "login_required", "message": ...}`, the same `error` code
as the middleware's own 401. The 401 is raised as werkzeug's `Unauthorized`, so an
`@app.errorhandler(401)` can render it differently.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from flask import jsonify, request
from werkzeug.exceptions import Unauthorized

from ..user import User, attached_user
from . import LOGIN_REQUIRED, LOGIN_REQUIRED_MESSAGE

__all__ = ["current_wechat_user", "login_required", "require_wechat_user"]

P = ParamSpec("P")
R = TypeVar("R")


def current_wechat_user() -> User | None:
    """The logged-in `WeChatUser` of the current Flask request, or None for an anonymous visitor.

    Raises RuntimeError when `WeChatAuthWSGIMiddleware` did not see the request: a silent None
    there would make every visitor look anonymous and hide the missing middleware. Outside a
    request, Flask's own "Working outside of request context" RuntimeError.
    """
    return attached_user(
        request.environ,
        missing="No WeChat user on this request: WeChatAuthWSGIMiddleware is not installed. "
        "Wrap the app with app.wsgi_app = WeChatAuthWSGIMiddleware(app.wsgi_app, app_id=..., "
        "app_secret=..., secret_key=...) before using wxauth_middleware.contrib.flask.",
        where="environ",
        writer="WeChatAuthWSGIMiddleware",
    )


def require_wechat_user() -> User:
    """The logged-in `WeChatUser`; raises a 401 (werkzeug `Unauthorized`) when there is none."""
    user = current_wechat_user()
    if user is None:
        response = jsonify(LOGIN_REQUIRED)
        response.status_code = 401
        # Never cached: the same URL answers differently once the visitor has a session.
        response.headers["Cache-Control"] = "no-store"
        raise Unauthorized(LOGIN_REQUIRED_MESSAGE, response=response)
    return user


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """Let only logged-in WeChat users into `view` (sync or async); others get a 401 JSON.

    The decorated view keeps its signature. Put it below `@app.route(...)`.
    """
    if inspect.iscoroutinefunction(view):
        async_view = cast(Callable[P, Awaitable[Any]], view)

        @functools.wraps(view)
        async def check_then_await(*args: P.args, **kwargs: P.kwargs) -> Any:
            require_wechat_user()
            return await async_view(*args, **kwargs)

        return cast(Callable[P, R], check_then_await)

    @functools.wraps(view)
    def check_then_call(*args: P.args, **kwargs: P.kwargs) -> R:
        require_wechat_user()
        return view(*args, **kwargs)

    return check_then_call
