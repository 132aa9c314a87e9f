"""The two WSGI apps bench/wsgi_logins.py serves, each in a gunicorn process of its own (gthread,
one worker x 8 threads), logging in against the emulator at EMULATOR_URL with SCOPE:

    gunicorn -k gthread -w 1 --threads 8 --chdir bench '_wsgi_apps:app("ours", URL, SCOPE)'
    gunicorn -k gthread -w 1 --threads 8 --chdir bench '_wsgi_apps:app("floor", URL, SCOPE)'

"ours" is `WeChatAuthWSGIMiddleware` (default options but the scope) around a page. The floor
is the least a WSGI login can cost in this server, calling WeChat with urllib3's pool (the one
requests is built on): a page visit without a valid session cookie gets a 302 to WeChat's
authorize URL and a signed state cookie; the callback checks the state against that cookie,
GETs /sns/oauth2/access_token (and for snsapi_userinfo /sns/userinfo too) over urllib3's
keep-alive connections, sets a signed session cookie and answers 302 back to the page; the page
checks the session's signature. No user-agent rules, error pages, retries or deadlines.
"""

from __future__ import annotations

import json
import secrets
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import urllib3
from _apps import CALLBACK, _sign, _unsign
from _common import APP_ID, APP_SECRET, SECRET_KEY

from wxauth_middleware import WeChatAuthWSGIMiddleware, get_wechat_user

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PLAIN = ("Content-Type", "text/plain; charset=utf-8")


def page(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The site's page: who is logged in, as text."""
    user = get_wechat_user(environ)
    body = f"hello {user.openid if user else '-'}".encode()
    start_response("200 OK", [PLAIN, ("Content-Length", str(len(body)))])
    return [body]


def _answer(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    start_response(status, [*headers, PLAIN, ("Content-Length", str(len(body)))])
    return [body]


def floor(emulator: str, scope: str) -> WSGIApplication:
    parts = urlsplit(emulator)
    # At most 8 connections, one per server thread; a thread waits for a free one.
    upstream = urllib3.HTTPConnectionPool(
        parts.hostname or "", parts.port or 80, maxsize=8, block=True, retries=False
    )
    authorize = f"{emulator}/connect/oauth2/authorize?appid={APP_ID}&redirect_uri="
    token = (
        f"/sns/oauth2/access_token?appid={APP_ID}&secret={APP_SECRET}&grant_type=authorization_code"
    )

    def call(target: str) -> dict[str, object] | None:
        response = upstream.request("GET", target)
        answer = json.loads(response.data) if response.status == 200 else None
        return answer if isinstance(answer, dict) else None

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        cookies: dict[str, str] = {}
        for pair in environ.get("HTTP_COOKIE", "").split(";"):
            key, _, item = pair.strip().partition("=")
            cookies[key] = item
        path = environ.get("PATH_INFO", "")
        query_string = environ.get("QUERY_STRING", "")
        if path == CALLBACK:
            query = dict(parse_qsl(query_string))
            state = query.get("state", "")
            saved = _unsign(cookies.get("st", "")) or ""
            saved_state, _, back = saved.partition(" ")
            if not state or state != saved_state or "code" not in query:
                return _answer(start_response, "400 Bad Request", [], b"bad state")
            answer = call(f"{token}&code={quote(query['code'])}")
            openid = answer.get("openid") if answer else None
            if answer and isinstance(openid, str) and scope == "snsapi_userinfo":
                info = call(
                    f"/sns/userinfo?access_token={quote(str(answer.get('access_token')))}"
                    f"&openid={quote(openid)}&lang=zh_CN"
                )
                openid = info.get("openid") if info else None
            if not isinstance(openid, str):
                return _answer(start_response, "502 Bad Gateway", [], b"no openid")
            session = urlsafe_b64encode(f"{openid} {int(time.time())}".encode()).decode()
            headers = [
                ("Location", unquote(back)),
                ("Set-Cookie", f"s={_sign(session)}; Path=/; HttpOnly; SameSite=Lax"),
                ("Set-Cookie", "st=; Path=/; Max-Age=0"),
            ]
            return _answer(start_response, "302 Found", headers, b"")
        signed = _unsign(cookies.get("s", ""))
        if signed is not None:
            user = urlsafe_b64decode(signed).decode().split(" ")[0]
            return _answer(start_response, "200 OK", [], f"hello {user}".encode())
        state = secrets.token_hex(8)  # WeChat takes [a-zA-Z0-9] only
        back = quote(path + ("?" + query_string if query_string else ""))
        redirect = quote(f"http://{environ.get('HTTP_HOST', '')}{CALLBACK}", safe="")
        location = (
            f"{authorize}{redirect}&response_type=code&scope={scope}&state={state}#wechat_redirect"
        )
        headers = [
            ("Location", location),
            ("Set-Cookie", f"st={_sign(state + ' ' + back)}; Path=/; HttpOnly; Max-Age=600"),
        ]
        return _answer(start_response, "302 Found", headers, b"")

    return app


def app(kind: str, emulator: str, scope: str) -> WSGIApplication:
    """gunicorn's app factory: "ours" or "floor", against `emulator`, logging in with `scope`."""
    if kind == "floor":
        return floor(emulator, scope)
    return WeChatAuthWSGIMiddleware(
        page,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        secret_key=SECRET_KEY,
        authorize_url=f"{emulator}/connect/oauth2/authorize",
        api_base_url=emulator,
        scope="snsapi_userinfo" if scope == "snsapi_userinfo" else "snsapi_base",
    )
