"""The scan login in a real browser: headless Chromium (Debian's, driven by Playwright) with two
contexts, a desktop and a phone (WeChat's user agent), each with its own cookies, against the
site (`tests.redis_site:app` under uvicorn, other_browsers="scan") and the emulator, each a
process. The desktop page polls by itself and lands on the page it started from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET

from .browser_support import (
    DESKTOP_UA,
    WECHAT_UA,
    browser_page,
    screenshot,
)
from .servers import ServerProcess, free_port, printed_on_failure, python_command, running_server
from .support import SECRET_KEY


@pytest.fixture(scope="module")
def site() -> Iterator[ServerProcess]:
    emulator_port, site_port = free_port(), free_port()
    emulator_argv = python_command(
        "-m", "wxauth_middleware.emulator", "--port", str(emulator_port), "--auto-approve"
    )
    with running_server("emulator", emulator_argv, port=emulator_port, ready_status=None) as emu:
        env = {
            "WXAUTH_APP_ID": DEFAULT_APP_ID,
            "WXAUTH_APP_SECRET": DEFAULT_APP_SECRET,
            "WXAUTH_SECRET_KEY": SECRET_KEY,
            "WXAUTH_AUTHORIZE_URL": f"{emu.url}/connect/oauth2/authorize",
            "WXAUTH_API_BASE_URL": emu.url,
            "WXAUTH_OTHER_BROWSERS": "scan",
        }
        argv = python_command(
            "-m", "uvicorn", "tests.redis_site:app", "--host", "127.0.0.1", "--port", str(site_port)
        )
        with (
            running_server(
                "site", argv, port=site_port, env=env, ready_path="/wxauth/scan", ready_status=200
            ) as server,
            printed_on_failure(emu),
        ):
            yield server


def test_desktop_page_to_logged_in_page_with_a_phone_confirming(
    browser: Browser, site: ServerProcess
) -> None:
    scenario = "scan"
    with (
        browser_page(browser, user_agent=DESKTOP_UA, scenario=f"{scenario}-desktop") as desktop,
        browser_page(browser, user_agent=WECHAT_UA, scenario=f"{scenario}-phone") as phone,
    ):
        phone.set_viewport_size({"width": 390, "height": 844})
        answer = desktop.goto(f"{site.url}/report?id=7")
        assert answer is not None
        assert answer.status == 200
        box = desktop.locator("[data-scan-url]")
        expect(desktop.locator("#scan-qr svg")).to_be_visible()
        expect(desktop.locator("#scan-status")).to_have_attribute("data-status", "waiting")
        phone_url = box.get_attribute("data-scan-url")
        assert phone_url is not None
        assert phone_url.startswith(f"{site.url}/wxauth/scan/phone?t=")
        screenshot(desktop, scenario, "1-desktop-code")

        # The phone logs in through the emulator and lands on the confirmation page.
        phone.goto(phone_url)
        expect(phone.locator("h1")).to_contain_text("在电脑上登录")
        expect(phone.locator("main")).to_contain_text("Chrome · Linux")
        expect(desktop.locator("#scan-status")).to_have_attribute("data-status", "scanned")
        screenshot(phone, scenario, "2-phone-confirm")
        screenshot(desktop, scenario, "3-desktop-scanned")

        phone.locator("#confirm").click()
        expect(phone.locator("h1")).to_contain_text("已确认登录")
        screenshot(phone, scenario, "4-phone-confirmed")

        # The desktop's own script notices, goes to next, and lands logged in on its page.
        # (It started at that very URL: what changes is the page, the app's JSON now.)
        expect(desktop.locator("body")).to_contain_text('"openid"')
        assert desktop.url == f"{site.url}/report?id=7"
        assert '"path":"/report"' in desktop.locator("body").inner_text().replace(" ", "")
        cookies = {c["name"]: c for c in desktop.context.cookies()}
        assert cookies["wxauth_session"]["httpOnly"]
        assert not any(name.startswith("wxauth_session_scan_") for name in cookies), cookies


def test_cancel_on_the_phone_shows_on_the_desktop_with_a_new_code(
    browser: Browser, site: ServerProcess
) -> None:
    scenario = "scan-cancel"
    with (
        browser_page(browser, user_agent=DESKTOP_UA, scenario=f"{scenario}-desktop") as desktop,
        browser_page(browser, user_agent=WECHAT_UA, scenario=f"{scenario}-phone") as phone,
    ):
        desktop.goto(f"{site.url}/report")
        phone_url = desktop.locator("[data-scan-url]").get_attribute("data-scan-url")
        assert phone_url is not None
        phone.goto(phone_url)
        phone.locator("#cancel").click()
        expect(phone.locator("h1")).to_contain_text("已取消")
        expect(desktop.locator("#scan-status")).to_have_attribute("data-status", "cancelled")
        renew = desktop.locator("#scan-renew a")
        expect(renew).to_be_visible()
        screenshot(desktop, scenario, "desktop-cancelled")
        renew.click()
        expect(desktop.locator("#scan-status")).to_have_attribute("data-status", "waiting")
        assert desktop.locator("[data-scan-url]").get_attribute("data-scan-url") != phone_url
