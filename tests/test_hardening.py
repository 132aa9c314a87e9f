"""Security properties found by an outside review, each through both adapters (`stack`):
what a login binds to, what the middleware's cookies may cost a browser, how often one state
may call WeChat, what ends a session."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware

from wxauth_middleware import (
    ConfigurationError,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
    WeChatUser,
)
from wxauth_middleware.cookies import Session, SessionCodec
from wxauth_middleware.emulator import DEFAULT_WEBSITE_APP_ID, DEFAULT_WEBSITE_APP_SECRET

from .redis_support import RedisServer
from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    Middleware,
    Stack,
    approve_consent,
    inner_app,
    inner_wsgi_app,
    location,
    login,
    middleware_options,
    shown,
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
        callback = await shown(client, location(approved))
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


# -- the login-state cookie: bound to its browser, bounded in size ------------------------------

HTTPS_SITE = "https://example.com"


def _plantable(response: httpx.Response) -> dict[str, str]:
    """The cookies a response set that a page on a sibling subdomain could plant in another
    browser (with Domain=<parent>): any but a __Host- one, which browsers refuse to take with
    a Domain."""
    planted = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if not name.startswith("__Host-"):
            planted[name] = rest.split(";", 1)[0]
    return planted


async def _stopped_at_callback(
    stack: Stack, middleware: Middleware, persona: str, origin: str
) -> tuple[str, dict[str, str]]:
    """An attacker's own login, stopped at the callback: its URL (code and state) and the
    cookies a sibling subdomain could plant from it."""
    async with stack.phone(middleware, origin=origin) as attacker:
        start = await attacker.get("/page")
        consent = await attacker.get(location(start))
        approved = await approve_consent(attacker, consent, persona=persona)
    return location(approved), _plantable(start)


async def test_on_https_a_sibling_subdomain_cannot_plant_a_login(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(public_url=HTTPS_SITE)
    callback_url, planted = await _stopped_at_callback(stack, middleware, "lily", HTTPS_SITE)
    async with stack.phone(middleware, origin=HTTPS_SITE) as victim:
        cookie = "; ".join(f"{name}={value}" for name, value in planted.items())
        answer = await victim.get(callback_url, headers={"cookie": cookie} if cookie else {})
        page = await victim.get("/page", headers=JSON)
    assert "wxauth_session=" not in str(answer.headers.get_list("set-cookie"))
    assert page.status_code == 401  # not logged in as the attacker


async def test_a_logged_in_browser_is_never_switched_by_a_login_it_did_not_start(
    stack: Stack,
) -> None:
    # Plain http: a sibling can plant any cookie, the login-state cookie included.
    stack.emulator()
    middleware = stack.middleware()
    callback_url, planted = await _stopped_at_callback(stack, middleware, "lily", APP_ORIGIN)
    async with stack.phone(middleware) as victim:
        me = (await login(victim, "/page", persona="xiaoming")).json()["user"]["openid"]
        victim.cookies.update(planted)
        answer = await victim.get(callback_url)
        page = await victim.get("/page", headers=JSON)
    assert answer.status_code == 302
    assert "wxauth_session=" not in str(answer.headers.get_list("set-cookie"))
    assert page.json()["user"]["openid"] == me


async def test_abandoned_logins_keep_the_cookies_small_and_two_tabs_still_log_in(
    stack: Stack,
) -> None:
    stack.emulator(auto_approve=True)
    sent: list[str] = []

    async def keep(request: httpx.Request) -> None:
        if request.url.path == "/wxauth/callback":
            sent.append(request.headers.get("cookie", ""))

    long_query = "q=" + "x" * 900
    async with stack.phone(stack.middleware()) as client:
        client.event_hooks["request"] = [keep]
        for n in range(8):  # pages left at WeChat's consent, with long URLs
            assert (await client.get(f"/page/{n}?{long_query}")).status_code == 302
        tab_a = await client.get(f"/a?{long_query}")
        tab_b = await client.get("/b?x=1")
        callback_a = location(await client.get(location(tab_a)))
        callback_b = location(await client.get(location(tab_b)))
        back_a = await client.get(callback_a)
        back_b = await client.get(callback_b)
        page = await client.get(location(back_b), headers=JSON)
    # The Cookie header each callback carries stays far below servers' 8 KB limits.
    assert max(len(header) for header in sent) < 2500
    assert location(back_a) == "/a"  # a return path too long to keep keeps its path
    assert location(back_b) == "/b?x=1"
    assert page.json()["user"] is not None


@pytest.mark.parametrize("name", ["__Host-wxauth", "__Secure-wxauth"])
async def test_prefixed_session_cookie_names_log_in(stack: Stack, name: str) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(public_url=HTTPS_SITE, session_cookie=name)
    set_cookies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        set_cookies.extend(response.headers.get_list("set-cookie"))

    async with stack.phone(middleware, origin=HTTPS_SITE) as client:
        client.event_hooks["response"] = [keep]
        page = await login(client, "/page")
    assert page.json()["user"] is not None
    assert set_cookies
    # What browsers check before they keep a prefixed cookie (RFC 6265bis 4.1.3).
    for cookie in set_cookies:
        attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
        if cookie.startswith(("__Host-", "__Secure-")):
            assert "secure" in attributes, cookie
        if cookie.startswith("__Host-"):
            assert "path=/" in attributes, cookie
            assert not any(a.startswith("domain=") for a in attributes), cookie


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"session_cookie": "__Host-wxauth"}, "only if it is Secure"),
        ({"session_cookie": "__Secure-wxauth", "public_url": "http://x.com"}, "Secure"),
        (
            {"session_cookie": "__Host-wxauth", "https_only": True, "cookie_domain": ".x.com"},
            "without a Domain",
        ),
        (
            {"session_cookie": "__Host-wxauth", "https_only": True, "cookie_path": "/wxauth"},
            "Path=/",
        ),
    ],
)
def test_prefixed_names_that_cannot_work_are_refused(options: dict[str, Any], message: str) -> None:
    given = middleware_options("http://127.0.0.1:9", **options)
    with pytest.raises(ConfigurationError, match=message):
        WeChatAuthMiddleware(inner_app(), **given)
    with pytest.raises(ConfigurationError, match=message):
        WeChatAuthWSGIMiddleware(inner_wsgi_app, **given)


# -- one exchange per state ---------------------------------------------------------------------


async def _forged_callbacks(stack: Stack, middlewares: list[Middleware]) -> int:
    """A login started, then 20 callbacks with made-up codes and its state cookie (spread over
    the instances): how many calls carrying the AppSecret reached WeChat."""
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(middlewares[0]) as attacker:
        start = await attacker.get("/page")
        state = dict(parse_qsl(urlsplit(location(start)).query))["state"]
        cookie = attacker.cookies["wxauth_session_login"]
    for n in range(20):
        async with stack.phone(middlewares[n % len(middlewares)]) as forger:
            forged = f"/wxauth/callback?code=made-up-{n}&state={state}"
            answer = await forger.get(forged, headers={"cookie": f"wxauth_session_login={cookie}"})
            assert answer.status_code in (302, 400), answer.text  # a restart, or refused
            assert "wxauth_session=" not in str(answer.headers.get_list("set-cookie"))
    calls = len([c for c in emulator.calls if c.path == "/sns/oauth2/access_token"])
    # A real login still goes through at once.
    async with stack.phone(middlewares[-1]) as phone:
        assert (await login(phone, "/page")).json()["user"] is not None
    return calls


async def test_a_state_buys_one_call_to_wechat(stack: Stack) -> None:
    assert await _forged_callbacks(stack, [stack.middleware()]) == 1


async def test_with_redis_a_state_buys_one_call_on_every_instance(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    instances = [
        stack.middleware(redis_url=redis_server.url, redis_prefix=redis_prefix) for _ in range(3)
    ]
    assert await _forged_callbacks(stack, instances) == 1


# -- a lost login-state cookie ------------------------------------------------------------------


async def test_a_lost_state_cookie_restarts_the_login_once_from_a_page(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/page")
        callback_url = location(await client.get(location(start)))
        client.cookies.clear()  # WeChat's webview dropped the cookie set on the redirect
        with caplog.at_level(logging.INFO, logger="wxauth_middleware"):
            restart = await client.get(callback_url)
        # A first-party page sets the cookie itself, then goes on to WeChat.
        assert restart.status_code == 200
        assert "wxauth_session_login=" in restart.headers["set-cookie"]
        authorize = restart.headers["refresh"].removeprefix("0;url=")
        assert authorize.startswith(stack.authorize_url + "?")
        assert f'content="0;url={html.escape(authorize)}"' in restart.text
        second_callback = location(await client.get(authorize))
        # Lost again: the error page, never a loop.
        kept = dict(client.cookies)
        client.cookies.clear()
        again = await shown(client, second_callback)
        assert again.status_code == 400
        client.cookies.update(kept)
        # With the cookie, the restarted login completes.
        done = await client.get(second_callback)
        page = await client.get(location(done), headers=JSON)
    assert page.json()["user"] is not None
    assert "login state cookie missing" in caplog.text
    # The code that came without a cookie was never used.
    codes = [c.param("code") for c in emulator.calls if c.path == "/sns/oauth2/access_token"]
    assert codes == [dict(parse_qsl(urlsplit(second_callback).query))["code"]]
