"""Desktop login by scanning with WeChat (other_browsers="scan"), through both adapters: a
desktop browser and a phone (WeChat's browser), each an httpx client with its own cookies,
against the emulator over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from wxauth_middleware import Rule, WeChatAuthMiddleware, WeChatUser
from wxauth_middleware.emulator import DEFAULT_APP_ID
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS
from wxauth_middleware.messages import HTTPRequest
from wxauth_middleware.scan.tickets import MemoryTickets

from .emulator_support import Clock
from .redis_support import RedisServer
from .support import (
    APP_ORIGIN,
    CHROME_UA,
    Middleware,
    Stack,
    attribute,
    inner_app,
    location,
    session_cookie_set,
    shown,
)

pytestmark = pytest.mark.anyio

OPENID = DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)
JSON = {"accept": "application/json"}
SAME_ORIGIN = {"origin": APP_ORIGIN, "sec-fetch-site": "same-origin"}


@asynccontextmanager
async def desk_and_phone(
    stack: Stack, middleware: Middleware
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        stack.phone(middleware, user_agent=CHROME_UA) as desktop,
        stack.phone(middleware) as phone,
    ):
        yield desktop, phone


async def open_scan_page(desktop: httpx.AsyncClient, path: str = "/page?x=1") -> tuple[str, str]:
    """The desktop visits `path`: the QR-code page; its phone URL and status URL."""
    page = await desktop.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text  # the QR code, inline
    return attribute(page, "data-scan-url"), attribute(page, "data-status-url")


async def status(client: httpx.AsyncClient, status_url: str) -> dict[str, Any]:
    answer = await client.get(status_url, headers=JSON)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


async def scan(phone: httpx.AsyncClient, scan_url: str) -> httpx.Response:
    """The phone opens the phone URL: logs in (the emulator approves) if it must; the
    confirmation page."""
    answer = await phone.get(scan_url)
    if answer.status_code == 302:
        to_wechat = await phone.get(location(answer))
        callback = await phone.get(location(to_wechat))
        back = location(callback)
        assert back == urlsplit(scan_url).path + "?" + urlsplit(scan_url).query
        answer = await phone.get(back)
    assert answer.status_code == 200, answer.text
    assert '<form method="post">' in answer.text
    return answer


async def decide(
    phone: httpx.AsyncClient,
    confirmation: httpx.Response,
    decision: str,
    headers: dict[str, str] | None = None,
    csrf: str | None = None,
) -> httpx.Response:
    token = attribute(confirmation, 'name="csrf" value') if csrf is None else csrf
    return await phone.post(
        str(confirmation.url),
        data={"csrf": token, "decision": decision},
        headers=SAME_ORIGIN if headers is None else headers,
    )


async def whoami(client: httpx.AsyncClient) -> Any:
    """The user the app sees, or None when the middleware asks to log in first (401)."""
    answer = await client.get("/whoami", headers=JSON)
    if answer.status_code == 401:
        assert "scan_url" in answer.json()
        return None
    return answer.json()["user"]


async def test_desktop_logs_in_as_the_phone_user_after_confirming(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    logins: list[tuple[str, str]] = []

    def on_login(user: WeChatUser, request: HTTPRequest) -> None:
        logins.append((user.openid, request.header("user-agent")))

    middleware = stack.middleware(other_browsers="scan", on_login=on_login)
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, status_url = await open_scan_page(desktop)
        assert scan_url.startswith(f"{APP_ORIGIN}/wxauth/scan/phone?t=")
        binding = [c for c in desktop.cookies.jar if c.name.startswith("wxauth_session_scan_")]
        assert len(binding) == 1
        assert binding[0].path == "/wxauth/scan"
        assert binding[0].has_nonstandard_attr("HttpOnly")
        assert await status(desktop, status_url) == {"status": "waiting"}

        confirmation = await scan(phone, scan_url)
        assert "在电脑上登录" in confirmation.text
        assert "Log in on a computer?" in confirmation.text
        assert "Chrome · Windows" in confirmation.text  # what the desktop said it is
        assert await status(desktop, status_url) == {"status": "scanned"}
        assert await whoami(desktop) is None  # a scan alone logs no one in

        done = await decide(phone, confirmation, "confirm")
        assert done.status_code == 200
        assert "已确认" in done.text
        answer = await status(desktop, status_url)
        assert answer["status"] == "confirmed"
        assert urlsplit(answer["next"]).netloc == ""

        landed = await desktop.get(answer["next"])
        assert location(landed) == "/page?x=1"
        assert session_cookie_set(landed)
        assert (await whoami(desktop))["openid"] == OPENID
        # The phone keeps its own session; on_login ran for the phone, then for the desktop.
        assert (await whoami(phone))["openid"] == OPENID
        assert [ua for _, ua in logins] == [phone.headers["user-agent"], CHROME_UA]

        # The ticket is spent and its binding cookie gone: a second trip to next logs in no
        # one, even this desktop; nor does the binding cookie, replayed.
        desktop.cookies.delete("wxauth_session")
        again = await desktop.get(answer["next"])
        assert again.status_code == 403
        assert not session_cookie_set(again)
        desktop.cookies.set(binding[0].name, binding[0].value or "", path="/wxauth/scan")
        replayed = await desktop.get(answer["next"])
        assert replayed.status_code == 410
        assert "二维码已使用" in replayed.text or "二维码已过期" in replayed.text
        assert not session_cookie_set(replayed)


async def test_a_rule_asks_other_browsers_to_scan_on_its_paths_only(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(rules=[Rule("/desk/**", other_browsers="scan")])
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        assert (await desktop.get("/elsewhere")).json()["user"] is None  # passes
        scan_url, status_url = await open_scan_page(desktop, "/desk/report")
        await decide(phone, await scan(phone, scan_url), "confirm")
        landed = await desktop.get((await status(desktop, status_url))["next"])
        assert location(landed) == "/desk/report"


async def test_json_clients_are_told_how_to_start_a_scan_login(stack: Stack) -> None:
    middleware = stack.middleware(other_browsers="scan")
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        api = await desktop.get(
            "/api/items", headers={**JSON, "referer": f"{APP_ORIGIN}/spa#/items"}
        )
        assert api.status_code == 401
        scan_url = api.json()["scan_url"]
        assert scan_url == f"{APP_ORIGIN}/wxauth/scan?next=/spa"
        page = await desktop.get(scan_url)
        assert page.status_code == 200
        assert attribute(page, "data-scan-url").startswith(f"{APP_ORIGIN}/wxauth/scan/phone")


async def test_cancel_ends_the_ticket_and_logs_no_one_in(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, status_url = await open_scan_page(desktop)
        confirmation = await scan(phone, scan_url)
        cancelled = await decide(phone, confirmation, "cancel")
        assert cancelled.status_code == 200
        assert "已取消" in cancelled.text
        assert await status(desktop, status_url) == {"status": "cancelled"}
        ticket = scan_url.rpartition("t=")[2]
        done = await desktop.get(f"/wxauth/scan/done?t={ticket}")
        assert done.status_code == 409
        assert "登录已取消" in done.text
        assert not session_cookie_set(done)
        # A confirm after the cancel changes nothing.
        late = await decide(phone, confirmation, "confirm")
        assert late.status_code == 409
        assert await status(desktop, status_url) == {"status": "cancelled"}


async def test_another_browser_with_the_ticket_id_gets_nothing(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with (
        desk_and_phone(stack, middleware) as (desktop, phone),
        stack.phone(middleware, user_agent=CHROME_UA) as attacker,
    ):
        scan_url, status_url = await open_scan_page(desktop)
        ticket = scan_url.rpartition("t=")[2]
        # The attacker saw the QR code (the ticket id), and even has a binding cookie of a
        # ticket of its own, renamed: neither is the desktop's binding.
        await open_scan_page(attacker)
        own = next(c for c in attacker.cookies.jar if c.name.startswith("wxauth_session_scan_"))
        attacker.cookies.set(f"wxauth_session_scan_{ticket}", own.value or "", path="/wxauth/scan")
        await decide(phone, await scan(phone, scan_url), "confirm")
        peek = await attacker.get(status_url, headers=JSON)
        assert peek.status_code == 403
        assert "next" not in peek.json()
        stolen = await attacker.get(f"/wxauth/scan/done?t={ticket}")
        assert stolen.status_code == 403
        assert not session_cookie_set(stolen)
        assert await whoami(attacker) is None
        # A second desktop that never had a binding cookie fares no better.
        async with stack.phone(middleware, user_agent=CHROME_UA) as second:
            assert (await second.get(status_url, headers=JSON)).status_code == 403
            assert (await second.get(f"/wxauth/scan/done?t={ticket}")).status_code == 403
        # The desktop it belongs to still logs in.
        landed = await desktop.get((await status(desktop, status_url))["next"])
        assert session_cookie_set(landed)


@pytest.mark.parametrize(
    ("headers", "csrf"),
    [
        pytest.param({"origin": "https://evil.example"}, None, id="other-origin"),
        pytest.param({"origin": "null"}, None, id="null-origin"),
        pytest.param({"sec-fetch-site": "cross-site"}, None, id="cross-site-fetch"),
        pytest.param({"sec-fetch-site": "same-site"}, None, id="same-site-fetch"),
        pytest.param(SAME_ORIGIN, "", id="no-token"),
        pytest.param(SAME_ORIGIN, "0" * 64, id="forged-token"),
    ],
)
async def test_a_confirmation_from_elsewhere_is_refused(
    stack: Stack, headers: dict[str, str], csrf: str | None
) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, status_url = await open_scan_page(desktop)
        confirmation = await scan(phone, scan_url)
        refused = await decide(phone, confirmation, "confirm", headers, csrf)
        assert refused.status_code == 403
        assert "请求来源不可信" in refused.text
        assert await status(desktop, status_url) == {"status": "scanned"}
        # The real confirmation still works afterwards.
        assert (await decide(phone, confirmation, "confirm")).status_code == 200


async def test_a_post_without_the_phone_session_is_refused(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with (
        desk_and_phone(stack, middleware) as (desktop, phone),
        stack.phone(middleware) as other_phone,
    ):
        scan_url, status_url = await open_scan_page(desktop)
        confirmation = await scan(phone, scan_url)
        # A cross-site form post carries no SameSite=Lax session cookie.
        blind = await decide(other_phone, confirmation, "confirm")
        assert blind.status_code == 403
        assert await status(desktop, status_url) == {"status": "scanned"}


async def test_a_replayed_confirmation_is_refused(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, _ = await open_scan_page(desktop)
        confirmation = await scan(phone, scan_url)
        assert (await decide(phone, confirmation, "confirm")).status_code == 200
        replay = await decide(phone, confirmation, "confirm")
        assert replay.status_code == 409
        assert "二维码已使用" in replay.text
        # Opening the phone URL again says so too.
        assert (await phone.get(scan_url)).status_code == 409


async def test_the_phone_url_outside_wechat_asks_for_wechat(stack: Stack) -> None:
    middleware = stack.middleware(other_browsers="scan")
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        scan_url, _ = await open_scan_page(desktop)
        answer = await desktop.get(scan_url)
        assert answer.status_code == 403
        assert "请用微信扫一扫" in answer.text


async def test_expired_tickets_end_clearly(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan", scan_max_age=60)
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, status_url = await open_scan_page(desktop)
        confirmation = await scan(phone, scan_url)
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + 59)
        assert await status(desktop, status_url) == {"status": "scanned"}
        monkeypatch.setattr(time, "time", lambda: now + 61)
        assert await status(desktop, status_url) == {"status": "expired"}
        late = await decide(phone, confirmation, "confirm")
        assert late.status_code == 410
        assert "二维码已过期" in late.text
        assert (await phone.get(scan_url)).status_code == 410


async def test_a_ticket_confirmed_then_expired_logs_no_one_in(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, status_url = await open_scan_page(desktop)
        await decide(phone, await scan(phone, scan_url), "confirm")
        next_url = (await status(desktop, status_url))["next"]
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + 181)
        expired = await desktop.get(next_url)
        assert expired.status_code == 410
        assert not session_cookie_set(expired)


async def test_a_snapshot_phone_user_cannot_confirm(stack: Stack) -> None:
    stack.emulator(auto_approve=True, default_persona="snapshot")
    middleware = stack.middleware(
        other_browsers="scan",
        rules=[Rule("/profile", scope="snsapi_userinfo", other_browsers="scan")],
    )
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, status_url = await open_scan_page(desktop, "/profile")
        start = await phone.get(scan_url)
        to_wechat = await phone.get(location(start))
        assert "scope=snsapi_userinfo" in location(start)  # the page's rule asks for more
        interstitial = await shown(phone, location(to_wechat))
        assert interstitial.status_code == 200  # the snapshot page, and no session
        assert '<form method="post">' not in interstitial.text
        assert await status(desktop, status_url) == {"status": "waiting"}


async def test_oversized_confirmation_body_is_refused(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="scan")
    async with desk_and_phone(stack, middleware) as (desktop, phone):
        scan_url, _ = await open_scan_page(desktop)
        confirmation = await scan(phone, scan_url)
        answer = await phone.post(
            str(confirmation.url), content=b"decision=confirm&x=" + b"a" * 5000, headers=SAME_ORIGIN
        )
        assert answer.status_code == 413


def test_scan_options_are_checked() -> None:
    options: dict[str, Any] = {
        "app_id": "wx1234567890abcdef",
        "app_secret": "s",
        "secret_key": "k" * 32,
    }
    with pytest.raises(ValueError, match="scan_max_age"):
        WeChatAuthMiddleware(inner_app(), other_browsers="scan", scan_max_age=5, **options)
    with pytest.raises(ValueError, match="scan_path"):
        WeChatAuthMiddleware(
            inner_app(),
            other_browsers="scan",
            scan_path="/wxauth",
            login_path="/wxauth/scan/x",
            **options,
        )
    with pytest.raises(ValueError, match="other_browsers"):
        Rule("/x", other_browsers="scann")  # type: ignore[arg-type]


# -- two instances, one Redis -------------------------------------------------------------------


async def test_every_step_may_land_on_another_instance_sharing_redis(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    stack.emulator(auto_approve=True)
    options = {
        "other_browsers": "scan",
        "redis_url": redis_server.url,
        "redis_prefix": redis_prefix,
    }
    a, b = stack.middleware(**options), stack.middleware(**options)
    async with (
        stack.phone(a, user_agent=CHROME_UA) as desktop_on_a,
        stack.phone(b, user_agent=CHROME_UA) as desktop_on_b,
        stack.phone(b) as phone_on_b,
    ):
        scan_url, status_url = await open_scan_page(desktop_on_a)
        # One browser behind a load balancer: B gets A's cookies (httpx copies them).
        desktop_on_b.cookies = desktop_on_a.cookies
        with redis_server.client() as client:
            assert client.ttl(f"{redis_prefix}scan:{scan_url.rpartition('t=')[2]}") > 180
        confirmation = await scan(phone_on_b, scan_url)
        assert await status(desktop_on_a, status_url) == {"status": "scanned"}
        assert (await decide(phone_on_b, confirmation, "confirm")).status_code == 200
        answer = await status(desktop_on_b, status_url)
        landed = await desktop_on_a.get(answer["next"])
        assert location(landed) == "/page?x=1"
        desktop_on_b.cookies = desktop_on_a.cookies
        assert (await whoami(desktop_on_b))["openid"] == OPENID
        with redis_server.client() as client:
            assert client.keys(f"{redis_prefix}session:*")  # sessions in Redis, as any login's


async def test_without_redis_tickets_stay_in_their_process(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    a, b = stack.middleware(other_browsers="scan"), stack.middleware(other_browsers="scan")
    async with stack.phone(a, user_agent=CHROME_UA) as desktop, stack.phone(b) as phone_on_b:
        scan_url, _ = await open_scan_page(desktop)
        start = await phone_on_b.get(scan_url)
        assert start.status_code == 410  # the other process never saw the ticket


# -- the store of tickets, on an injected clock ---------------------------------------------------


def _run(flow: Any) -> Any:
    """Run an in-process ticket store's flow (it never yields)."""
    try:
        next(flow)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the in-process store yielded an effect")


def test_in_process_tickets_are_forgotten_after_their_life() -> None:
    clock = Clock()
    tickets = MemoryTickets(clock)
    assert _run(tickets.create("a" * 22, "record", 240))
    assert _run(tickets.set_once("a" * 22, "d", "cancel", 240))
    assert not _run(tickets.set_once("a" * 22, "d", "{}", 240))  # the first decision wins
    clock.advance(239)
    assert _run(tickets.fields("a" * 22)) == {"t": "record", "d": "cancel"}
    clock.advance(1)
    assert _run(tickets.fields("a" * 22)) == {}
    assert not _run(tickets.set_once("a" * 22, "u", "1", 240))  # no ticket comes back
    assert _run(tickets.create("b" * 22, "record", 240))
    assert len(tickets) == 1  # the expired one was dropped on the way
