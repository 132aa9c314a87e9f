"""Helpers for the real-browser tests: Debian's Chromium, pages, screenshots.

Chromium is the system one (`apt-get install chromium`); Playwright's own browser download is
never used. Servers run as real processes (uvicorn, gunicorn) on free loopback ports, started
with tests/servers.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from .servers import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN"
)
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in these tests is bounded: the servers' by tests/servers.py, Playwright's by this.
PAGE_TIMEOUT_MS = 10_000


def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Debian's Chromium, headless. Skips when it is not installed, fails then under CI."""
    executable = chromium_path()
    if executable is None:
        reason = "Chromium not installed: apt-get install chromium"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{reason} (CI is set: the browser tests must run)", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Page, scenario: str, step: str) -> Path:
    """Keep a full-page PNG of a key step: test-artifacts/browser/<scenario>-<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{scenario}-{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Navigations:
    """Records the main frame's navigation requests (redirect hops included)."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self._page = page
        page.on("request", self._on_request)

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame == self._page.main_frame:
            self.urls.append(request.url)

    def since(self, start: int) -> list[str]:
        return self.urls[start:]


@contextmanager
def browser_page(browser: Browser, *, user_agent: str, scenario: str) -> Iterator[Page]:
    """A page in a fresh context (no cookies) with this user agent. On failure, a screenshot
    (<scenario>-failure.png) and the page's URL are kept for the report."""
    context = browser.new_context(
        user_agent=user_agent,
        locale="zh-CN",
        viewport={"width": 430, "height": 932},
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        try:
            yield page
        except BaseException:
            try:
                shot = screenshot(page, scenario, "failure")
                print(f"browser at {page.url}; screenshot: {shot}")
            except Exception as exc:  # the original failure matters more
                print(f"no failure screenshot: {exc!r}")
            raise
    finally:
        context.close()
