"""A site against an emulator as strict as a live account, through both adapters: the IP
allow-list's 40164 is a configuration error naming the allow-list and the server's address (not
"try again"), and the quotas' 45009/45011 are 503 with Retry-After, never retried in a loop."""

from __future__ import annotations

import pytest

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware.errors import WeChatAPIError
from wxauth_middleware.messages import HTTPRequest, HTTPResponse
from wxauth_middleware.pages import default_error_response

from .emulator_support import Clock
from .support import APP_ORIGIN, CHROME_UA, Stack, location, login

pytestmark = pytest.mark.anyio

SIGN = "/wxauth/jssdk"
PAGE = {"url": f"{APP_ORIGIN}/share"}


async def test_40164_is_a_configuration_error_naming_the_allowlist_and_the_address(
    stack: Stack,
) -> None:
    emulator = stack.emulator(ip_allowlist=["203.0.113.7"])
    app = stack.middleware()
    async with stack.phone(app, user_agent=CHROME_UA) as browser:
        first = await browser.get(SIGN, params=PAGE)
        again = await browser.get(SIGN, params=PAGE)
    assert first.status_code == 500, first.text
    body = first.json()
    assert body["errcode"] == 40164
    assert body["error"] == "wechat_error"
    assert "IP白名单" in body["detail"]
    assert "allow-list" in body["detail"]
    # The server's outbound address as WeChat saw it: the test server calls from loopback.
    assert "as 127.0.0.1" in body["detail"]
    assert "login" not in body["message"].lower()
    assert "retry-after" not in first.headers
    assert again.status_code == 500
    assert again.json()["errcode"] == 40164
    # One call: a configuration error is not retried, and the request right after is
    # answered from the failure remembered (kept.FAILURE_MEMORY), without a call.
    assert emulator.call_count("/cgi-bin/stable_token") == 1


def test_the_40164_page_asks_to_tell_the_administrator_not_to_retry() -> None:
    error = WeChatAPIError(
        40164,
        "invalid ip 198.51.100.9 ipv6 ::ffff:198.51.100.9, not in whitelist rid: 1-2-3",
        endpoint="cgi-bin/stable_token",
    )
    request = HTTPRequest(
        method="GET",
        scheme="https",
        path="/",
        target="/",
        query_string="",
        headers={"accept": "text/html", "host": "example.com"},
    )
    page = default_error_response(error, request)
    text = page.body.decode()
    assert page.status == 500
    assert "请告知网站管理员" in text
    assert "IP 白名单" in text
    assert "198.51.100.9" in text  # in the folded technical details
    assert "再试" not in text
    assert "try again" not in text.lower()


@pytest.mark.parametrize(
    ("settings", "errcode", "longest_wait"),
    [({"daily_quota": 1}, 45009, 86400), ({"minute_quota": 1}, 45011, 60)],
)
async def test_a_quota_is_503_with_retry_after_and_no_retry(
    stack: Stack, settings: dict[str, int], errcode: int, longest_wait: int
) -> None:
    emulator = stack.emulator(clock=Clock(), **settings)  # a minute that does not end
    first_site, second_site = stack.middleware(), stack.middleware()
    async with stack.phone(first_site, user_agent=CHROME_UA) as browser:
        assert (await browser.get(SIGN, params=PAGE)).status_code == 200
    # Another instance, without the first one's cached token: the quota is used up.
    async with stack.phone(second_site, user_agent=CHROME_UA) as browser:
        refused = await browser.get(SIGN, params=PAGE)
    assert refused.status_code == 503, refused.text
    assert refused.json()["errcode"] == errcode
    assert 1 <= int(refused.headers["retry-after"]) <= longest_wait
    assert "login" not in refused.json()["message"].lower()
    assert emulator.call_count("/cgi-bin/stable_token") == 2  # once each: never in a loop


async def test_a_quota_on_the_code_exchange_is_a_503_page_without_a_restart(
    stack: Stack,
) -> None:
    emulator = stack.emulator(clock=Clock(), auto_approve=True, minute_quota=1)
    site = stack.middleware()
    async with stack.phone(site) as phone:
        assert (await login(phone)).status_code == 200
        phone.cookies.clear()
        start = await phone.get("/page")
        authorize = await phone.get(location(start))
        callback = await phone.get(location(authorize))
    assert callback.status_code == 503
    assert 1 <= int(callback.headers["retry-after"]) <= 60
    assert "微信接口调用太频繁" in callback.text
    assert "errcode 45011" in callback.text
    # The spent code was not exchanged again, nor the login restarted.
    assert emulator.call_count("/sns/oauth2/access_token") == 2


async def test_retry_after_also_on_an_on_error_hooks_503(asgi_stack: Stack) -> None:
    def on_error(error: object, request: HTTPRequest) -> HTTPResponse:
        return HTTPResponse(503, (("content-type", "text/plain"),), b"busy")

    asgi_stack.emulator(clock=Clock(), minute_quota=1, auto_approve=True)
    app = asgi_stack.middleware(on_error=on_error)
    assert isinstance(app, WeChatAuthMiddleware)
    async with asgi_stack.phone(app) as phone:
        await login(phone)
        phone.cookies.clear()
        start = await phone.get("/page")
        authorize = await phone.get(location(start))
        callback = await phone.get(location(authorize))
    assert callback.status_code == 503
    assert callback.text == "busy"
    assert 1 <= int(callback.headers["retry-after"]) <= 60


def test_40001_says_what_it_means_today() -> None:
    error = WeChatAPIError(
        40001,
        "invalid credential, access_token is invalid or not latest, could get access_token by "
        "getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r rid: 1-2-3",
        endpoint="cgi-bin/ticket/getticket",
    )
    assert "not the latest" in error.hint
    assert "redis_url" in error.hint
    assert "stable_token" in error.hint
    assert "app_secret" in error.hint  # what old reports meant by it
    assert error.rid == "1-2-3"
