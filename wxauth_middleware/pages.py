"""The responses the middleware writes itself: redirects, 401 JSON and error pages."""

from __future__ import annotations

import json
from html import escape

from .errors import WeChatAPIError, WeChatAuthError
from .http import HTTPRequest, HTTPResponse

__all__ = ["default_error_response", "json_response", "redirect", "wants_json"]

# Nothing the middleware answers may be cached: it is per-visitor and often carries cookies.
_NO_STORE = ("cache-control", "no-store")


def redirect(location: str, cookies: tuple[tuple[str, str], ...] = ()) -> HTTPResponse:
    body = f'<a href="{escape(location)}">Continue</a>'.encode()
    return HTTPResponse(
        302,
        (
            ("location", location),
            ("content-type", "text/html; charset=utf-8"),
            _NO_STORE,
            *cookies,
        ),
        body,
    )


def json_response(
    status: int, payload: dict[str, object], cookies: tuple[tuple[str, str], ...] = ()
) -> HTTPResponse:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return HTTPResponse(
        status, (("content-type", "application/json; charset=utf-8"), _NO_STORE, *cookies), body
    )


def wants_json(request: HTTPRequest) -> bool:
    """Whether the client asked for JSON rather than a page (an API call or XHR)."""
    accept = request.header("accept")
    if "json" in accept and "html" not in accept:
        return True
    return request.header("x-requested-with").lower() == "xmlhttprequest"


def default_error_response(error: WeChatAuthError, request: HTTPRequest) -> HTTPResponse:
    """A short page (or JSON for JSON clients) saying what went wrong and what to check.

    It shows the error's title and hint, and WeChat's errcode and rid when there are some,
    never the request's query (it may carry a code) nor anything from the configuration.
    """
    errcode = error.errcode if isinstance(error, WeChatAPIError) else None
    rid = error.rid if isinstance(error, WeChatAPIError) else None
    if wants_json(request):
        payload: dict[str, object] = {
            "error": error.code,
            "message": error.title,
            "detail": error.hint,
        }
        if errcode is not None:
            payload["errcode"] = errcode
            payload["rid"] = rid
        return json_response(error.status, payload)
    details = ""
    if errcode is not None:
        details = f"<p class=code>WeChat errcode {errcode}"
        details += f" · rid {escape(rid)}</p>" if rid else "</p>"
    back = escape(error.return_to or "/")
    html = _PAGE.format(
        status=error.status,
        title=escape(error.title),
        hint=escape(error.hint),
        details=details,
        back=back,
    )
    return HTTPResponse(
        error.status,
        (("content-type", "text/html; charset=utf-8"), _NO_STORE),
        html.encode("utf-8"),
    )


_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:16px/1.6 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
background:#f2f2f2;color:#222}}
main{{max-width:28rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:8px}}
h1{{font-size:1.2rem;margin:0 0 .5rem}}
.code{{color:#888;font-size:.85rem}}
a{{display:inline-block;margin-top:1rem;color:#07c160}}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{hint}</p>
{details}
<a href="{back}">返回 · Back</a>
</main>
</body>
</html>
"""
