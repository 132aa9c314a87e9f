"""The demo's two accounts side by side in a real browser (Debian's Chromium): the first at
127.0.0.1, the second at second.localhost (which browsers resolve to this machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from wxauth_middleware.demo.app import SECOND_APP_ID, SECOND_HOST
from wxauth_middleware.emulator import DEFAULT_APP_ID

from .browser_support import WECHAT_UA, browser_page, screenshot
from .servers import ServerProcess, free_port, printed_on_failure, python_command, running_server


@pytest.fixture(scope="module")
def two_accounts_demo() -> Iterator[ServerProcess]:
    port = free_port()
    argv = python_command(
        "-m", "wxauth_middleware.demo", "--port", str(port), "--auto-approve", "--second-account"
    )
    with running_server("demo", argv, port=port, ready_status=None) as server:
        yield server


def test_one_person_two_accounts_two_openids_one_unionid(
    browser: Browser, two_accounts_demo: ServerProcess
) -> None:
    port = two_accounts_demo.port
    seen = {}
    with (
        printed_on_failure(two_accounts_demo),
        browser_page(browser, user_agent=WECHAT_UA, scenario="demo-two-accounts") as page,
    ):
        for host, app_id in (("127.0.0.1", DEFAULT_APP_ID), (SECOND_HOST, SECOND_APP_ID)):
            response = page.goto(f"http://{host}:{port}/profile")
            assert response is not None
            assert response.status == 200
            assert (
                page.url.split("#")[0] == f"http://{host}:{port}/profile"
            )  # WeChat's #wechat_redirect kept
            expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
            assert page.locator("#field-app_id").inner_text() == app_id
            seen[host] = (
                page.locator("#field-openid").inner_text(),
                page.locator("#field-unionid").inner_text(),
            )
            screenshot(page, "demo-two-accounts", host)
    (first_openid, first_unionid), (second_openid, second_unionid) = seen.values()
    assert first_openid != second_openid
    assert first_unionid == second_unionid
    assert first_unionid.startswith("o")
