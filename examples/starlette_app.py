"""Log in with WeChat in a Starlette app, with Starlette's `request.user` and `@requires`.

Run it from the repository root, against the local WeChat emulator:

    python -m pip install -e ".[examples]"      # once: uvicorn, FastAPI, Flask, Django
    python -m wxauth_middleware.emulator      # terminal 1: "WeChat" on http://127.0.0.1:8400
    python examples/starlette_app.py          # terminal 2: this app on http://127.0.0.1:8000

(`--port 8001` picks another port; `uvicorn --app-dir examples starlette_app:app` works too.)

Then open http://127.0.0.1:8000/ with a WeChat user agent, e.g. Chrome DevTools -> Network
conditions -> User agent:

    Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like
    Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/zh_CN

approve on the emulator's consent page, and the page greets you as 小明🐼; /api/me answers
with the user as JSON. Other browsers see the page anonymously, and /api/me answers them 403.
From a terminal, with the emulator started as `python -m wxauth_middleware.emulator
--auto-approve` (no consent page):

    curl -sL -c /tmp/jar -b /tmp/jar -A "MicroMessenger/8.0.42" http://127.0.0.1:8000/

No WeChat user agent at hand? `python -m wxauth_middleware.demo` shows the same login in any
browser. The options (app id, secret, emulator address) come from dev_settings.py beside this
file.
"""

from __future__ import annotations

import argparse
from html import escape

import uvicorn
from dev_settings import WXAUTH_OPTIONS
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware.contrib.starlette import WeChatAuthBackend, WeChatStarletteUser


async def home(request: Request) -> HTMLResponse:
    if request.user.is_authenticated:
        # display_name: the nickname (the openid with snsapi_base). Nicknames are user input:
        # always escape them.
        greeting = f"你好, <b id=nickname>{escape(request.user.display_name)}</b>"
    else:
        greeting = "你好, stranger: open this page inside WeChat to log in."
    return HTMLResponse(PAGE.format(greeting=greeting))


@requires("authenticated")  # anonymous callers get a 403
async def me(request: Request) -> JSONResponse:
    user: WeChatStarletteUser = request.user
    return JSONResponse(
        {
            "openid": user.wechat.openid,  # .wechat: the WeChatUser
            "unionid": user.wechat.unionid,
            "nickname": user.display_name,
            "scopes": request.auth.scopes,  # ["authenticated", "wechat", "snsapi_base", ...]
        }
    )


PAGE = """<!doctype html>
<html lang="zh-CN">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wxauth Starlette example</title>
<p>{greeting}</p>
<p><a href="/api/me">/api/me</a></p>
</html>
"""

app = Starlette(
    routes=[Route("/", home), Route("/api/me", me)],
    middleware=[
        # The first listed is the outermost: WeChatAuthMiddleware finds the user, then
        # AuthenticationMiddleware turns it into request.user and request.auth.
        Middleware(WeChatAuthMiddleware, **WXAUTH_OPTIONS),
        Middleware(AuthenticationMiddleware, backend=WeChatAuthBackend()),
    ],
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The wxauth-middleware Starlette example.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (8000)")
    args = parser.parse_args(argv)
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
