"""FastAPI: `app.add_middleware(WeChatAuthMiddleware, ...)` and the typed user dependencies,
with the login run for real against the emulator server.

mypy (strict) checks this file too: the routes' parameters are annotated with the aliases, and
`assert_type` pins what the aliases give a route, so a wrong alias type fails the type check.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from typing_extensions import assert_type

from wxauth_middleware import WeChatAuthMiddleware, WeChatUser
from wxauth_middleware.contrib.fastapi import (
    CurrentWeChatUser,
    OptionalWeChatUser,
    current_user,
    install,
    require_user,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID

from .support import (
    APP_ORIGIN,
    CHROME_UA,
    Stack,
    browser,
    lifespan,
    login,
    middleware_options,
    websocket_messages,
)

JSON = {"accept": "application/json"}


def build_app(stack: Stack | None, *, handler: bool = True, **options: Any) -> FastAPI:
    """A fresh FastAPI app; behind WeChatAuthMiddleware (pointed at the stack's emulator server)
    unless `stack` is None; with the login_required handler installed unless `handler` is
    False."""
    app = FastAPI()
    if handler:
        install(app)

    @app.get("/me")
    async def me(user: CurrentWeChatUser) -> dict[str, str | None]:
        assert_type(user, WeChatUser)
        return {"openid": user.openid, "nickname": user.nickname, "scope": user.scope}

    @app.get("/maybe")
    async def maybe(user: OptionalWeChatUser) -> dict[str, str | None]:
        assert_type(user, WeChatUser | None)
        return {"openid": user.openid if user else None}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: CurrentWeChatUser) -> None:
        await websocket.accept()
        await websocket.send_json({"nickname": user.nickname})
        await websocket.close()

    if stack is not None:
        options.setdefault("scope", "snsapi_userinfo")
        app.add_middleware(WeChatAuthMiddleware, **middleware_options(stack.wechat_url, **options))
    return app


# -- HTTP -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_login_through_fastapi_gives_the_route_the_user(asgi_stack: Stack) -> None:
    emulator = asgi_stack.emulator(auto_approve=True)
    app = build_app(asgi_stack)
    async with browser(app) as client:
        page = await login(client, "/me?tab=1")
        maybe = await client.get("/maybe", headers=JSON)
    assert page.status_code == 200
    assert str(page.url) == f"{APP_ORIGIN}/me?tab=1"
    openid = emulator.personas[0].openid_for(DEFAULT_APP_ID)
    assert page.json() == {"openid": openid, "nickname": "小明🐼", "scope": "snsapi_userinfo"}
    assert maybe.json() == {"openid": openid}


@pytest.mark.anyio
async def test_session_cookie_works_from_any_browser(asgi_stack: Stack) -> None:
    asgi_stack.emulator(auto_approve=True)
    app = build_app(asgi_stack, scope="snsapi_base")
    async with browser(app) as phone:
        await login(phone, "/me")
        session = phone.cookies["wxauth_session"]
    async with browser(app, user_agent=CHROME_UA) as desktop:
        desktop.cookies.set("wxauth_session", session)
        response = await desktop.get("/me", headers=JSON)
    assert response.status_code == 200
    assert response.json()["nickname"] is None  # snsapi_base: no profile
    assert response.json()["scope"] == "snsapi_base"


@pytest.mark.anyio
@pytest.mark.parametrize("accept", ["text/html,*/*;q=0.8", "application/json"])
async def test_anonymous_desktop_gets_401_from_require_user(accept: str, asgi_stack: Stack) -> None:
    emulator = asgi_stack.emulator()
    async with browser(build_app(asgi_stack), user_agent=CHROME_UA) as client:
        response = await client.get("/me", headers={"accept": accept})
        maybe = await client.get("/maybe")
    assert response.status_code == 401
    # Flat, the body of the Flask and Django helpers' 401 (not FastAPI's {"detail": ...}).
    assert response.json() == {
        "error": "login_required",
        "message": "Log in with WeChat: open this page inside the WeChat app.",
    }
    assert response.headers["cache-control"] == "no-store"
    assert maybe.status_code == 200
    assert maybe.json() == {"openid": None}
    assert emulator.calls == []


@pytest.mark.anyio
async def test_without_the_handler_require_user_says_how_to_install_it(asgi_stack: Stack) -> None:
    async with browser(build_app(asgi_stack, handler=False), user_agent=CHROME_UA) as client:
        with pytest.raises(RuntimeError, match=r"contrib\.fastapi\.install\(app\)"):
            await client.get("/me", headers=JSON)


@pytest.mark.anyio
async def test_an_applications_own_401_handler_takes_precedence(asgi_stack: Stack) -> None:
    from fastapi import Request
    from fastapi.responses import PlainTextResponse

    app = build_app(asgi_stack)

    @app.exception_handler(401)
    async def please_log_in(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("please log in", 401)

    async with browser(app, user_agent=CHROME_UA) as client:
        response = await client.get("/me", headers=JSON)
    assert (response.status_code, response.text) == (401, "please log in")


@pytest.mark.anyio
async def test_wechat_api_call_without_session_gets_the_middleware_401(
    asgi_stack: Stack,
) -> None:
    # The middleware answers first, with the URL to send the page to; the route is not reached.
    asgi_stack.emulator()
    async with browser(build_app(asgi_stack)) as client:
        response = await client.get("/me", headers=JSON)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "login_required"
    assert body["authorize_url"].startswith(asgi_stack.authorize_url + "?appid=")


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/me", "/maybe"])
async def test_without_the_middleware_the_dependencies_say_so(path: str) -> None:
    async with browser(build_app(None)) as client:
        with pytest.raises(RuntimeError, match=r"WeChatAuthMiddleware is not installed"):
            await client.get(path)


@pytest.mark.anyio
async def test_the_dependencies_refuse_a_foreign_value_in_the_scope() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: CurrentWeChatUser) -> str:
        return user.openid

    async def plant(scope: Any, receive: Any, send: Any) -> None:
        scope["wechat_user"] = {"openid": "forged"}
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=plant)
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as client:
        with pytest.raises(RuntimeError, match=r"holds a dict, not a WeChatUser"):
            await client.get("/me")


def test_the_dependencies_are_plain_functions_of_the_connection() -> None:
    from starlette.requests import Request

    from wxauth_middleware.contrib.fastapi import LoginRequired

    user = WeChatUser(openid="o-1", nickname="小明🐼")
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "wechat_user": user}
    assert current_user(Request(scope)) is user
    assert require_user(Request(scope)) is user
    anonymous = Request({**scope, "wechat_user": None})
    assert current_user(anonymous) is None
    with pytest.raises(LoginRequired) as raised:
        require_user(anonymous)
    assert raised.value.status_code == 401


# -- websockets -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_websocket_route_gets_the_user(asgi_stack: Stack) -> None:
    asgi_stack.emulator(auto_approve=True)
    app = build_app(asgi_stack)
    async with browser(app) as client:
        await login(client, "/me")
        session = client.cookies["wxauth_session"]
        sent = await websocket_messages(app, "/ws", f"wxauth_session={session}")
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert json.loads(sent[1]["text"]) == {"nickname": "小明🐼"}


@pytest.mark.anyio
async def test_anonymous_websocket_is_closed_with_policy_violation(asgi_stack: Stack) -> None:
    asgi_stack.emulator()
    app = build_app(asgi_stack)
    async with lifespan(app):
        sent = await websocket_messages(app, "/ws")
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "WeChat login required"}]
