"""Log in with WeChat in a FastAPI app: a page that greets the user, and a JSON endpoint.

Run it from the repository root, against the local WeChat emulator:

    python -m pip install -e ".[examples]"      # once: uvicorn, FastAPI, Flask, Django
    python -m wxauth_middleware.emulator      # terminal 1: "WeChat" on http://127.0.0.1:8400
    python examples/fastapi_app.py            # terminal 2: this app on http://127.0.0.1:8000

(`--port 8001` picks another port; `uvicorn --app-dir examples fastapi_app:app` works too.)

Then open http://127.0.0.1:8000/ with a WeChat user agent, e.g. Chrome DevTools -> Network
conditions -> User agent:

    Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like
    Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/zh_CN

approve on the emulator's consent page, and the page greets you as 小明🐼; /api/me answers
with the user as JSON. Any other browser is let through anonymously (and /api/me answers 401).
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
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware.contrib.fastapi import CurrentWeChatUser, OptionalWeChatUser, install

app = FastAPI(title="wxauth-middleware FastAPI example")
# One line: WeChat-browser visits without a session are sent to WeChat and come back logged in.
app.add_middleware(WeChatAuthMiddleware, **WXAUTH_OPTIONS)
install(app)  # /api/me's 401 body: {"error": "login_required", "message": ...}


@app.get("/", response_class=HTMLResponse)
async def home(user: OptionalWeChatUser) -> str:
    # OptionalWeChatUser: a WeChatUser, or None for a visitor from another browser.
    if user is None:
        greeting = "你好, stranger: open this page inside WeChat to log in."
    else:
        # Nicknames are user input: always escape them.
        greeting = f"你好, <b id=nickname>{escape(user.nickname or user.openid)}</b>"
    return PAGE.format(greeting=greeting)


@app.get("/api/me")
async def me(user: CurrentWeChatUser) -> dict[str, str | None]:
    # CurrentWeChatUser: always a WeChatUser; anonymous callers got a 401 before getting here.
    return {
        "openid": user.openid,
        "unionid": user.unionid,
        "nickname": user.nickname,
        "scope": user.scope,
    }


PAGE = """<!doctype html>
<html lang="zh-CN">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wxauth FastAPI example</title>
<p>{greeting}</p>
<p><a href="/api/me">/api/me</a></p>
</html>
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The wxauth-middleware FastAPI example.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (8000)")
    args = parser.parse_args(argv)
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
