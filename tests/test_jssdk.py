"""The JS-SDK's paths (jssdk_path and its script), through both adapters: against a scripted
WeChat for its answers and failures, and end to end against the emulator."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.validate import validator

import httpx
import pytest

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware.credentials import jssdk_signature
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS
from wxauth_middleware.jssdk import _url_param

from .credentials_support import (
    APP_ID,
    EXAMPLE_TICKET,
    Middleware,
    ScriptedWeChat,
    burst,
    call,
    middleware,
)
from .redis_support import Deployment
from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    Stack,
    ThreadedWSGITransport,
    inner_app,
    login,
    make_emulator,
    middleware_options,
)

pytestmark = pytest.mark.anyio
SITE = "http://localhost:8000"
SIGNED_KEYS = {"appId", "timestamp", "nonceStr", "signature"}


@asynccontextmanager
async def site(app: Middleware, user_agent: str = WECHAT_UA) -> AsyncIterator[httpx.AsyncClient]:
    transport: httpx.AsyncBaseTransport
    if isinstance(app, WeChatAuthMiddleware):
        transport = httpx.ASGITransport(app=app)
    else:
        transport = ThreadedWSGITransport(validator(app))
    async with httpx.AsyncClient(
        transport=transport, base_url=SITE, headers={"user-agent": user_agent}
    ) as client:
        yield client
    if isinstance(app, WeChatAuthMiddleware):
        await app.aclose()
    else:
        app.close()


def no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("user_agent", [WECHAT_UA, CHROME_UA])
async def test_signs_a_page_of_the_site_for_any_browser(kind: str, user_agent: str) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat, other_browsers="refuse")
    async with site(app, user_agent) as client:
        page = f"{SITE}/shop/item?id=7&utm=x"
        response = await client.get("/wxauth/jssdk", params={"url": page + "#reviews"})
    assert response.status_code == 200, response.text
    no_store(response)
    signed = response.json()
    assert set(signed) == SIGNED_KEYS
    assert signed["appId"] == APP_ID
    assert isinstance(signed["timestamp"], int)
    assert signed["signature"] == jssdk_signature(
        EXAMPLE_TICKET, signed["nonceStr"], signed["timestamp"], page
    )
    assert "set-cookie" not in response.headers
    assert wechat.count("stable_token") == 1


@pytest.mark.parametrize(
    ("query", "public_url"),
    [
        ({}, None),
        ({"url": ""}, None),
        ({"url": "/shop"}, None),
        ({"url": "https://evil.example/"}, None),
        ({"url": "https://localhost:8000/"}, None),  # another scheme: another origin
        ({"url": "http://localhost:8001/"}, None),
        ({"url": f"{SITE}/shop"}, "https://www.example.com"),
        ({"url": "javascript:alert(1)//http://localhost:8000/"}, None),
    ],
)
async def test_refuses_missing_and_off_site_urls(
    kind: str, query: dict[str, str], public_url: str | None
) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat, public_url=public_url)
    async with site(app) as client:
        response = await client.get("/wxauth/jssdk", params=query)
    assert response.status_code == 400, response.text
    no_store(response)
    assert response.json()["error"]
    assert sum(wechat.calls.values()) == 0


async def test_with_public_url_signs_its_pages(kind: str) -> None:
    app = middleware(kind, ScriptedWeChat(), public_url="https://www.example.com")
    async with site(app) as client:
        response = await client.get(
            "/wxauth/jssdk", params={"url": "https://www.example.com/a?b=c"}
        )
    assert response.status_code == 200, response.text
    assert set(response.json()) == SIGNED_KEYS


def _failing(how: str) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        if how == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if how == "refused":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"errcode": -1, "errmsg": "system error, rid: 1-2-3"})

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("how", "status", "error"),
    [
        ("timeout", 504, "upstream_timeout"),
        ("refused", 502, "upstream_unavailable"),
        ("busy", 503, "wechat_error"),
    ],
)
async def test_wechat_failing_gets_the_logins_json_errors(
    kind: str, how: str, status: int, error: str
) -> None:
    app = middleware(kind, ScriptedWeChat(), transport=_failing(how), retries=0)
    async with site(app) as client:
        response = await client.get("/wxauth/jssdk", params={"url": f"{SITE}/"})
    assert response.status_code == status, response.text
    no_store(response)
    assert response.json()["error"] == error


async def test_other_methods_are_refused(kind: str) -> None:
    app = middleware(kind, ScriptedWeChat())
    async with site(app) as client:
        response = await client.post("/wxauth/jssdk", params={"url": f"{SITE}/"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("options", "sdk"),
    [
        ({}, "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"),
        (
            {"authorize_url": "http://127.0.0.1:8400/connect/oauth2/authorize"},
            "http://127.0.0.1:8400/open/js/jweixin-1.6.0.js",
        ),
        (
            {"authorize_url": "http://127.0.0.1:8000/_wechat/connect/oauth2/authorize"},
            "http://127.0.0.1:8000/_wechat/open/js/jweixin-1.6.0.js",
        ),
        (
            {"jssdk_script_url": "https://cdn.example.com/jweixin.js"},
            "https://cdn.example.com/jweixin.js",
        ),
    ],
)
async def test_the_script_loads_the_sdk_the_configuration_names(
    kind: str, options: dict[str, str], sdk: str
) -> None:
    app = middleware(kind, ScriptedWeChat(), jssdk_path="/js/sign", **options)
    async with site(app, CHROME_UA) as client:
        response = await client.get("/js/sign.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert f"var SDK_URL = {json.dumps(sdk)};" in response.text
    assert 'var SIGN_PATH = "/js/sign";' in response.text
    assert "__WXAUTH" not in response.text


async def test_the_script_is_fetched_once_per_release(kind: str) -> None:
    """A browser revalidating the script (If-None-Match, after max-age) gets a 304 without it,
    as long as the script is the same; a changed script has another validator."""
    app = middleware(kind, ScriptedWeChat())
    async with site(app, CHROME_UA) as client:
        first = await client.get("/wxauth/jssdk.js")
        etag = first.headers["etag"]
        again = [
            await client.get("/wxauth/jssdk.js", headers={"if-none-match": tag})
            for tag in (etag, f"W/{etag}", f'"other", {etag}', "*")
        ]
        head = await client.head("/wxauth/jssdk.js", headers={"if-none-match": etag})
        stale = await client.get("/wxauth/jssdk.js", headers={"if-none-match": '"other"'})
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=300"
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    for response in [*again, head]:
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == first.headers["cache-control"]
        # RFC 9110: a 304's Content-Length could only be the script's length; none is sent.
        assert "content-length" not in response.headers
    assert stale.status_code == 200
    assert stale.content == first.content
    assert stale.headers["etag"] == etag
    other = middleware(kind, ScriptedWeChat(), jssdk_script_url="https://cdn.example.com/sdk.js")
    async with site(other, CHROME_UA) as client:
        changed = await client.get("/wxauth/jssdk.js", headers={"if-none-match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


@pytest.mark.parametrize(
    "query",
    [
        "url=http%3A%2F%2Flocalhost%3A8000%2Fa%3Fb%3D1%26c%3D2",
        "url=http://localhost:8000/a+b",
        "url=http://localhost:8000/%E5%95%86%E5%BA%97",
        "url=http://localhost:8000/%ZZ",
        "url=",
        "url",
        "",
        "x=1&url=http://localhost:8000/",
        "url=http://localhost:8000/1&url=http://localhost:8000/2",
        "url=http://localhost:8000/;a=1",
    ],
)
def test_the_url_parameter_is_read_as_parse_qsl_reads_it(query: str) -> None:
    assert _url_param(query) == dict(parse_qsl(query, keep_blank_values=True)).get("url", "")


async def test_jssdk_path_none_turns_both_paths_off(kind: str) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat, jssdk_path=None)
    async with site(app, CHROME_UA) as client:
        signed = await client.get("/wxauth/jssdk", params={"url": f"{SITE}/"})
        script = await client.get("/wxauth/jssdk.js")
    assert signed.headers["x-app"] == "reached"
    assert script.headers["x-app"] == "reached"
    assert sum(wechat.calls.values()) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jssdk_path": "wxauth/jssdk"}, "jssdk_path must be a URL path"),
        ({"jssdk_path": "/wxauth/login"}, "must be different paths"),
        ({"jssdk_path": "/wxauth/callback"}, "must be different paths"),
        ({"jssdk_path": "/wx", "logout_path": "/wx.js"}, "must be different paths"),
        ({"jssdk_script_url": "//res.wx.qq.com/x.js"}, "jssdk_script_url must be an absolute"),
    ],
)
async def test_bad_jssdk_options_are_refused(options: dict[str, str], message: str) -> None:
    from wxauth_middleware import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        middleware("asgi", ScriptedWeChat(), **options)


# -- end to end, against the emulator ------------------------------------------------------


def _verify(stack: Stack, signed: dict[str, Any], url: str) -> dict[str, Any]:
    """What WeChat (the emulator's wx.config check) says of a signed configuration."""
    query = {**{k: str(v) for k, v in signed.items()}, "url": url}
    with httpx.Client(base_url=stack.wechat_url, trust_env=False) as client:
        verdict: dict[str, Any] = client.get("/_emulator/jsapi/verify", params=query).json()
    return verdict


async def test_a_logged_in_page_gets_a_signature_wechat_accepts(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    app = stack.middleware()
    async with stack.phone(app) as phone:
        assert (await login(phone, "/shop")).json()["user"] is not None
        page = f"{APP_ORIGIN}/shop?item=7"
        response = await phone.get("/wxauth/jssdk", params={"url": page})
        again = await phone.get("/wxauth/jssdk", params={"url": f"{APP_ORIGIN}/other"})
    assert response.status_code == 200, response.text
    no_store(response)
    signed = response.json()
    assert set(signed) == SIGNED_KEYS
    assert _verify(stack, signed, page) == {"ok": True, "errMsg": "config:ok"}
    assert _verify(stack, signed, page + "&x=1")["errMsg"] == "config:invalid signature"
    assert _verify(stack, again.json(), f"{APP_ORIGIN}/other")["ok"] is True
    assert emulator.call_count("/cgi-bin/stable_token") == 1
    assert emulator.call_count("/cgi-bin/ticket/getticket") == 1
    assert emulator.call_count("/cgi-bin/token") == 0


def test_a_burst_of_first_calls_makes_one_call_to_the_emulator(stack: Stack) -> None:
    emulator = stack.emulator()
    emulator.inject("*", latency=0.05, times=None)  # the callers overlap
    app = stack.middleware()
    signed = burst(app, "jssdk_config", 50, f"{APP_ORIGIN}/page")
    counts = {
        path: emulator.call_count(path)
        for path in ("/cgi-bin/stable_token", "/cgi-bin/ticket/getticket")
    }
    print(f"{stack.kind}: 50 concurrent first calls against the emulator -> {counts}")
    assert len({s["signature"] for s in signed}) >= 1
    assert all(_verify(stack, s, f"{APP_ORIGIN}/page")["ok"] for s in signed[:3])
    assert counts == {"/cgi-bin/stable_token": 1, "/cgi-bin/ticket/getticket": 1}


def test_two_instances_sharing_redis_make_one_call_to_the_emulator(
    stack: Stack, redis_store: Deployment, redis_prefix: str
) -> None:
    """On one Redis server, behind Sentinel, and on a Redis Cluster."""
    emulator = stack.emulator()
    emulator.inject("*", latency=0.1, times=None)
    options = {"redis_url": redis_store.url, "redis_prefix": redis_prefix}
    first, second = stack.middleware(**options), stack.middleware(**options)
    results: list[Any] = []
    other = threading.Thread(target=lambda: results.extend(burst(first, "access_token", 25)))
    other.start()
    results.extend(burst(second, "access_token", 25))
    other.join(30)
    assert len(results) == 50
    assert len(set(results)) == 1
    print(
        f"{stack.kind}: two instances x 25 callers, one Redis -> stable_token calls:",
        emulator.call_count("/cgi-bin/stable_token"),
    )
    assert emulator.call_count("/cgi-bin/stable_token") == 1


FOLLOWER = DEFAULT_PERSONAS[0]
STRANGER = DEFAULT_PERSONAS[1]


def test_follows_survives_a_token_invalidated_under_its_feet(stack: Stack) -> None:
    emulator = stack.emulator()
    app = stack.middleware()
    assert call(app, "follows", FOLLOWER.openid_for(DEFAULT_APP_ID)) is True
    emulator.invalidate_account_tokens()
    assert call(app, "follows", STRANGER.openid_for(DEFAULT_APP_ID)) is False
    assert emulator.call_count("/cgi-bin/stable_token") == 2
    assert emulator.call_count("/cgi-bin/user/info") == 3


def test_another_clients_force_refresh_costs_one_refresh(stack: Stack) -> None:
    emulator = stack.emulator()
    app = stack.middleware()
    before = call(app, "access_token")
    with httpx.Client(base_url=stack.wechat_url, trust_env=False) as other_client:
        forced = other_client.post(
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": DEFAULT_APP_ID,
                "secret": DEFAULT_APP_SECRET,
                "force_refresh": True,
            },
        ).json()["access_token"]
    assert forced != before
    assert call(app, "follows", FOLLOWER.openid_for(DEFAULT_APP_ID)) is True
    assert call(app, "access_token") == forced
    assert emulator.call_count("/cgi-bin/stable_token") == 3  # ours, the other's, ours


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        ({"errcode": -1}, 503, "wechat_error"),
        ({"errcode": 45009}, 503, "wechat_error"),
        ({"http_status": 500}, 502, "upstream_bad_response"),
        ({"latency": 2.0}, 504, "upstream_timeout"),
    ],
)
async def test_the_emulator_failing_gets_json_errors(
    stack: Stack, fault: dict[str, Any], status: int, error: str
) -> None:
    emulator = stack.emulator()
    emulator.inject("getticket", times=None, **fault)
    app = stack.middleware(retries=0, http_timeout=0.5)
    async with stack.phone(app, user_agent=CHROME_UA) as browser:
        response = await browser.get("/wxauth/jssdk", params={"url": f"{APP_ORIGIN}/"})
    assert response.status_code == status, response.text
    no_store(response)
    assert response.json()["error"] == error


