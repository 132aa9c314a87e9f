"""A demo site for wxauth_middleware: the whole WeChat login in a desktop browser, offline.

``python -m wxauth_middleware.demo`` serves a few pages behind `WeChatAuthMiddleware` with the
WeChat emulator embedded in the same process; ``create_demo_app(public_url=...)`` builds that
ASGI app. A demo-only middleware lets a desktop browser "browse as WeChat": it is part of this
package only, never of the middleware's options.
"""

from __future__ import annotations

from .app import EMULATOR_PREFIX, SESSION_COOKIE, create_demo_app
from .as_wechat import (
    AS_WECHAT_COOKIE,
    WECHAT_IOS_UA,
    BrowseAsWeChatMiddleware,
    is_browsing_as_wechat,
)

__all__ = [
    "AS_WECHAT_COOKIE",
    "EMULATOR_PREFIX",
    "SESSION_COOKIE",
    "WECHAT_IOS_UA",
    "BrowseAsWeChatMiddleware",
    "create_demo_app",
    "is_browsing_as_wechat",
]
