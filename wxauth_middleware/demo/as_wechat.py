"""Demo only: let a desktop browser pass for the WeChat browser.

Web-page authorization only happens inside WeChat, so the middleware lets every other browser
through without a login. To show the login in a desktop browser, the demo puts this middleware
in front of everything: while the visitor has the cookie ``demo_as_wechat=1`` (set by the demo's
"Browse as WeChat" button), it replaces the request's User-Agent with a real WeChat one.

It lives in the demo package on purpose and is not exported by ``wxauth_middleware``: a switch
that makes any browser look like WeChat has no place in a production configuration.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "AS_WECHAT_COOKIE",
    "AS_WECOM_COOKIE",
    "WECHAT_IOS_UA",
    "WECOM_IOS_UA",
    "BrowseAsWeChatMiddleware",
    "is_browsing_as_wechat",
    "is_browsing_as_wecom",
]

#: The cookie that turns "browse as WeChat" on; its only meaningful value is "1".
AS_WECHAT_COOKIE = "demo_as_wechat"

#: The user agent of WeChat 8.0.42 on an iPhone (iOS 17), as the real app sends it.
WECHAT_IOS_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN"
)


#: The cookie that turns "browse as WeCom" on (the demo's WeCom host), "1" or absent.
AS_WECOM_COOKIE = "demo_as_wecom"

#: The user agent of WeCom 4.1 on an iPhone: "wxwork/" (and WeChat's token too).
WECOM_IOS_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh ColorScheme/Light"
)


def is_browsing_as_wecom(cookies: Mapping[str, str]) -> bool:
    """Whether these request cookies turn "browse as WeCom" on."""
    return cookies.get(AS_WECOM_COOKIE) == "1"


def is_browsing_as_wechat(cookies: Mapping[str, str]) -> bool:
    """Whether these request cookies turn "browse as WeChat" on."""
    return cookies.get(AS_WECHAT_COOKIE) == "1"


class BrowseAsWeChatMiddleware:
    """Rewrites the User-Agent of requests carrying ``demo_as_wechat=1`` to a WeChat one.

    Requests without the cookie pass untouched, so a real WeChat (or a test sending a WeChat
    user agent) works as it would in production.
    """

    def __init__(self, app: ASGIApp, *, user_agent: str = WECHAT_IOS_UA) -> None:
        self.app = app
        self._user_agent = user_agent.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers: list[tuple[bytes, bytes]] = list(scope["headers"])
            cookie = b"; ".join(value for name, value in headers if name.lower() == b"cookie")
            cookies = cookie_parser(cookie.decode("latin-1")) if cookie else {}
            agent = (
                _WECOM_UA
                if is_browsing_as_wecom(cookies)
                else self._user_agent
                if is_browsing_as_wechat(cookies)
                else None
            )
            if agent is not None:
                # A copy: the server's scope stays as it was received.
                scope = dict(scope)
                scope["headers"] = [
                    (name, value) for name, value in headers if name.lower() != b"user-agent"
                ]
                scope["headers"].append((b"user-agent", agent))
        await self.app(scope, receive, send)


_WECOM_UA = WECOM_IOS_UA.encode("latin-1")
