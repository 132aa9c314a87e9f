"""Going live, rehearsed in a real browser: the demo with ``--strict`` (a real uvicorn process)
and its /share page in headless Chromium. Each strict-mode error reaches the page's
``wx.error`` (the page never hangs at "configuring"), says what to fix, and goes away with its
fix: the IP allow-list (40164), then the JS接口安全域名 (config:invalid url domain).

Screenshots land in test-artifacts/browser/ (docs/going-live.md shows the same steps)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from wxauth_middleware import WeChatAuthWSGIMiddleware
from wxauth_middleware.emulator import WeChatEmulator

from .browser_support import DESKTOP_UA, browser_page, screenshot
from .servers import ServerProcess, free_port, python_command, running_server
from .support import middleware_options, serve, served

STATUS = "#status"


@contextmanager
def strict_demo(*options: str) -> Iterator[ServerProcess]:
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--port", str(port), "--strict", *options)
    with running_server("demo", argv, port=port, ready_status=None) as server:
        yield server


def share_page_status(browser: Browser, demo: ServerProcess, step: str) -> tuple[str, list[str]]:
    """Open /share; what its status line ends up saying, and the console's errors."""
    messages: list[str] = []
    with browser_page(browser, user_agent=DESKTOP_UA, scenario=f"strict-{step}") as page:
        page.on("console", lambda message: messages.append(message.text))
        page.goto(f"{demo.url}/share")
        status = page.locator(STATUS)
        expect(status).not_to_contain_text("正在配置")
        text = status.inner_text()
        screenshot(page, "strict", step)
    return text, messages


def test_each_strict_mode_error_reaches_wx_error_and_goes_away_with_its_fix(
    browser: Browser,
) -> None:
    with strict_demo() as demo:
        text, messages = share_page_status(browser, demo, "ip-allowlist")
        banner = demo.output()
    # 40164: the IP allow-list, and the address WeChat saw.
    assert "wx.config 失败" in text
    assert "config:fail" in text
    assert "40164" in text
    assert "IP白名单" in text
    assert "127.0.0.1" in text
    failures = [m for m in messages if m.startswith("wxauth:")]
    assert failures, messages
    assert all("login" not in m.lower() for m in failures), failures
    assert "Strict mode" in banner

    with strict_demo("--ip-allowlist", "127.0.0.1") as demo:
        text, messages = share_page_status(browser, demo, "js-domain")
    assert "config:invalid url domain" in text
    assert any("JS接口安全域名" in m for m in messages), messages

    with strict_demo("--ip-allowlist", "127.0.0.1", "--js-domain", "127.0.0.1") as demo:
        text, _ = share_page_status(browser, demo, "ok")
    assert "config:ok" in text


# A page of one's own: the one-tag script, and callbacks registered before and after it fails.
OWN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="/wxauth/jssdk.js"></script></head>
<body><p id="status">正在配置</p><p id="late"></p>
<script>
wx.ready(function () { document.getElementById("status").textContent = "ready"; });
wx.error(function (res) {
  document.getElementById("status").textContent = res.errMsg + " | detail: " + (res.detail || "");
});
setTimeout(function () {
  wx.error(function (res) { document.getElementById("late").textContent = "late: " + res.errMsg; });
}, 500);
</script></body></html>"""


@contextmanager
def own_site(**options: Any) -> Iterator[str]:
    """A WSGI site serving OWN_PAGE behind the WSGI middleware (a threaded server), against
    an emulator over HTTP with the IP allow-list on and empty; the site's base URL."""

    def page(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/html; charset=utf-8")])
        return [OWN_PAGE.encode()]

    with serve(WeChatEmulator(ip_allowlist=[])) as wechat_url:
        app = WeChatAuthWSGIMiddleware(page, **middleware_options(wechat_url, **options))
        with served(app) as url:
            yield url


@pytest.mark.parametrize("sdk", ["unreachable", "emulator"])
def test_a_page_that_cannot_be_configured_hears_it_in_wx_error(browser: Browser, sdk: str) -> None:
    # Either WeChat's script does not load, or it loads and the site cannot sign (40164).
    closed = f"http://127.0.0.1:{free_port()}/open/js/jweixin-1.6.0.js"
    options = {"jssdk_script_url": closed} if sdk == "unreachable" else {}
    with (
        own_site(**options) as url,
        browser_page(browser, user_agent=DESKTOP_UA, scenario=f"unconfigured-{sdk}") as page,
    ):
        page.goto(f"{url}/page")
        expect(page.locator("#status")).to_contain_text("config:fail")
        expect(page.locator("#late")).to_contain_text("late: config:fail")
        status = page.locator("#status").inner_text()
    if sdk == "unreachable":
        assert f"WeChat's JS-SDK could not be loaded from {closed}" in status
    else:
        assert "40164" in status
        assert "detail: WeChat refused the server's IP address" in status
        assert "IP白名单" in status
