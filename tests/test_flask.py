"""Flask behind WeChatAuthWSGIMiddleware: the login end to end, and contrib.flask's helpers.

The site is a real Flask app whose `wsgi_app` is wrapped as the README says; "WeChat" is the
emulator served over real HTTP; the phone calls the app in a worker thread, as a threaded WSGI
server would, through wsgiref's PEP 3333 validator.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from wsgiref.validate import validator

import httpx
import pytest
from flask import Flask, render_template_string, url_for
from markupsafe import escape
from werkzeug.exceptions import NotFound, Unauthorized
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from wxauth_middleware import WeChatAuthWSGIMiddleware, WeChatUser
from wxauth_middleware.contrib import LOGIN_REQUIRED_MESSAGE
from wxauth_middleware.contrib.flask import (
    current_wechat_user,
    login_required,
    require_wechat_user,
)
from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    Persona,
)

from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    Stack,
    ThreadedWSGITransport,
    location,
    login,
)

pytestmark = pytest.mark.anyio

# A nickname is user input: this one would run a script if a page forgot to escape it.
MALLORY = Persona(key="mallory", nickname='<script>alert("x")</script> & 小明', has_unionid=True)

PAGE = """<!doctype html>
<title>flask</title>
<p>user: <b id=nickname>{{ user.nickname if user else "anonymous" }}</b></p>
<p>path: <span id=path>{{ request.script_root }}|{{ request.full_path }}</span></p>
<p><a id=me href="{{ url_for('me') }}">me</a></p>
"""


def flask_app() -> Flask:
    """The site: a page rendering the nickname, and login_required JSON endpoints."""
    app = Flask(__name__)
    app.testing = True  # exceptions propagate to the test client

    @app.get("/page")
    def page() -> str:
        return render_template_string(PAGE, user=current_wechat_user())

    @app.get("/api/me")
    @login_required
    def me() -> dict[str, Any]:
        user = require_wechat_user()
        assert isinstance(user, WeChatUser)
        return {"openid": user.openid, "nickname": user.nickname, "link": url_for("me")}

    @app.get("/api/items/<int:item>")
    @login_required
    async def item(item: int) -> dict[str, Any]:
        return {"item": item, "openid": require_wechat_user().openid}

    return app


def wrap(stack: Stack, app: Flask, **options: Any) -> WeChatAuthWSGIMiddleware:
    """Mount the middleware the documented way (`app.wsgi_app = ...`); returns it."""
    options.setdefault("app_id", DEFAULT_APP_ID)
    options.setdefault("app_secret", DEFAULT_APP_SECRET)
    options.setdefault("secret_key", SECRET_KEY)
    options.setdefault("scope", "snsapi_userinfo")
    options.setdefault("authorize_url", stack.authorize_url)
    options.setdefault("api_base_url", stack.wechat_url)
    middleware = WeChatAuthWSGIMiddleware(app.wsgi_app, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    return middleware


@asynccontextmanager
async def phone(app: Any, *, user_agent: str = WECHAT_UA) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: the WSGI `app` at APP_ORIGIN in-process, WeChat over the network."""
    async with httpx.AsyncClient(
        mounts={APP_ORIGIN: ThreadedWSGITransport(validator(app))},
        base_url=APP_ORIGIN,
        headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
    ) as client:
        yield client


@pytest.fixture
def wechat(wechat_server: tuple[Any, str]) -> Stack:
    stack = Stack("wsgi", *wechat_server)
    stack.emulator(auto_approve=True, personas=(MALLORY, *DEFAULT_PERSONAS))
    return stack


async def test_login_renders_the_nickname_escaped_and_returns_to_the_page(wechat: Stack) -> None:
    app = flask_app()
    middleware = wrap(wechat, app)
    try:
        async with phone(app) as client:
            page = await login(client, "/page?x=1")
            me = await client.get("/api/me")
    finally:
        middleware.close()
    assert page.status_code == 200
    assert (page.url.path, page.url.query) == ("/page", b"x=1")
    assert f"<b id=nickname>{escape(MALLORY.nickname)}</b>" in page.text
    assert "<script>" not in page.text
    assert "<span id=path>|/page?x=1</span>" in page.text
    assert me.status_code == 200
    assert me.json() == {
        "openid": MALLORY.openid_for(DEFAULT_APP_ID),
        "nickname": MALLORY.nickname,
        "link": "/api/me",
    }


async def test_login_required_lets_the_user_into_sync_and_async_views(wechat: Stack) -> None:
    app = flask_app()
    middleware = wrap(wechat, app)
    try:
        async with phone(app) as client:
            await login(client, "/page")
            sync_view = await client.get("/api/me", headers={"accept": "application/json"})
            async_view = await client.get("/api/items/7", headers={"accept": "application/json"})
    finally:
        middleware.close()
    openid = MALLORY.openid_for(DEFAULT_APP_ID)
    assert (sync_view.status_code, sync_view.json()["openid"]) == (200, openid)
    assert (async_view.status_code, async_view.json()) == (200, {"item": 7, "openid": openid})


