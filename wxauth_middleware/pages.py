"""The responses the middleware writes itself: redirects, 401 JSON and error pages."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Literal

import segno

from .effects import Flow, HookCall
from .errors import WeChatAPIError, WeChatAuthError
from .messages import HTTPRequest, HTTPResponse

__all__ = [
    "bilingual_page",
    "default_error_response",
    "error_json",
    "error_response",
    "json_response",
    "page_language",
    "redirect",
    "wants_json",
]

logger = logging.getLogger("wxauth_middleware")

Language = Literal["zh", "en"]
# WeChat's in-app browser says the app's language in its User-Agent: "Language/zh_CN".
_WECHAT_LANGUAGE = re.compile(r"\bLanguage/([A-Za-z_-]+)")

# Nothing the middleware answers may be cached: it is per-visitor and often carries cookies.
_NO_STORE = ("cache-control", "no-store")
_TEXT_HTML = ("content-type", "text/html; charset=utf-8")


def redirect(
    location: str, cookies: tuple[tuple[str, str], ...] = (), *, status: int = 302
) -> HTTPResponse:
    # Without a body (browsers follow the Location, as Starlette's and Django's redirects
    # expect): a body is a second write to the socket on most servers, the headers' then its
    # own, and on every login's two redirects that is most of what a login costs beyond the
    # least it can (docs/performance.md).
    return HTTPResponse(status, (("location", location), _TEXT_HTML, _NO_STORE, *cookies), b"")


# json.dumps makes a new encoder for each call given an option: one, made once.
_JSON = json.JSONEncoder(ensure_ascii=False)


def json_response(
    status: int, payload: dict[str, object], cookies: tuple[tuple[str, str], ...] = ()
) -> HTTPResponse:
    body = _JSON.encode(payload).encode("utf-8")
    return HTTPResponse(
        status, (("content-type", "application/json; charset=utf-8"), _NO_STORE, *cookies), body
    )


def wants_json(request: HTTPRequest) -> bool:
    """Whether the client asked for JSON rather than a page (an API call or XHR)."""
    accept = request.header("accept")
    if "json" in accept and "html" not in accept:
        return True
    return request.header("x-requested-with").lower() == "xmlhttprequest"


def error_response(
    on_error: Callable[[WeChatAuthError, HTTPRequest], HTTPResponse | None] | None,
    error: WeChatAuthError,
    request: HTTPRequest,
    return_to: str | None = None,
    cookies: tuple[tuple[str, str], ...] = (),
    *,
    address: str | None = None,
) -> HTTPResponse:
    """The answer to a failed request: the `on_error` hook's, or the default page. With
    `return_to`, the error offers the visitor the page their login started from; with
    `address`, an HTML page puts that address in the browser's address bar."""
    if return_to is not None:
        error = error.leading_back_to(return_to)
    response = None
    if on_error is not None:
        try:
            response = on_error(error, request)
        except Exception:
            logger.exception("wxauth on_error hook failed; using the default error page")
    if response is None:
        response = default_error_response(error, request)
    response = with_retry_after(response, error)
    if address is not None:
        response = showing_address(response, address)
    if cookies:
        response = HTTPResponse(response.status, (*response.headers, *cookies), response.body)
    return response


def showing_address(response: HTTPResponse, address: str) -> HTTPResponse:
    """An HTML page (the middleware's, or an `on_error` hook's) replacing the URL the browser
    shows with `address`: `history.replaceState` at the end of its head, before anything is
    drawn. Anything else (JSON, a page without a head) as it is."""
    content_type = next((v for k, v in response.headers if k.lower() == "content-type"), "")
    head_end = response.body.find(b"</head>")
    if not content_type.startswith("text/html") or head_end < 0:
        return response
    quoted = json.dumps(address).replace("</", "<\\/")
    script = f'<script>history.replaceState(null,"",{quoted})</script>'.encode()
    body = response.body[:head_end] + script + response.body[head_end:]
    return HTTPResponse(response.status, response.headers, body)


def default_error_response(error: WeChatAuthError, request: HTTPRequest) -> HTTPResponse:
    """A short page (or JSON for JSON clients) saying what went wrong.

    The page tells the visitor, in Chinese first and in English, what happened and what they
    can do, with WeChat's errcode and rid when there are some (what WeChat support asks for);
    the owner's hint is folded away under "technical details" (and in the JSON answer). Never
    the request's query (it may carry a code) nor anything from the configuration.
    """
    if wants_json(request):
        return error_json(error)
    details = ""
    if isinstance(error, WeChatAPIError):
        details = f"<p class=code>WeChat errcode {error.errcode}"
        details += f" · rid {escape(error.rid)}</p>" if error.rid else "</p>"
    if error.hint:
        # Folded away: the visitor reads the advice; the site's developers open this.
        details += (
            "<details class=code><summary>技术信息 · Technical details</summary>"
            f"<p>{escape(error.hint)}</p></details>"
        )
    return bilingual_page(
        request,
        error.status,
        (error.title_zh, error.title),
        [(error.advice_zh, error.advice)],
        details + _link(error.return_to or "/", "返回 · Back"),
    )


