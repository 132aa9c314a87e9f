"""Demo only: a page that a desktop browser logs into by scanning (`other_browsers="scan"`).

`/desktop` is behind `Rule("/desktop", other_browsers="scan")`: a desktop browser without a
session gets the middleware's QR-code page there, and this page once a phone confirmed.

To try it on one computer, the "phone" needs a cookie jar of its own (the session cookie and
the "Browse as WeChat" cookie are shared by every tab of a window): open the address shown
under the QR code ("Cannot scan?") in a private window, press "Browse as WeChat" there first,
log in and confirm; the first window logs itself in.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse

from wxauth_middleware import Rule, WeChatUser, get_wechat_user

__all__ = ["DESKTOP_PATH", "DESKTOP_RULE", "desktop"]

DESKTOP_PATH = "/desktop"
DESKTOP_RULE = Rule(DESKTOP_PATH, other_browsers="scan")


async def desktop(request: Request) -> StarletteResponse:
    """The desktop page: reached only with a session (the middleware answers the rest)."""
    user = get_wechat_user(request)
    who = escape(user.nickname or user.openid) if isinstance(user, WeChatUser) else "—"
    body = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>扫码登录的桌面页 · Desktop page</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto">'
        "<h1>扫码登录成功 · Logged in by scanning</h1>"
        f'<p>已登录 · Logged in as <strong id="desktop-user">{who}</strong></p>'
        '<form method="post" action="/logout"><button>退出登录 · Log out</button></form>'
        '<p><a href="/">首页 · Home</a></p></body></html>'
    )
    return HTMLResponse(body, headers={"cache-control": "no-store"})
