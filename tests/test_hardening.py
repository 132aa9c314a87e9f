"""Security properties found by an outside review, each through both adapters (`stack`):
what a login binds to, what the middleware's cookies may cost a browser, how often one state
may call WeChat, what ends a session."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from starlette.middleware.cors import CORSMiddleware

from wxauth_middleware import WeChatUser
from wxauth_middleware.cookies import Session, SessionCodec
from wxauth_middleware.emulator import DEFAULT_WEBSITE_APP_ID, DEFAULT_WEBSITE_APP_SECRET

from .redis_support import RedisServer
from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    Stack,
    approve_consent,
    inner_app,
    inner_wsgi_app,
    location,
    login,
)

pytestmark = pytest.mark.anyio

DAY = 24 * 3600
JSON = {"accept": "application/json"}
SAME_ORIGIN = {"sec-fetch-site": "same-origin"}


async def test_on_login_never_sees_a_snapshot_user(stack: Stack) -> None:
    seen: list[Any] = []
    stack.emulator()
    middleware = stack.middleware(scope="snsapi_userinfo", on_login=lambda u, r: seen.append(u))
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="snapshot")
        callback = await client.get(location(approved))
        assert callback.status_code == 200  # the interstitial, as before
        start = await client.get("/page")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="xiaoming")
        await client.get(location(approved))
    # The virtual identity is never handed to the hook; a real user still is.
    assert [user.is_snapshot_user for user in seen] == [False]


@pytest.mark.parametrize("policy", ["pass", "refuse", "qrconnect"])
@pytest.mark.parametrize("user_agent", [WECHAT_UA, CHROME_UA], ids=["wechat", "chrome"])
async def test_a_cors_preflight_reaches_the_app(stack: Stack, policy: str, user_agent: str) -> None:
    stack.emulator()
    cors = CORSMiddleware(inner_app(), allow_origins=["https://other.example"], allow_methods=["*"])
    middleware = stack.around(
        cors,
        inner_wsgi_app,
        other_browsers=policy,
        website_app_id=DEFAULT_WEBSITE_APP_ID,
        website_app_secret=DEFAULT_WEBSITE_APP_SECRET,
    )
    preflight = {
        "origin": "https://other.example",
        "access-control-request-method": "PUT",
        "accept": "*/*",
    }
    async with stack.phone(middleware, user_agent=user_agent) as client:
        answer = await client.options("/api/items", headers=preflight)
        other = await client.options("/api/items", headers={"accept": "application/json"})
    # Browsers send no cookies on a preflight: it is the app's (its CORS layer's) to answer.
    if stack.kind == "asgi":
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://other.example"
    else:
        assert answer.headers["x-app"] == "reached"
    assert "set-cookie" not in answer.headers
    # An OPTIONS that is not a preflight is a request like any other.
    if user_agent == WECHAT_UA:
        assert other.status_code == 401


async def test_a_browser_session_cookie_still_has_a_bounded_signature_age(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(max_age=None)
    async with stack.phone(middleware) as client:
        page = await login(client, "/page", persona="xiaoming")
        user = page.json()["user"]
        (value,) = [c.value for c in client.cookies.jar if c.name == "wxauth_session"]
        client.cookies.clear()
        fresh = await client.get("/page", headers={**JSON, "cookie": f"wxauth_session={value}"})
        # The same session, signed 31 days ago (a cookie copied a month ago).
        old = SessionCodec((SECRET_KEY.encode(),), None, clock=lambda: time.time() - 31 * DAY)
        session = Session(WeChatUser(openid=user["openid"], scope=user["scope"]))
        stale = old.encode(session)
        aged = await client.get("/page", headers={**JSON, "cookie": f"wxauth_session={stale}"})
    assert fresh.json()["user"]["openid"] == user["openid"]
    assert aged.status_code == 401  # no session: the login is asked for again


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a link, an image, a prefetch
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # a sibling subdomain's page
        {"origin": "https://evil.example"},
        {"origin": "null"},
    ],
    ids=["no-evidence", "cross-site", "same-site", "foreign-origin", "null-origin"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_logout_takes_a_same_origin_post(
    stack: Stack, method: str, headers: dict[str, str]
) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        await login(client, "/page", persona="xiaoming")
        refused = await client.request(method, "/wxauth/logout?next=/bye", headers=headers)
        still = await client.get("/page", headers=JSON)
        logout = await client.post(
            "/wxauth/logout?next=/bye", headers={"origin": APP_ORIGIN, **SAME_ORIGIN}
        )
        after = await client.get("/page", headers=JSON)
    # Anything but a same-origin POST leaves the session, and offers the logout button.
    assert refused.status_code == (200 if method == "GET" else 403)
    assert "set-cookie" not in refused.headers
    assert '<form method="post" action="/wxauth/logout?next=%2Fbye">' in refused.text
    assert "退出登录" in refused.text
    assert still.json()["user"]["openid"]
    assert logout.status_code == 302
    assert location(logout) == "/bye"
    assert after.status_code == 401


async def test_logout_by_origin_alone_for_browsers_without_fetch_metadata(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        await login(client, "/page", persona="xiaoming")
        logout = await client.post("/wxauth/logout", headers={"origin": APP_ORIGIN})
        after = await client.get("/page", headers=JSON)
    assert location(logout) == "/"
    assert after.status_code == 401


async def test_a_cancelled_exchange_releases_its_claim(
    asgi_stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    emulator = asgi_stack.emulator(auto_approve=True)
    emulator.inject("access_token", latency=1.0)  # the first exchange waits on WeChat
    middleware = asgi_stack.middleware(
        redis_url=redis_server.url, redis_prefix=redis_prefix, login_timeout=4
    )
    async with asgi_stack.phone(middleware) as phone:
        start = await phone.get("/page")
        callback_url = location(await phone.get(location(start)))
        first = asyncio.ensure_future(phone.get(callback_url))
        # Until the exchange is under way (the emulator has the call): no event to wait on.
        while not [c for c in emulator.calls if c.path == "/sns/oauth2/access_token"]:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        first.cancel()  # the browser went away: the server cancels the request
        with contextlib.suppress(asyncio.CancelledError):
            await first
        # The same callback again (a reload) gets WeChat's own answer, not the wait for a
        # claim nobody holds any more (a 504 at login_timeout).
        retry = await phone.get(callback_url)
    # Back to the page, or (if WeChat had spent the code before the cancel) the one restart.
    assert retry.status_code == 302, retry.text
    assert location(retry) == "/page" or location(retry).startswith(asgi_stack.authorize_url)