def error_json(error: WeChatAuthError) -> HTTPResponse:
    """The error as JSON: its code, title and hint, and WeChat's errcode and rid if any."""
    payload: dict[str, object] = {
        "error": error.code,
        "message": error.title,
        "detail": error.hint,
    }
    if isinstance(error, WeChatAPIError):
        payload["errcode"] = error.errcode
        payload["rid"] = error.rid
    return with_retry_after(json_response(error.status, payload), error)


def with_retry_after(response: HTTPResponse, error: WeChatAuthError) -> HTTPResponse:
    """`response` with a Retry-After header when the error says when to retry (a quota) and
    the response is a 503 without one."""
    if (
        error.retry_after is None
        or response.status != 503
        or any(name.lower() == "retry-after" for name, _ in response.headers)
    ):
        return response
    headers = (*response.headers, ("retry-after", str(error.retry_after)))
    return HTTPResponse(response.status, headers, response.body)


def open_in_wechat_response(request: HTTPRequest, url: str) -> Flow[HTTPResponse]:
    """The "please open this page in WeChat" answer for other browsers, where the site
    refuses them: a page with the address (and a QR code to scan with WeChat), or JSON.
    The QR code of a long address holds the page without its query; of a longer one, none."""
    if not is_page_request(request):
        return json_response(
            403,
            {
                "error": "wechat_required",
                "message": "Open this page in WeChat to log in.",
                "url": url,
            },
        )
    scanned = url if len(url) <= QR_MAX else url.partition("?")[0]
    qr = yield from drawn_qr_code(scanned)
    if not qr:
        qr = (
            "<p>这个地址太长，无法生成二维码：请复制下面的地址，在微信中打开。"
            "<br>This address is too long for a QR code: copy it and open it in WeChat.</p>"
        )
    elif scanned != url:
        qr += (
            "<p>二维码中是这个页面的地址，不含其后的参数。<br>The QR code holds this "
            "page's address without its query.</p>"
        )
    return bilingual_page(
        request,
        403,
        ("请在微信中打开", "Open in WeChat"),
        [
            (
                "这个页面需要用微信登录，请在微信中打开。",
                "This page logs you in with WeChat: open it in WeChat.",
            )
        ],
        f"{qr}<p class=code>{escape(url)}</p>",
    )


def snapshot_response(request: HTTPRequest, return_to: str) -> HTTPResponse:
    """The interstitial for WeChat's snapshot mode: the visitor is a virtual user until they
    tap WeChat's "use full service" bar, which opens the page for real. A snapshot page takes
    no taps (a link there does nothing): the page points at the bar, and the callback puts
    `return_to` in the address bar, so that the bar (and a reload) opens that page."""
    return bilingual_page(
        request,
        200,
        ("页面快照", "Page snapshot"),
        [
            (
                "你正在浏览页面快照，快照里的按钮和链接都不能点。"
                "请点击屏幕下方的「使用完整服务」继续。",
                "You are viewing a snapshot of this page, where buttons and links do not work. "
                "Tap “use full service” at the bottom of the screen to continue.",
            )
        ],
        '<p class=pointer aria-hidden="true">↓</p>',
    )


def continue_page(url: str, cookies: tuple[tuple[str, str], ...]) -> HTTPResponse:
    """A page that sets `cookies` and goes on to `url` at once: for a cookie that a browser
    lost when it came with a redirect."""
    page = html_response(
        200,
        "正在登录 · Logging in",
        f'<meta http-equiv="refresh" content="0;url={escape(url)}">'
        "<p>正在前往微信登录…</p><p>On the way to WeChat to log in…</p>"
        f'<a class=button href="{escape(url)}">继续 · Continue</a>',
    )
    refresh = ("refresh", "0;url=" + url)
    return HTTPResponse(200, (*page.headers, refresh, *cookies), page.body)


def logout_page(request: HTTPRequest, action: str, status: int = 200) -> HTTPResponse:
    """The logout page: a form that posts to `action` (logging out takes a same-origin POST,
    so a link or another site's form cannot end the session)."""
    return bilingual_page(
        request,
        status,
        ("退出登录", "Log out"),
        [("确定要退出登录吗？", "Log out of this site?")],
        f'<form method="post" action="{escape(action)}">'
        '<button class=button type="submit">退出登录 · Log out</button></form>',
    )


def logged_out_page(request: HTTPRequest, login_url: str) -> HTTPResponse:
    """What WeChat's visitor sees after logging out, on any page of the site, instead of
    being logged in again at once: one tap (`login_url`) logs in again."""
    return bilingual_page(
        request,
        200,
        ("已退出登录", "Logged out"),
        [
            (
                "你已退出登录。需要时，点下面的按钮重新登录。",
                "You have logged out. Tap the button below to log in again.",
            )
        ],
        f'<a class=button href="{escape(login_url)}" id="log-in-again">重新登录 · Log in again</a>',
    )


