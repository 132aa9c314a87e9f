"""The pages the middleware shows visitors: Chinese first (English first for visitors who
prefer it), the owner's hint kept for the JSON answer and the log, and, in Chromium on a
390x844 phone screen, nothing wider than the screen."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from html import escape
from typing import TYPE_CHECKING

import pytest

from wxauth_middleware.errors import (
    ConfigurationError,
    InvalidRequest,
    LoginDeclined,
    LoginStateError,
    LoginVetoed,
    StoreUnavailable,
    UpstreamTimeout,
    UpstreamUnavailable,
    WeChatAPIError,
    WeChatAuthError,
)
from wxauth_middleware.messages import HTTPRequest, HTTPResponse
from wxauth_middleware.pages import (
    default_error_response,
    page_language,
)

from .support import CHROME_UA
from .visitor_pages import demo_page_texts, middleware_pages, served_page_texts

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/{}"
)


def request(
    user_agent: str = CHROME_UA, accept_language: str = "", accept: str = ""
) -> HTTPRequest:
    headers = {"user-agent": user_agent, "accept-language": accept_language, "accept": accept}
    return HTTPRequest("GET", "https", "/wxauth/callback", "/wxauth/callback", "", headers)


@pytest.mark.parametrize(
    ("user_agent", "accept_language", "language"),
    [
        (CHROME_UA, "", "zh"),
        (CHROME_UA, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (CHROME_UA, "en-US,en;q=0.9", "en"),
        (CHROME_UA, "en-GB;q=0.5,zh-TW;q=0.8", "zh"),
        (CHROME_UA, "fr-FR,en;q=0.7", "en"),
        (CHROME_UA, "fr-FR,de", "zh"),
        (CHROME_UA, "en;q=abc,zh;q=0.1", "zh"),
        # WeChat's own language setting wins over the header its webview sends.
        (WECHAT_UA.format("zh_CN"), "en-US", "zh"),
        (WECHAT_UA.format("en"), "zh-CN", "en"),
        (WECHAT_UA.format("zh_TW"), "", "zh"),
    ],
)
def test_page_language(user_agent: str, accept_language: str, language: str) -> None:
    assert page_language(request(user_agent, accept_language)) == language


ERRORS: list[WeChatAuthError] = [
    LoginStateError("unknown state"),
    LoginDeclined("no code"),
    LoginVetoed("vetoed"),
    ConfigurationError("bad"),
    InvalidRequest("bad host"),
    WeChatAPIError(40001, "invalid credential, rid: 6561e6d3-1b2c3d4e", endpoint="access_token"),
    UpstreamUnavailable("refused"),
    UpstreamTimeout("slow"),
    StoreUnavailable("redis down"),
]


def html(response: HTTPResponse) -> str:
    return response.body.decode("utf-8")


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.code)
def test_error_pages_are_chinese_first_with_the_owner_hint_folded(error: WeChatAuthError) -> None:
    page = html(default_error_response(error, request()))
    assert page.index(error.title_zh) < page.index(escape(error.title))
    assert page.index(error.advice_zh) < page.index(escape(error.advice))
    assert '<html lang="zh-CN">' in page
    if error.hint:
        folded = page.index("<details")
        assert folded > page.index(escape(error.advice)) > 0
        assert page.index(escape(error.hint)) > folded


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.code)
def test_error_pages_put_english_first_for_english_readers(error: WeChatAuthError) -> None:
    page = html(default_error_response(error, request(accept_language="en-US,en")))
    assert page.index(escape(error.advice)) < page.index(error.advice_zh)
    assert '<html lang="en">' in page


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error.code)
def test_json_errors_stay_english_with_the_owner_hint(error: WeChatAuthError) -> None:
    answer = default_error_response(error, request(accept="application/json"))
    body = json.loads(answer.body)
    assert (body["error"], body["message"], body["detail"]) == (error.code, error.title, error.hint)


def test_the_wechat_error_page_shows_errcode_and_rid() -> None:
    error = WeChatAPIError(40001, "invalid credential, rid: 6561e6d3-1b2c3d4e", endpoint="x")
    assert "WeChat errcode 40001 · rid 6561e6d3-1b2c3d4e" in html(
        default_error_response(error, request())
    )


def _offline_phone(browser: Browser) -> BrowserContext:
    """A 390x844 phone screen that fetches nothing: the pages are shown from their HTML (a
    refresh or a script's request goes nowhere)."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    context.route("**/*", lambda route: route.abort())
    return context


def _fits_a_phone(page: Page, name: str) -> None:
    """The page as a 390x844 phone shows it: no sideways scrolling, the heading on the
    first screen, the owner's hint folded; kept as test-artifacts/pages/<name>.png."""
    from .browser_support import ARTIFACTS

    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"{name} is {width}px wide"
    title = page.locator("h1").first
    assert title.inner_text().strip(), name
    box = title.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 844, name
    assert 0 <= box["x"] <= box["x"] + box["width"] <= 390, name
    if page.locator("main details").count():
        assert not page.locator("main details p").first.is_visible(), name  # folded
    folder = ARTIFACTS.parent / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_visitor_pages_fit_a_phone_in_chromium(browser: object) -> None:
    """Every page the middleware shows a visitor, in Chinese and in English."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = _offline_phone(browser)
    try:
        page = context.new_page()
        for lang, suffix in (("zh_CN", ""), ("en", "-en")):
            for name, make in middleware_pages(lang).items():
                # A page that goes on at once (continue) is looked at where it stands.
                page.set_content(re.sub(r'<meta http-equiv="refresh"[^>]*>', "", html(make())))
                # Two languages side by side in each line (a page shown for an instant, the
                # scan login's) have Chinese first for everyone.
                if name != "continue" and not name.startswith("scan-"):
                    first = "en" if lang == "en" else "zh-CN"
                    assert page.locator("html").get_attribute("lang") == first, name
                _fits_a_phone(page, f"{name}{suffix}")
    finally:
        context.close()


def test_demo_and_emulator_pages_fit_a_phone_in_chromium(browser: object) -> None:
    """Every page of the demo's and the emulator's (WeChat's pages, played)."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    # Served over ASGI by an event loop of their own (the sync browser runs one here).
    with ThreadPoolExecutor(1) as thread:
        served = thread.submit(asyncio.run, served_page_texts()).result()
    pages = {**demo_page_texts(), **served}
    context = _offline_phone(browser)
    try:
        page = context.new_page()
        for name, text in pages.items():
            page.set_content(text)
            _fits_a_phone(page, name)
    finally:
        context.close()
