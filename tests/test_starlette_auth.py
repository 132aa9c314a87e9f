"""Starlette's authentication (`request.user`, `request.auth`, `@requires`) fed by the
middleware, through a real login against the emulator server, over HTTP and websockets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import BaseUser, requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wxauth_middleware import WeChatAuthMiddleware, WeChatUser
from wxauth_middleware.contrib.starlette import (
    WeChatAuthBackend,
    WeChatStarletteUser,
    wechat_scopes,
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

pytestmark = pytest.mark.anyio

JSON = {"accept": "application/json"}
USERINFO_SCOPES = ["authenticated", "wechat", "snsapi_base", "snsapi_userinfo"]


def _who(conn: HTTPConnection) -> dict[str, Any]:
    user = conn.user
    seen: dict[str, Any] = {
        "authenticated": user.is_authenticated,
        "display_name": user.display_name,
        "scopes": conn.auth.scopes,
    }
    if isinstance(user, WeChatStarletteUser):
        seen["identity"] = user.identity
        seen["wechat_nickname"] = user.wechat.nickname
    return seen


async def home(request: Request) -> JSONResponse:
    return JSONResponse(_who(request))


@requires("authenticated")
async def private(request: Request) -> JSONResponse:
    return JSONResponse(_who(request))


@requires("authenticated", redirect="home")
async def private_or_home(request: Request) -> JSONResponse:
    return JSONResponse(_who(request))


@requires("snsapi_userinfo")
async def profile(request: Request) -> JSONResponse:
    return JSONResponse(_who(request))


@requires("authenticated")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(_who(websocket))
    await websocket.close()


ROUTES = [
    Route("/", home, name="home"),
    Route("/private", private),
    Route("/private-or-home", private_or_home),
    Route("/profile", profile),
    WebSocketRoute("/ws", ws),
]


def build_app(stack: Stack, order: str = "middleware_list", **options: Any) -> Starlette:
    """A fresh Starlette app with both middlewares, installed in one of the documented ways."""
    options.setdefault("scope", "snsapi_userinfo")
    wechat = Middleware(WeChatAuthMiddleware, **middleware_options(stack.wechat_url, **options))
    auth = Middleware(AuthenticationMiddleware, backend=WeChatAuthBackend())
    if order == "middleware_list":  # the first listed is the outermost
        return Starlette(routes=ROUTES, middleware=[wechat, auth])
    if order == "add_middleware":  # the last added is the outermost
        app = Starlette(routes=ROUTES)
        app.add_middleware(auth.cls, *auth.args, **auth.kwargs)
        app.add_middleware(wechat.cls, *wechat.args, **wechat.kwargs)
        return app
    assert order == "wrong"
    return Starlette(routes=ROUTES, middleware=[auth, wechat])


# -- anonymous ---------------------------------------------------------------------------------


async def test_requires_refuses_an_anonymous_desktop(asgi_stack: Stack) -> None:
    emulator = asgi_stack.emulator()
    async with browser(build_app(asgi_stack), user_agent=CHROME_UA) as client:
        forbidden = await client.get("/private")
        redirected = await client.get("/private-or-home?x=1")
        public = await client.get("/")
    assert forbidden.status_code == 403
    assert redirected.status_code == 303
    assert redirected.headers["location"] == (
        f"{APP_ORIGIN}/?next=http%3A%2F%2Flocalhost%3A8000%2Fprivate-or-home%3Fx%3D1"
    )
    assert public.json() == {"authenticated": False, "display_name": "", "scopes": []}
    assert emulator.calls == []


async def test_a_wechat_api_call_without_session_gets_the_flat_401(asgi_stack: Stack) -> None:
    # The one 401 body of every framework: {"error": "login_required", "message": ...} at the
    # top level, as the FastAPI, Flask and Django helpers answer it (plus where to log in).
    asgi_stack.emulator()
    async with browser(build_app(asgi_stack)) as client:
        refused = await client.get("/private", headers={"accept": "application/json"})
    assert refused.status_code == 401
    body = refused.json()
    assert (body["error"], type(body["message"])) == ("login_required", str)
    assert "detail" not in body
    assert body["authorize_url"].startswith(asgi_stack.authorize_url + "?appid=")


# -- logged in ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["middleware_list", "add_middleware"])
async def test_wechat_login_makes_request_user(order: str, asgi_stack: Stack) -> None:
    emulator = asgi_stack.emulator(auto_approve=True)
    openid = emulator.personas[0].openid_for(DEFAULT_APP_ID)
    async with browser(build_app(asgi_stack, order)) as client:
        page = await login(client, "/private")
        userinfo = await client.get("/profile", headers=JSON)
    assert page.status_code == 200
    assert page.json() == {
        "authenticated": True,
        "display_name": "小明🐼",
        "scopes": USERINFO_SCOPES,
        "identity": openid,
        "wechat_nickname": "小明🐼",
    }
    assert userinfo.status_code == 200


async def test_identity_is_the_unionid_with_identity_unionid(asgi_stack: Stack) -> None:
    emulator = asgi_stack.emulator(auto_approve=True)
    persona = emulator.personas[0]
    assert persona.unionid is not None
    async with browser(build_app(asgi_stack, identity="unionid")) as client:
        page = await login(client, "/private")
    assert page.status_code == 200
    assert page.json()["identity"] == persona.unionid != persona.openid_for(DEFAULT_APP_ID)


async def test_base_login_shows_the_openid_and_lacks_the_userinfo_scope(
    asgi_stack: Stack,
) -> None:
    emulator = asgi_stack.emulator(auto_approve=True)
    openid = emulator.personas[0].openid_for(DEFAULT_APP_ID)
    async with browser(build_app(asgi_stack, scope="snsapi_base")) as client:
        page = await login(client, "/private")
        userinfo = await client.get("/profile", headers=JSON)
    assert page.json()["display_name"] == openid
    assert page.json()["scopes"] == ["authenticated", "wechat", "snsapi_base"]
    assert userinfo.status_code == 403


async def test_snapshot_user_is_marked_in_the_scopes(asgi_stack: Stack) -> None:
    asgi_stack.emulator()
    async with browser(build_app(asgi_stack, snapshot_users="app")) as client:
        page = await login(client, "/private", persona="snapshot")
    assert page.json()["display_name"] == "微信用户"
    assert page.json()["scopes"] == [*USERINFO_SCOPES, "wechat_snapshot"]


async def test_session_from_the_phone_authenticates_a_desktop(asgi_stack: Stack) -> None:
    asgi_stack.emulator(auto_approve=True)
    app = build_app(asgi_stack)
    async with browser(app) as phone:
        await login(phone, "/")
        session = phone.cookies["wxauth_session"]
    async with browser(app, user_agent=CHROME_UA) as desktop:
        desktop.cookies.set("wxauth_session", session)
        response = await desktop.get("/private", headers=JSON)
    assert response.status_code == 200
    assert response.json()["display_name"] == "小明🐼"


# -- websockets --------------------------------------------------------------------------------


async def test_websocket_sees_websocket_user(asgi_stack: Stack) -> None:
    asgi_stack.emulator(auto_approve=True)
    app = build_app(asgi_stack)
    async with browser(app) as client:
        await login(client, "/")
        session = client.cookies["wxauth_session"]
        sent = await websocket_messages(app, "/ws", f"other=1; wxauth_session={session}")
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    seen = json.loads(sent[1]["text"])
    assert seen["display_name"] == "小明🐼"
    assert seen["scopes"] == USERINFO_SCOPES


async def test_requires_closes_an_anonymous_websocket(asgi_stack: Stack) -> None:
    asgi_stack.emulator()
    app = build_app(asgi_stack)
    async with lifespan(app):
        sent = await websocket_messages(app, "/ws")
    assert [message["type"] for message in sent] == ["websocket.close"]


# -- misuse ------------------------------------------------------------------------------------


async def test_wrong_middleware_order_is_an_error_that_says_so(asgi_stack: Stack) -> None:
    asgi_stack.emulator()
    async with browser(build_app(asgi_stack, "wrong"), user_agent=CHROME_UA) as client:
        with pytest.raises(RuntimeError, match=r"WeChatAuthMiddleware must wrap Authentication"):
            await client.get("/")


async def test_a_foreign_value_in_the_scope_is_refused() -> None:
    app = AuthenticationMiddleware(Starlette(routes=ROUTES), backend=WeChatAuthBackend())

    async def plant(scope: Any, receive: Any, send: Any) -> None:
        scope["wechat_user"] = "o-forged"
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=plant)
    async with httpx.AsyncClient(transport=transport, base_url=APP_ORIGIN) as client:
        with pytest.raises(RuntimeError, match=r"holds a str, not a WeChatUser"):
            await client.get("/")


def test_starlette_user_wraps_the_wechat_user() -> None:
    wechat = WeChatUser(openid="o-1", nickname="小明🐼", scope="snsapi_userinfo")
    user = WeChatStarletteUser(wechat)
    assert isinstance(user, BaseUser)
    assert (user.is_authenticated, user.display_name, user.identity) == (True, "小明🐼", "o-1")
    assert user.wechat is wechat
    assert user == WeChatStarletteUser(
        WeChatUser(openid="o-1", nickname="小明🐼", scope=wechat.scope)
    )
    assert user != WeChatStarletteUser(WeChatUser(openid="o-2"))
    assert len({user, WeChatStarletteUser(wechat)}) == 1
    assert repr(user) == f"WeChatStarletteUser({wechat!r})"
    assert WeChatStarletteUser(WeChatUser(openid="o-3", nickname="")).display_name == "o-3"
    by_unionid = WeChatUser(openid="o-4", unionid="u-4", identity_key="unionid")
    assert WeChatStarletteUser(by_unionid).identity == "u-4"
    assert wechat_scopes(wechat) == USERINFO_SCOPES