async def test_configuration_errors_name_the_appsecret(stack: Stack) -> None:
    stack.emulator()
    app = stack.middleware(app_secret="not-the-right-secret-0123")
    async with stack.phone(app, user_agent=CHROME_UA) as browser:
        response = await browser.get("/wxauth/jssdk", params={"url": f"{APP_ORIGIN}/"})
    assert response.status_code == 500
    assert response.json()["errcode"] == 40125
    assert "app_secret" in response.json()["detail"]


async def test_in_process_with_the_emulator_as_transport() -> None:
    emulator = make_emulator()
    app = WeChatAuthMiddleware(
        inner_app(),
        **middleware_options("http://wechat", transport=httpx.ASGITransport(app=emulator)),
    )
    try:
        token = await app.access_token()
        signed = await app.jssdk_config(f"{APP_ORIGIN}/in-process")
        follows = await app.follows(FOLLOWER.openid_for(DEFAULT_APP_ID))
    finally:
        await app.aclose()
    ticket = emulator.jsapi_ticket()
    assert ticket is not None
    assert len(token) >= 100
    assert signed["signature"] == jssdk_signature(
        ticket, str(signed["nonceStr"]), int(str(signed["timestamp"])), f"{APP_ORIGIN}/in-process"
    )
    assert follows is True


async def test_signs_with_a_stored_session_while_redis_is_down(kind: str) -> None:
    from wxauth_middleware.cookies import Signer
    from wxauth_middleware.store import SESSION_ID_SALT

    from .servers import free_port

    wechat = ScriptedWeChat()
    app = middleware(kind, wechat, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    # A validly signed session id (hash tag, then 32 characters): a page looks it up in Redis.
    sid = Signer((SECRET_KEY.encode(),), SESSION_ID_SALT, time.time).sign("0a1b" + "s" * 32)
    async with site(app) as client:
        cookie = {"cookie": f"wxauth_session={sid}"}
        page = await client.get("/page", headers={"accept": "text/html", **cookie})
        response = await client.get("/wxauth/jssdk", params={"url": f"{SITE}/page"}, headers=cookie)
    assert page.status_code == 503  # the store is down: a page cannot say who is logged in
    assert response.status_code == 200, response.text
    assert set(response.json()) == SIGNED_KEYS
