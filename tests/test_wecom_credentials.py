"""A WeCom app's credentials and WeCom's errcodes, through both adapters against the emulator:
the app's token per corp and agent (one call per burst, shared through Redis), tokens WeCom
no longer takes, and the errcodes that are the site's configuration to fix."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware.emulator.wecom_state import WeComCorp

from .credentials_support import call
from .redis_support import RedisServer
from .support import Stack, location
from .wecom_support import (
    AGENT,
    AGENT2,
    CORP,
    SECRET2,
    WECOM_HOST,
    follow_login,
    log_in,
    visitor,
    wecom_app,
    wecom_emulator,
    wecom_site,
)

pytestmark = pytest.mark.anyio


def _page_says(text: str, *parts: str) -> None:
    for part in parts:
        assert part in text, (part, text)


async def test_a_wrong_secret_is_a_configuration_error_that_says_what_to_fix(
    stack: Stack,
) -> None:
    wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack, secret="not-the-apps-secret")])
    async with visitor(app) as client:
        _, callback = await follow_login(client, WECOM_HOST)
    assert callback.status_code == 500
    text = callback.text
    # Chinese first, full-width punctuation; the owner's hint says where the secret is.
    assert text.index("企业微信登录暂时无法使用") < text.index("WeCom login is not configured")
    _page_says(text, "本网站的企业微信登录设置有误，请稍后再试。", "40091", "应用管理")


async def test_a_server_outside_the_trusted_ips_is_told_its_address(stack: Stack) -> None:
    wecom_emulator(stack, corp={"trusted_ips": ["10.0.0.0/8"]})
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        _, callback = await follow_login(client, WECOM_HOST)
    assert callback.status_code == 500
    _page_says(callback.text, "60020", "企业可信IP", "127.0.0.1")


async def test_a_domain_not_trusted_names_the_host_to_trust(stack: Stack) -> None:
    # Trusted with a port: WeCom compares the whole host, so port 80 is another domain.
    wecom_emulator(stack, corp={"trusted_domains": [f"{WECOM_HOST}:8443"]})
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        _, callback = await follow_login(client, WECOM_HOST)
    assert callback.status_code == 500
    _page_says(callback.text, "50001", f"exactly {WECOM_HOST} ", "可信域名")


def test_the_emulator_trusts_loopback_on_any_port_and_a_listed_domain_exactly() -> None:
    default = WeComCorp(CORP, {AGENT: "s"}, time.time)
    assert default.trusts("http://127.0.0.1:8123/cb")
    assert default.trusts("http://localhost:9000/cb")
    assert not default.trusts("http://oa.example.com/cb")
    listed = WeComCorp(CORP, {AGENT: "s"}, time.time, trusted_domains=["oa.example.com:8000"])
    assert listed.trusts("http://oa.example.com:8000/cb")
    assert not listed.trusts("http://oa.example.com/cb")
    assert not listed.trusts("http://localhost:8000/cb")


async def test_an_invalid_code_restarts_the_login_once(stack: Stack) -> None:
    emulator = wecom_emulator(stack)
    emulator.inject("wecom_getuserinfo", errcode=40029, times=1)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        _, callback = await follow_login(client, WECOM_HOST)
        # The login starts over, at WeCom again...
        again = location(callback)
        assert "agentid=" in again
        authorize = await client.get(again)
        done = await client.get(location(authorize))
        assert done.status_code == 302
        page = await client.get(f"http://{WECOM_HOST}{location(done)}")
        assert page.json()["user"]["userid"] == "ZhangWei"
    # ...and only once: a second invalid code is an error page.
    emulator.inject("wecom_getuserinfo", errcode=40029, times=None)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        _, callback = await follow_login(client, WECOM_HOST)
        authorize = await client.get(location(callback))
        second = await client.get(location(authorize))
    assert second.status_code == 400
    _page_says(second.text, "40029")


async def test_a_token_wecom_no_longer_takes_is_replaced_once(stack: Stack) -> None:
    emulator = wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        await log_in(client)
    assert emulator.wecom is not None
    emulator.wecom.invalidate_tokens()
    async with visitor(app) as client:
        user = await log_in(client)
    assert user["userid"] == "ZhangWei"
    assert emulator.call_count("/cgi-bin/gettoken") == 2


def test_a_burst_of_callers_makes_one_token_call_per_app(stack: Stack) -> None:
    emulator = wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack, hosts=[])])
    if isinstance(app, WeChatAuthMiddleware):

        async def burst() -> list[str]:
            try:
                return list(await asyncio.gather(*(app.access_token() for _ in range(20))))
            finally:
                await app.aclose()

        tokens = asyncio.run(burst())
    else:

        async def threads() -> list[str]:
            return list(
                await asyncio.gather(
                    *(anyio.to_thread.run_sync(app.access_token) for _ in range(20))
                )
            )

        tokens = asyncio.run(threads())
    assert len(set(tokens)) == 1
    assert emulator.call_count("/cgi-bin/gettoken") == 1


def test_with_redis_tokens_and_tickets_are_kept_per_corp_and_agent(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    emulator = wecom_emulator(stack)
    options = {"redis_url": redis_server.url, "redis_prefix": redis_prefix}

    def apps() -> list[Any]:
        return [
            wecom_app(stack),
            wecom_app(stack, agent_id=AGENT2, secret=SECRET2, hosts=["app2.example.com"]),
        ]

    first = call(wecom_site(stack, apps(), **options), "jssdk_config", f"http://{WECOM_HOST}/p")
    # Another instance finds the app's token and both tickets in Redis: no call to WeCom.
    calls = len(emulator.calls)
    again = call(wecom_site(stack, apps(), **options), "jssdk_config", f"http://{WECOM_HOST}/q")
    assert len(emulator.calls) == calls
    assert first["appId"] == again["appId"] == CORP
    redis = redis_server.client()
    corp = f"{redis_prefix}wecom:{{{CORP}}}:"
    assert redis.get(f"{corp}{AGENT}:token")
    assert redis.get(f"{corp}{AGENT}:agent_ticket")
    assert redis.get(f"{corp}ticket")
    # The second app of the corp: its own token and agent ticket, the corp's ticket shared.
    call(wecom_site(stack, apps(), **options), "jssdk_config", "http://app2.example.com/")
    assert redis.get(f"{corp}{AGENT2}:token") != redis.get(f"{corp}{AGENT}:token")
    assert redis.get(f"{corp}{AGENT2}:agent_ticket")
    assert emulator.call_count("/cgi-bin/get_jsapi_ticket") == 1
    assert emulator.call_count("/cgi-bin/ticket/get") == 2


def test_the_application_asks_for_a_wecom_app_s_token_by_its_corp_and_agent(
    stack: Stack,
) -> None:
    wecom_emulator(stack)
    apps = [
        wecom_app(stack),
        wecom_app(stack, agent_id=AGENT2, secret=SECRET2, hosts=["app2.example.com"]),
    ]
    first = call(wecom_site(stack, apps), "access_token", app_id=f"{CORP}/{AGENT}")
    second = call(wecom_site(stack, apps), "access_token", app_id=f"{CORP}/{AGENT2}")
    assert first != second
    with pytest.raises(ValueError, match="app_id"):
        call(wecom_site(stack, apps), "access_token")
    with pytest.raises(ValueError, match="not one of the accounts"):
        call(wecom_site(stack, apps), "access_token", app_id=f"{CORP}/1000099")