def page_language(request: HTTPRequest) -> Language:
    """The language a visitor reads first: WeChat's own (its User-Agent says `Language/en`
    or `Language/zh_CN`), else the `Accept-Language` header's preferred of Chinese and
    English; Chinese when neither says."""
    wechat = _WECHAT_LANGUAGE.search(request.header("user-agent"))
    if wechat is not None:
        return "en" if wechat.group(1).lower().startswith("en") else "zh"
    best: dict[Language, float] = {"zh": 0.0, "en": 0.0}
    for item in request.header("accept-language").split(","):
        tag, _, params = item.strip().partition(";")
        language = tag.strip().lower()[:2]
        if language not in best:
            continue
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                continue
        best[language] = max(best[language], weight)
    return "en" if best["en"] > best["zh"] else "zh"


def bilingual_page(
    request: HTTPRequest,
    status: int,
    title: tuple[str, str],
    paragraphs: Sequence[tuple[str, str]],
    extra: str = "",
) -> HTTPResponse:
    """A page in Chinese and English, the visitor's language first: `title` and each of
    `paragraphs` are (Chinese, English) plain text, escaped here; `extra` is HTML, after."""
    first, second = (0, 1) if page_language(request) == "zh" else (1, 0)
    langs = ("zh-CN", "en")
    head = (
        f'<h1 lang="{langs[first]}">{escape(title[first])}</h1>'
        f'<p class=sub lang="{langs[second]}">{escape(title[second])}</p>'
    )
    text = "".join(
        f'<p lang="{langs[first]}">{escape(pair[first])}</p>'
        + (
            f'<p class=second lang="{langs[second]}">{escape(pair[second])}</p>'
            if pair[second]
            else ""
        )
        for pair in paragraphs
    )
    return html_response(
        status,
        f"{title[first]} · {title[second]}",
        head + text + extra,
        lang=langs[first],
        heading=False,
    )


def html_response(
    status: int, title: str, body: str, *, lang: str = "zh-CN", heading: bool = True
) -> HTTPResponse:
    """A small, self-contained page: `title` is escaped here, `body` must already be HTML;
    `heading=False` leaves the `<h1>` to the body."""
    head = f"<h1>{escape(title)}</h1>\n" if heading else ""
    html = _PAGE.format(title=escape(title), body=head + body, lang=lang)
    return HTTPResponse(
        status, (("content-type", "text/html; charset=utf-8"), _NO_STORE), html.encode("utf-8")
    )


def is_page_request(request: HTTPRequest) -> bool:
    return request.method in ("GET", "HEAD") and not wants_json(request)


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


# The longest address drawn as a QR code: longer, the code grows too dense to scan off a
# screen with ease (past version 13 at level M), and dearer to draw.
QR_MAX = 256


@functools.lru_cache(maxsize=128)
def qr_code(url: str) -> str:
    """`url` as an inline SVG QR code (drawn by segno, offline), or "" if longer than QR_MAX.

    Pure Python, a few milliseconds: drawn with one fixed mask (every mask scans; trying all
    eight for the best costs three times as much), and the codes drawn last are remembered.
    """
    if len(url) > QR_MAX:
        return ""
    svg: str = segno.make(url, error="m", mask=0).svg_inline(scale=5, border=2)
    return f'<div class="qr">{svg}</div>'


def drawn_qr_code(url: str) -> Flow[str]:
    """`qr_code(url)`, drawn where it holds up no other request: in a worker thread on ASGI
    (the event loop serves the others meanwhile), in the request's own thread on WSGI."""
    svg: str = yield HookCall(qr_code, (url,))
    return svg


_PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:16px/1.6 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
background:#f2f2f2;color:#222}}
main{{max-width:28rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:8px;
box-sizing:border-box;overflow-wrap:anywhere}}
@media (max-width:30rem){{main{{margin:0;min-height:100vh;border-radius:0}}}}
h1{{font-size:1.25rem;margin:0}}
.sub{{color:#888;margin:0 0 1rem;font-size:.9rem}}
.second{{color:#666;font-size:.9rem}}
.code{{color:#888;font-size:.85rem;overflow-wrap:anywhere}}
summary{{cursor:pointer}}
.qr{{text-align:center;margin:1rem 0}}
.pointer{{text-align:center;font-size:2.5rem;color:#07c160;margin:1.5rem 0 0}}
a{{display:inline-block;margin-top:1rem;color:#07c160}}
.button{{display:block;box-sizing:border-box;width:100%;margin:1.25rem 0 0;padding:.8rem;
border:0;border-radius:8px;background:#07c160;color:#fff;font:inherit;font-weight:600;
text-align:center;text-decoration:none;cursor:pointer}}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""
