"""The pages the middleware shows visitors: Chinese first (English first for visitors who
prefer it), the owner's hint kept for the JSON answer and the log, and, in Chromium on a
390x844 phone screen, nothing wider than the screen."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape

import httpx
import pytest

from wxauth_middleware.drivers import drive_sync
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
    open_in_wechat_response,
    page_language,
    snapshot_response,
)

from .support import CHROME_UA

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


def _pages(lang: str) -> dict[str, Callable[[], HTTPResponse]]:
    visitor = request(WECHAT_UA.format(lang))
    url = "https://www.example.com/orders/2024/11/a-rather-long-page-name?tab=all&page=3"
    pages: dict[str, Callable[[], HTTPResponse]] = {
        "open-in-wechat": lambda: drive_sync(
            open_in_wechat_response(request(CHROME_UA, lang), url), httpx.Client()
        ),
        "snapshot": lambda: snapshot_response(visitor, "/orders"),
    }
    for error in ERRORS:
        pages[error.code] = lambda error=error: default_error_response(  # type: ignore[misc]
            error.leading_back_to("/orders"), visitor
        )
    return pages


TITLES_ZH = {
    "open-in-wechat": "请在微信中打开",
    "snapshot": "页面快照",
    **{error.code: error.title_zh for error in ERRORS},
}


def test_visitor_pages_fit_a_phone_in_chromium(browser: object) -> None:
    from playwright.sync_api import Browser

    from .browser_support import ARTIFACTS

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    try:
        page = context.new_page()
        for name, make in _pages("zh_CN").items():
            page.set_content(html(make()))
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 390, f"{name} is {width}px wide"
            title = page.locator("h1")
            assert title.inner_text() == TITLES_ZH[name]
            if page.locator("details").count():
                assert not page.locator("details p").is_visible()  # the owner's hint: folded
            box = title.bounding_box()
            assert box is not None
            assert box["y"] + box["height"] <= 844
            assert 0 <= box["x"] <= box["x"] + box["width"] <= 390
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)
        for name, make in _pages("en").items():
            page.set_content(html(make()))
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
            assert page.locator("h1").get_attribute("lang") == "en"
            page.screenshot(path=str(ARTIFACTS / f"page-{name}-en.png"), full_page=True)
    finally:
        context.close()
