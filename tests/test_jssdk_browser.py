"""The JS-SDK in a real browser: headless Chromium (Debian's, driven by Playwright) on the demo's
/share page (a real uvicorn process), whose one <script> tag is the middleware's script. It loads
the emulator's stand-in of WeChat's JS-SDK, whose wx.config has the emulator check the signature
against the URL WeChat verifies: the entry URL on iPhone, the current URL elsewhere.

Screenshots land in test-artifacts/browser/. Locally the tests skip without Chromium; with CI
set, a missing Chromium fails them.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .browser_support import DESKTOP_UA, browser_page, screenshot
from .servers import ServerProcess, printed_on_failure

# Not WeChat's browser (the demo lets them through without a login), but an iPhone and an
# Android phone as the JS-SDK tells them apart.
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
READY = "config:ok"
SHARED = "分享卡片已设置"

# A route change of a single-page app; resolves with the middleware script's next event.
ROUTE_CHANGE = """(path) => new Promise((resolve) => {
  const done = (e) => resolve({kind: e.type, url: e.detail.url, errMsg: e.detail.errMsg});
  document.addEventListener("wxauth:ready", done, {once: true});
  document.addEventListener("wxauth:error", done, {once: true});
  history.pushState(null, "", path);
})"""

# What a page does without the script: sign the current URL itself and call wx.config.
SIGN_CURRENT_URL = """async () => {
  const url = location.href.split("#")[0];
  const response = await fetch("/wxauth/jssdk?url=" + encodeURIComponent(url));
  const signed = await response.json();
  return await new Promise((resolve) => {
    wx.config({...signed, jsApiList: ["updateAppMessageShareData"]});
    wx.ready(() => resolve("ready"));
    wx.error((res) => resolve(res.errMsg));
  });
}"""


def _open_share_page(page: Page, demo: ServerProcess, messages: list[str]) -> None:
    page.on("console", lambda message: messages.append(message.text))
    page.goto(f"{demo.url}/share?from=timeline#top")
    expect(page.locator("#status")).to_contain_text(READY)


def _share(page: Page) -> None:
    page.locator("#share").click()
    expect(page.locator("#result")).to_contain_text(SHARED)


@pytest.mark.parametrize(
    ("device", "user_agent", "verified"),
    [
        ("iphone", IPHONE_UA, "entry"),
        ("android", ANDROID_UA, "current"),
        ("desktop", DESKTOP_UA, "current"),
    ],
)
def test_one_script_tag_configures_wx_before_and_after_a_route_change(
    browser: Browser, demo: ServerProcess, device: str, user_agent: str, verified: str
) -> None:
    scenario = f"jssdk-{device}"
    messages: list[str] = []
    with (
        printed_on_failure(demo),
        browser_page(browser, user_agent=user_agent, scenario=scenario) as page,
    ):
        _open_share_page(page, demo, messages)
        _share(page)
        screenshot(page, scenario, "ready")
        entry = f"{demo.url}/share?from=timeline"
        # The app moves to another route: the script configures again, for the URL WeChat
        # verifies on this platform.
        event: dict[str, Any] = page.evaluate(ROUTE_CHANGE, "/share/item/7?tab=photos")
        current = f"{demo.url}/share/item/7?tab=photos"
        assert event == {
            "kind": "wxauth:ready",
            "url": entry if verified == "entry" else current,
            "errMsg": READY,
        }, messages
        page.locator("#result").evaluate("node => { node.textContent = ''; }")
        _share(page)
        # Signing the current URL itself, as a page without the script would: iOS refuses it.
        verdict = page.evaluate(SIGN_CURRENT_URL)
        screenshot(page, scenario, "after-route-change")
    if verified == "entry":
        assert verdict == "config:invalid signature"
        assert any(f"realAuthUrl {entry} " in m for m in messages), messages
    else:
        assert verdict == "ready"
    assert not any("wxauth: wx.config" in m for m in messages), messages
