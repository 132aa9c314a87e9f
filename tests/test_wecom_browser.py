"""WeCom (企业微信) in a real browser: headless Chromium on the demo (`--wecom`, a real uvicorn
process), whose WeCom app is on wecom.localhost. In WeCom's browser (its user agent), the
in-app login and the JS-SDK's wx.config + wx.agentConfig (the entry URL on iPhone); on the
desktop, WeCom's desktop login; and the demo's "Browse as WeCom" switch.

Screenshots land in test-artifacts/browser/. Locally the tests skip without Chromium; with CI
set, a missing Chromium fails them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .browser_support import DESKTOP_UA, browser_page, screenshot
from .servers import ServerProcess, free_port, printed_on_failure, python_command, running_server
from .test_jssdk_browser import ROUTE_CHANGE

WECOM_IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh ColorScheme/Light"
)
WECOM_ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh"
)


@pytest.fixture(scope="module")
def wecom_demo() -> Iterator[ServerProcess]:
    """`python -m wxauth_middleware.demo --wecom`, consent pages on, on a free port."""
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--port", str(port), "--wecom")
    with running_server("demo", argv, port=port, ready_status=None) as server:
        yield server


def _wecom_url(demo: ServerProcess, path: str) -> str:
    return f"http://wecom.localhost:{demo.port}{path}"


def _allow(page: Page, persona: str) -> None:
    """On the emulator's WeCom page: choose `persona`, press Allow (or Confirm)."""
    page.locator(f"#wecom-persona-{persona}").check()
    page.locator("#wecom-allow").click()


@pytest.mark.parametrize(
    ("device", "user_agent", "verified"),
    [("iphone", WECOM_IPHONE_UA, "entry"), ("android", WECOM_ANDROID_UA, "current")],
)
def test_in_wecom_the_member_logs_in_and_the_js_sdk_is_configured_for_the_app(
    browser: Browser, wecom_demo: ServerProcess, device: str, user_agent: str, verified: str
) -> None:
    scenario = f"wecom-{device}"
    messages: list[str] = []
    with (
        printed_on_failure(wecom_demo),
        browser_page(browser, user_agent=user_agent, scenario=scenario) as page,
    ):
        page.on("console", lambda message: messages.append(message.text))
        entry = _wecom_url(wecom_demo, "/wecom?tab=mine")
        page.goto(entry)
        # WeCom's consent for snsapi_privateinfo, Chinese first.
        expect(page.locator("h1")).to_contain_text("授权")
        screenshot(page, scenario, "consent")
        _allow(page, "zhangwei")
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        expect(page.locator("#field-userid")).to_have_text("ZhangWei")
        expect(page.locator("#field-mobile")).to_have_text("13800000001")
        expect(page.locator("#jssdk")).to_contain_text("agentConfig:ok")
        screenshot(page, scenario, "ready")
        event: dict[str, Any] = page.evaluate(ROUTE_CHANGE, "/wecom/reports?month=3")
    current = _wecom_url(wecom_demo, "/wecom/reports?month=3")
    assert event == {
        "kind": "wxauth:ready",
        "url": entry if verified == "entry" else current,
        "errMsg": "agentConfig:ok",
    }, messages
    assert not any("wxauth: wx.config" in m for m in messages), messages


def test_a_desktop_browser_logs_in_with_wecom_s_desktop_login(
    browser: Browser, wecom_demo: ServerProcess
) -> None:
    scenario = "wecom-desktop-sso"
    with (
        printed_on_failure(wecom_demo),
        browser_page(browser, user_agent=DESKTOP_UA, scenario=scenario) as page,
    ):
        page.goto(_wecom_url(wecom_demo, "/wecom/desktop"))
        expect(page.locator("h1")).to_contain_text("企业微信登录")
        assert "/wwlogin/sso/login" in page.url
        # Only members: the non-member is not offered.
        expect(page.locator("#wecom-persona-guest")).to_have_count(0)
        screenshot(page, scenario, "sso")
        _allow(page, "lina")
        expect(page.locator("#desktop-status")).to_contain_text("已登录")
        expect(page.locator("#field-userid")).to_have_text("LiNa")
        expect(page.locator("#field-scope")).to_have_text("sso")
        assert page.url == _wecom_url(wecom_demo, "/wecom/desktop")
        screenshot(page, scenario, "done")


def test_browse_as_wecom_switches_a_desktop_browser_to_wecom(
    browser: Browser, wecom_demo: ServerProcess
) -> None:
    scenario = "wecom-switch"
    with (
        printed_on_failure(wecom_demo),
        browser_page(browser, user_agent=DESKTOP_UA, scenario=scenario) as page,
    ):
        # From the demo's home page (the Official Account's), to its WeCom page.
        page.goto(f"{wecom_demo.url}/")
        page.locator("#wecom-link").click()
        assert page.url == _wecom_url(wecom_demo, "/wecom")
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "false")
        expect(page.locator("#as-wecom")).to_have_text("以企业微信身份浏览 · Browse as WeCom")
        page.locator("#as-wecom").click()
        _allow(page, "guest")
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        expect(page.locator("#field-userid")).to_have_text("None")
        expect(page.locator("#field-external_userid")).not_to_have_text("None")
        screenshot(page, scenario, "non-member")
