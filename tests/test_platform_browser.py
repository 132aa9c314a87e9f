"""A third-party platform in a real browser (Debian's Chromium): the admin authorizes on the
emulator's consent page, a WeChat user logs in on the account's behalf, and after the account
revokes its authorization the user reads the page that says so, Chinese first."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from wxauth_middleware.emulator import DEFAULT_APP_ID
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS

from .browser_support import DESKTOP_UA, WECHAT_UA, browser_page, screenshot
from .platform_processes import platform_deployment
from .redis_support import RedisServer
from .servers import ServerProcess
from .test_platform_instances import eventually

OPENID = DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)


@pytest.fixture
def deployment(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ...]]:
    with platform_deployment(redis_server, auto_approve=False) as servers:
        yield servers


def test_authorize_log_in_and_be_stopped_in_chromium(
    browser: Browser, deployment: tuple[ServerProcess, ...]
) -> None:
    emulator, site_a, site_b = deployment
    with httpx.Client(trust_env=False, timeout=10, follow_redirects=False) as probe:
        eventually(
            "the start's ticket reaching the site",
            lambda: (
                probe.get(f"{site_b.url}/page", headers={"user-agent": WECHAT_UA}).status_code
                == 302
            ),
        )
    scenario = "platform-admin"
    with browser_page(browser, user_agent=DESKTOP_UA, scenario=scenario) as page:
        page.goto(f"{site_a.url}/admin/authorize")
        assert page.url.startswith(f"{emulator.url}/cgi-bin/componentloginpage?")
        page.check(f'input[name="authorizer"][value="{DEFAULT_APP_ID}"]')
        screenshot(page, scenario, "consent")
        page.click("#allow")
        page.wait_for_url(f"{site_b.url}/admin/authorized?**")
        assert json.loads(page.inner_text("body")) == {"app_id": DEFAULT_APP_ID}
    scenario = "platform-user"
    with browser_page(browser, user_agent=WECHAT_UA, scenario=scenario) as page:
        page.goto(f"{site_b.url}/page")
        page.click("#allow")  # WeChat's consent, as the default persona
        page.wait_for_url(f"{site_b.url}/page")
        assert json.loads(page.inner_text("body"))["user"]["openid"] == OPENID
    with httpx.Client(trust_env=False, timeout=10) as control:
        revoked = control.post(
            f"{emulator.url}/_emulator/platform/unauthorize", params={"appid": DEFAULT_APP_ID}
        )
        assert revoked.json() == {"ok": True, "status": 200}
    scenario = "platform-revoked"
    with browser_page(browser, user_agent=WECHAT_UA, scenario=scenario) as page:
        response = page.goto(f"{site_b.url}/page")
        assert response is not None
        assert response.status == 403
        heading = page.inner_text("h1")
        assert heading == "该公众号已取消授权"
        assert "微信登录已停止" in page.inner_text("body")
        screenshot(page, scenario, "stopped")
