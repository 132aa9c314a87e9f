"""Log in with WeChat in a Flask app: a page that greets the user, and a JSON endpoint.

Run it from the repository root, against the local WeChat emulator:

    python -m pip install -e ".[examples]"      # once: uvicorn, FastAPI, Flask, Django
    python -m wxauth_middleware.emulator      # terminal 1: "WeChat" on http://127.0.0.1:8400
    python examples/flask_app.py              # terminal 2: this app on http://127.0.0.1:8000

(`--port 8001` picks another port. A real WSGI server works too:
`gunicorn --chdir examples -b 127.0.0.1:8000 flask_app:app`.)

Then open http://127.0.0.1:8000/ with a WeChat user agent, e.g. Chrome DevTools -> Network
conditions -> User agent:

    Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like
    Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/zh_CN

approve on the emulator's consent page, and the page greets you as 小明🐼; /api/me answers
with the user as JSON. Any other browser is let through anonymously (and /api/me answers 401).
No WeChat user agent at hand? `python -m wxauth_middleware.demo` shows the same login in any
browser. The options (app id, secret, emulator address) come from dev_settings.py beside this
file.
"""

from __future__ import annotations

import argparse

from dev_settings import WXAUTH_OPTIONS
from flask import Flask, render_template_string

from wxauth_middleware import WeChatAuthWSGIMiddleware, WeChatUser
from wxauth_middleware.contrib.flask import (
    current_wechat_user,
    login_required,
    require_wechat_user,
)

app = Flask(__name__)
# One line: WeChat-browser visits without a session are sent to WeChat and come back logged in.
# Wrapping app.wsgi_app (not app) keeps `app` the Flask object for `flask run` and extensions.
app.wsgi_app = WeChatAuthWSGIMiddleware(app.wsgi_app, **WXAUTH_OPTIONS)  # type: ignore[method-assign]


@app.get("/")
def home() -> str:
    # A WeChatUser, or None for a visitor from another browser. Jinja escapes the nickname
    # (user input) in the template: templates rendered from strings autoescape.
    return render_template_string(PAGE, user=current_wechat_user())


@app.get("/api/me")
@login_required  # anonymous callers get 401 {"error": "login_required", ...}
def me() -> dict[str, str | None]:
    user = require_wechat_user()  # the user login_required let in
    assert isinstance(user, WeChatUser)  # this site logs in with WeChat only
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
<title>wxauth Flask example</title>
{% if user %}
<p>你好, <b id=nickname>{{ user.nickname or user.openid }}</b></p>
{% else %}
<p>你好, stranger: open this page inside WeChat to log in.</p>
{% endif %}
<p><a href="{{ url_for('me') }}">/api/me</a></p>
</html>
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The wxauth-middleware Flask example.")
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (8000)")
    args = parser.parse_args(argv)
    app.run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
