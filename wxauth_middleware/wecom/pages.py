"""The pages a WeCom app's visitors see from the middleware itself."""

from __future__ import annotations

from html import escape
from typing import TypeVar

from ..errors import WeChatAuthError
from ..messages import HTTPRequest, HTTPResponse
from ..pages import bilingual_page, is_page_request, json_response, qr_code
from .api import WeComAPIError

__all__ = ["in_wecom_words", "open_in_wecom_response"]

_E = TypeVar("_E", bound=WeChatAuthError)


def in_wecom_words(error: _E) -> _E:
    """A copy of `error` whose visitor-facing title and advice speak of WeCom (企业微信), not
    WeChat: what a WeCom app's visitors read. The owner's hint is unchanged."""
    if isinstance(error, WeComAPIError):
        return error  # WeCom's own words already
    worded = error.leading_back_to(error.return_to or "")  # a copy, every attribute kept
    worded.return_to = error.return_to
    worded.title = error.title.replace("WeChat", "WeCom")
    worded.advice = error.advice.replace("WeChat", "WeCom")
    worded.title_zh = error.title_zh.replace("微信", "企业微信")
    worded.advice_zh = error.advice_zh.replace("微信", "企业微信")
    return worded


def open_in_wecom_response(request: HTTPRequest, url: str) -> HTTPResponse:
    """The "please open this page in WeCom" answer for other browsers, where a WeCom app's
    site refuses them: a page with the address (and a QR code to scan with WeCom), or JSON."""
    if not is_page_request(request):
        payload: dict[str, object] = {
            "error": "wecom_required",
            "message": "Open this page in WeCom to log in.",
            "url": url,
        }
        return json_response(403, payload)
    return bilingual_page(
        request,
        403,
        ("请在企业微信中打开", "Open in WeCom"),
        [
            (
                "这个页面需要用企业微信登录，请在企业微信中打开。",
                "This page logs you in with WeCom (企业微信): open it in WeCom.",
            )
        ],
        f"{qr_code(url)}<p class=code>{escape(url)}</p>",
    )