@pytest.mark.parametrize("path", ["/api/me", "/api/items/7"])
async def test_login_required_answers_an_anonymous_desktop_with_401_json(
    wechat: Stack, path: str
) -> None:
    app = flask_app()
    middleware = wrap(wechat, app)
    try:
        async with phone(app, user_agent=CHROME_UA) as client:
            page = await client.get("/page")
            refused = await client.get(path, headers={"accept": "application/json"})
    finally:
        middleware.close()
    # The page is public: the desktop browser sees it anonymously.
    assert page.status_code == 200
    assert "<b id=nickname>anonymous</b>" in page.text
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["cache-control"] == "no-store"
    assert refused.json() == {  # the message says what to do
        "error": "login_required",
        "message": "Log in with WeChat: open this page inside the WeChat app.",
    }
    assert wechat.switchboard.emulator is not None
    assert wechat.switchboard.emulator.calls == []


async def test_a_wechat_api_call_without_session_gets_the_middlewares_401(wechat: Stack) -> None:
    app = flask_app()
    middleware = wrap(wechat, app)
    try:
        async with phone(app) as client:
            refused = await client.get("/api/me", headers={"accept": "application/json"})
    finally:
        middleware.close()
    # Same error code as login_required's, plus where to send the page to log in.
    assert refused.status_code == 401
    body = refused.json()
    assert body["error"] == "login_required"
    assert body["authorize_url"].startswith(wechat.authorize_url + "?appid=")


async def test_an_errorhandler_for_401_can_render_the_refusal(wechat: Stack) -> None:
    app = flask_app()

    @app.errorhandler(401)
    def unauthorized(error: Unauthorized) -> tuple[str, int]:
        return f"please log in: {error.description}", 401

    middleware = wrap(wechat, app)
    try:
        async with phone(app, user_agent=CHROME_UA) as client:
            refused = await client.get("/api/me")
    finally:
        middleware.close()
    assert refused.status_code == 401
    assert refused.text == f"please log in: {LOGIN_REQUIRED_MESSAGE}"


async def test_mounted_under_a_prefix_it_logs_in_and_returns_to_the_prefixed_page(
    wechat: Stack,
) -> None:
    shop = flask_app()
    # The middleware sits inside the mount: it sees SCRIPT_NAME, so the callback path
    # includes the prefix.
    middleware = wrap(wechat, shop, callback_path="/shop/wxauth/callback")
    site = DispatcherMiddleware(NotFound(), {"/shop": shop})
    try:
        async with phone(site) as client:
            start = await client.get("/shop/page?x=1")
            page = await login(client, "/shop/page?x=1")
            me = await client.get("/shop/api/me")
            outside = await client.get("/page")
    finally:
        middleware.close()
    redirect_uri = dict(parse_qsl(urlsplit(location(start)).query))["redirect_uri"]
    assert redirect_uri == f"{APP_ORIGIN}/shop/wxauth/callback"
    assert page.status_code == 200
    assert (page.url.path, page.url.query) == ("/shop/page", b"x=1")
    assert f"<b id=nickname>{escape(MALLORY.nickname)}</b>" in page.text
    # Flask sees the mount: script_root /shop, its own path /page, links with the prefix.
    assert "<span id=path>/shop|/page?x=1</span>" in page.text
    assert '<a id=me href="/shop/api/me">' in page.text
    assert me.json()["link"] == "/shop/api/me"
    assert outside.status_code == 404


@pytest.mark.parametrize("path", ["/page", "/api/me", "/api/items/7"])
def test_without_the_middleware_the_helpers_raise_runtime_error(path: str) -> None:
    client = flask_app().test_client()
    with pytest.raises(RuntimeError, match=r"WeChatAuthWSGIMiddleware is not installed"):
        client.get(path)


def test_a_foreign_value_in_the_environ_is_refused() -> None:
    client = flask_app().test_client()
    with pytest.raises(RuntimeError, match=r"holds a str, not a WeChatUser"):
        client.get("/page", environ_base={"wechat_user": "o-forged"})


def test_outside_a_request_flask_says_so() -> None:
    with pytest.raises(RuntimeError, match="outside of request context"):
        current_wechat_user()


def test_login_required_keeps_the_views_name_and_signature() -> None:
    app = flask_app()
    view = app.view_functions["item"]
    assert view.__name__ == "item"
    assert list(inspect.signature(view).parameters) == ["item"]
    assert inspect.iscoroutinefunction(view)
    assert not inspect.iscoroutinefunction(app.view_functions["me"])
