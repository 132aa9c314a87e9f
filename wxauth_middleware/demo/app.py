"""The demo site: a few pages behind `WeChatAuthMiddleware`, with the WeChat emulator inside.

Layout of the one Starlette app `create_demo_app` returns::

    BrowseAsWeChatMiddleware         demo only: the "Browse as WeChat" cookie rewrites the UA
    ├── /_wechat/...                 the WeChat emulator (WeChat's own pages: no middleware)
    ├── POST /logout                 the middleware's logout (cookie, and stored session)
    ├── /logged-out                  "logged out", before WeChat mode would log in again
    ├── POST /_demo/as-wechat        switches "Browse as WeChat" on or off
    └── everything else              WeChatAuthMiddleware
        ├── /wxauth/callback         answered by the middleware
        ├── /                        home
        ├── /profile                 every WeChatUser field
        ├── /api/me                  the user as JSON
        ├── /share                   a share card set up with the JS-SDK (demo/share.py)
        ├── /desktop                 other browsers log in by scanning (demo/desktop.py)
        └── /wxauth/scan/...         the scan login's QR-code page, status and phone pages

The middleware reaches the emulator's API in-process through `httpx.ASGITransport`, so the demo
needs one port and no network at all. Served at a loopback origin, the demo follows the host the
browser used (`localhost`, `127.0.0.1` or `[::1]`): the middleware builds `redirect_uri` from the
request, and the emulator accepts all three as registered domains, so WeChat sends the browser
back to the host that holds its login cookie. Sessions are the signed cookie itself, or, with
`redis_url`, kept in that Redis (the middleware's `redis_url` and `redis_prefix` options).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Message, Scope

from wxauth_middleware import (
    HTTPRequest,
    HTTPResponse,
    OfficialAccount,
    WeChatAuthError,
    WeChatAuthMiddleware,
    WeChatUser,
    WeComApp,
    get_wechat_user,
    is_wechat_browser,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator
from wxauth_middleware.emulator.app import is_loopback_host
from wxauth_middleware.pages import wants_json

from .as_wechat import AS_WECHAT_COOKIE, BrowseAsWeChatMiddleware, is_browsing_as_wechat
from .desktop import DESKTOP_PATH, DESKTOP_RULE, desktop
from .pages import error_page, home_page, logged_out_page, profile_page
from .share import share
from .wecom import (
    WECOM_DESKTOP_PATH,
    WECOM_DESKTOP_RULE,
    WECOM_HOST,
    WECOM_PATH,
    as_wecom,
    demo_corp,
    demo_wecom_app,
    wecom_desktop,
    wecom_page,
)

__all__ = [
    "EMULATOR_PREFIX",
    "SECOND_APP_ID",
    "SECOND_HOST",
    "SESSION_COOKIE",
    "STRICT_DAILY_QUOTA",
    "STRICT_MINUTE_QUOTA",
    "create_demo_app",
]

#: Where the emulator is mounted: the browser sees WeChat's pages under this prefix.
EMULATOR_PREFIX = "/_wechat"
#: The middleware's session cookie (its default name), deleted by the demo's log-out button.
SESSION_COOKIE = "wxauth_session"
# The host the middleware's API client uses for the in-process emulator; never resolved.
EMULATOR_API_BASE = "http://wechat-emulator"


# The middleware's own logout path (its default), which the demo's log-out button goes through.
LOGOUT_PATH = "/wxauth/logout"
# Where the log-out button lands: outside the middleware, so that WeChat mode does not log the
# visitor in again before they have seen that they were logged out.
LOGGED_OUT_PATH = "/logged-out"
#: Strict mode's quotas: calls of each WeChat API a day (Beijing time) and a minute.
STRICT_DAILY_QUOTA = 2000
STRICT_MINUTE_QUOTA = 100
# The names a browser may use for this machine: a loopback demo answers on any of them.
_LOOPBACK_DOMAINS = ("127.0.0.1", "localhost", "::1")
#: The second Official Account the demo can serve (`second_account`), on a host of its own.
SECOND_APP_ID = "wx5a6b7c8d9e0f1a2b"
_SECOND_APP_SECRET = "5ec0nd5ec0nd5ec0nd5ec0nd5ec0nd5e"  # noqa: S105 - made up, the emulator's
#: Its default host: browsers resolve every *.localhost name to this machine.
SECOND_HOST = "second.localhost"


def create_demo_app(
    *,
    public_url: str,
    auto_approve: bool = False,
    allow_remote: bool = False,
    redis_url: str | None = None,
    redis_prefix: str = "wxauth:",
    strict: bool = False,
    ip_allowlist: Sequence[str] = (),
    js_domains: Sequence[str] = (),
    second_account: str | None = None,
    wecom: bool = False,
) -> Starlette:
    """The demo site with the emulator embedded, served at `public_url` (the browser's origin,
    e.g. "http://127.0.0.1:8000").

    A loopback `public_url` (localhost, 127.0.0.1, [::1]) only places the emulator's pages:
    the site itself follows the host each request names, so the login works whichever of those
    names the browser was given. Any other `public_url` is the one origin of the site.

    `auto_approve` makes the emulator log in as the default persona without a consent page.
    `allow_remote` lets the emulator answer clients on other machines (it answers loopback
    clients only otherwise). `redis_url` keeps the sessions in that Redis, under the keys'
    `redis_prefix` (the middleware's options of those names); a bad URL raises
    `ConfigurationError` (a ValueError) here.

    `strict` turns on the emulated account's go-live settings, as on a live account: the IP
    allow-list for token calls (`ip_allowlist`; empty: the demo's own calls get 40164), the
    JS接口安全域名 (`js_domains`; empty: the share page gets ``config:invalid url domain``) and
    quotas (STRICT_DAILY_QUOTA, STRICT_MINUTE_QUOTA). Lists without `strict` are a ValueError.

    `second_account`, a loopback host name such as "second.localhost", serves a second
    Official Account there (the middleware's `accounts`), beside the first on 127.0.0.1,
    localhost and [::1]: the same persona has another openid in each, and one unionid.

    `wecom` (a loopback demo only) also serves a WeCom (企业微信) app on `WECOM_HOST`, with
    the emulator playing its corp: the WeCom page, its "Browse as WeCom" switch, the JS-SDK
    with wx.agentConfig, and WeCom's desktop login (demo/wecom.py).
    """
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"public_url must be an origin such as 'http://127.0.0.1:8000', not {public_url!r}"
        )
    public_url = public_url.rstrip("/")
    local = is_loopback_host(parts.hostname)
    if wecom and not local:
        raise ValueError(
            "wecom needs a loopback demo (public_url on 127.0.0.1, localhost or [::1]): the "
            f"WeCom app is served on {WECOM_HOST}, another name for this machine"
        )
    if not strict and (ip_allowlist or js_domains):
        raise ValueError(
            "ip_allowlist and js_domains are strict-mode settings: turn strict on (--strict)"
        )
    domains = _LOOPBACK_DOMAINS if local else (parts.hostname,)
    if second_account is not None:
        second_account = _second_host(second_account, local)
        domains = (*domains, second_account)
    emulator = WeChatEmulator(
        app_id=DEFAULT_APP_ID,
        app_secret=DEFAULT_APP_SECRET,
        # WeChat only sends users back to a registered domain: register the demo's own host(s).
        domains=domains,
        auto_approve=auto_approve,
        allow_remote=allow_remote,
        ip_allowlist=list(ip_allowlist) if strict else None,
        js_domains=list(js_domains) if strict else None,
        daily_quota=STRICT_DAILY_QUOTA if strict else None,
        minute_quota=STRICT_MINUTE_QUOTA if strict else None,
        accounts=() if second_account is None else ((SECOND_APP_ID, _SECOND_APP_SECRET),),
        # A loopback demo also plays a WeCom corp, for its app on WECOM_HOST.
        wecom=demo_corp(parts.port) if wecom else None,
    )
    # One account for every host; or the first Official Account on the loopback names and
    # the second one, or the WeCom app, on its own host.
    accounts: list[OfficialAccount | WeComApp] | None = None
    if second_account is not None or wecom:
        accounts = [OfficialAccount(DEFAULT_APP_ID, DEFAULT_APP_SECRET, hosts=_LOOPBACK_DOMAINS)]
        if second_account is not None:
            accounts.append(
                OfficialAccount(SECOND_APP_ID, _SECOND_APP_SECRET, hosts=[second_account])
            )
        if wecom:
            accounts.append(demo_wecom_app(f"{public_url}{EMULATOR_PREFIX}", EMULATOR_API_BASE))
    site = Router(
        routes=[
            Route("/", _home, methods=["GET"]),
            Route("/profile", _profile, methods=["GET"]),
            Route("/api/me", _api_me, methods=["GET"]),
            Route(DESKTOP_PATH, desktop, methods=["GET"]),
            Route("/share", share, methods=["GET"]),
            Route(WECOM_PATH, wecom_page, methods=["GET"]),
            Route(WECOM_DESKTOP_PATH, wecom_desktop, methods=["GET"]),
        ]
    )
    auth = WeChatAuthMiddleware(
        site,
        app_id=None if accounts else DEFAULT_APP_ID,
        app_secret=None if accounts else DEFAULT_APP_SECRET,
        accounts=accounts,
        # A fresh key per start: restarting the demo logs everyone out, which is fine here.
        secret_key=secrets.token_urlsafe(),
        scope="snsapi_userinfo",
        # Snapshot-mode visitors get no session; the demo shows them its own page, flagged.
        snapshot_users="app",
        # Loopback: redirect_uri from the request's Host, so localhost stays localhost.
        public_url=None if local else public_url,
        authorize_url=f"{public_url}{EMULATOR_PREFIX}/connect/oauth2/authorize",
        api_base_url=EMULATOR_API_BASE,
        session_cookie=SESSION_COOKIE,
        on_error=demo_error_response,
        # httpx before 0.28 types its ASGI app with plain dicts, Starlette's apps (this one)
        # with MutableMapping: the same app at run time, so typed loosely here for both.
        transport=httpx.ASGITransport(app=cast("Any", emulator)),
        logout_path=LOGOUT_PATH,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        rules=[DESKTOP_RULE, WECOM_DESKTOP_RULE] if wecom else [DESKTOP_RULE],
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mounted apps get no lifespan events: close the middleware's API client here.
        yield
        await auth.aclose()

    app = Starlette(
        routes=[
            Mount(EMULATOR_PREFIX, app=emulator),
            Route("/logout", logout, methods=["POST"]),
            Route(LOGGED_OUT_PATH, logged_out, methods=["GET"]),
            Route("/_demo/as-wechat", as_wechat_switch, methods=["POST"]),
            Route("/_demo/as-wecom", as_wecom, methods=["POST"]),
            Mount("", app=auth),
        ],
        middleware=[Middleware(BrowseAsWeChatMiddleware)],
        lifespan=lifespan,
    )
    app.state.public_url = None if local else public_url
    app.state.emulator = emulator
    port = f":{parts.port}" if parts.port else ""
    app.state.wecom_url = f"http://{WECOM_HOST}{port}{WECOM_PATH}" if wecom else None
    app.state.auth = auth
    return app


def _second_host(host: str, local: bool) -> str:
    """The second account's host name, checked: a loopback name other than the first's."""
    name = host.strip().lower()
    if not local:
        raise ValueError(
            "second_account needs a loopback demo (public_url on 127.0.0.1, localhost or "
            "[::1]): its host is another name for this machine"
        )
    loopback = name.endswith(".localhost") or (name.startswith("127.") and is_loopback_host(name))
    if not loopback or name in _LOOPBACK_DOMAINS:
        raise ValueError(
            f"second_account {host!r} must be another loopback host name than 127.0.0.1, "
            "localhost and [::1] (the first account's), such as 'second.localhost' or "
            "'127.0.0.2'"
        )
    return name


# -- the pages behind the middleware ---------------------------------------------------------


def _in_wechat(request: Request) -> bool:
    return is_wechat_browser(request.headers.get("user-agent", ""))


async def _home(request: Request) -> StarletteResponse:
    user = get_wechat_user(request)
    page = home_page(
        user if isinstance(user, WeChatUser) else None,
        as_wechat=is_browsing_as_wechat(request.cookies),
        in_wechat=_in_wechat(request),
        public_url=request.app.state.public_url or _request_origin(request),
        wecom_url=request.app.state.wecom_url,
    )
    return HTMLResponse(page, headers={"cache-control": "no-store"})


def _request_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def logged_out(request: Request) -> StarletteResponse:
    page = logged_out_page(as_wechat=is_browsing_as_wechat(request.cookies))
    return HTMLResponse(page, headers={"cache-control": "no-store"})


async def _profile(request: Request) -> StarletteResponse:
    user = get_wechat_user(request)
    page = profile_page(
        user if isinstance(user, WeChatUser) else None,
        as_wechat=is_browsing_as_wechat(request.cookies),
        in_wechat=_in_wechat(request),
    )
    return HTMLResponse(page, headers={"cache-control": "no-store"})


async def _api_me(request: Request) -> StarletteResponse:
    user = get_wechat_user(request)
    if user is None:
        # Only non-WeChat clients get here anonymous: the middleware answers WeChat's itself.
        return JSONResponse(
            {
                "logged_in": False,
                "error": "not_logged_in",
                "message": "No WeChat user: this client is not the WeChat browser, so the "
                "middleware let it through without one.",
            },
            status_code=401,
            headers={"cache-control": "no-store"},
        )
    return JSONResponse(
        {"logged_in": True, "user": dataclasses.asdict(user)},
        headers={"cache-control": "no-store"},
    )


def demo_error_response(error: WeChatAuthError, request: HTTPRequest) -> HTTPResponse | None:
    # The middleware's errors (a refused consent above all) as a demo page that offers a way
    # out of "Browse as WeChat"; JSON clients keep the middleware's default JSON.
    if wants_json(request):
        return None
    as_wechat = is_browsing_as_wechat(cookie_parser(request.header("cookie")))
    body = error_page(error, as_wechat=as_wechat).encode("utf-8")
    return HTTPResponse(
        error.status,
        (("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")),
        body,
    )


# -- the demo's own controls (not behind the middleware) ---------------------------------------


async def _form(request: Request) -> dict[str, str]:
    values: dict[str, str] = {}
    body = (await request.body()).decode("utf-8", "replace")
    for key, value in parse_qsl(body, keep_blank_values=True):
        values.setdefault(key, value)
    return values


def _local_path(value: str) -> str:
    # Only a path on this site: never an absolute URL or a scheme-relative "//host".
    if value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def _cross_site(request: Request) -> bool:
    # Browsers say where a form post comes from; refuse other sites' forms (cheap CSRF guard).
    return request.headers.get("sec-fetch-site", "") == "cross-site"


def _forbidden() -> StarletteResponse:
    return PlainTextResponse("Forbidden: cross-site form post.", status_code=403)


async def logout(request: Request) -> StarletteResponse:
    # The middleware's own logout, so that a session kept in Redis ends too (not only the
    # cookie), with this post's headers: it logs out only a same-origin post. Answered as a
    # 303 to the "logged out" page, since this was a form post.
    answer = await _call(request.app.state.auth, request.scope, LOGOUT_PATH, "next=/")
    if answer.status_code != 302:
        # Another site's form (403, with the logout button), or the store did not answer
        # (503): not logged out, and the page says so.
        return answer
    response = RedirectResponse(LOGGED_OUT_PATH, status_code=303)
    for name, value in answer.headers.items():
        if name == "set-cookie":
            response.headers.append(name, value)
    return response


async def _call(app: ASGIApp, scope: Scope, path: str, query: str) -> StarletteResponse:
    """`app`'s answer to a bodyless POST of `path?query` with the headers of `scope`."""
    sub_scope = {
        **scope,
        "method": "POST",
        "path": path,
        "raw_path": path.encode("ascii"),
        "root_path": "",
        "query_string": query.encode("ascii"),
    }
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    body = bytearray()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(sub_scope, receive, send)
    response = StarletteResponse(bytes(body), status_code=status)
    # The app's own headers, as they were (content-length included).
    response.raw_headers = headers
    return response


async def as_wechat_switch(request: Request) -> StarletteResponse:
    if _cross_site(request):
        return _forbidden()
    form = await _form(request)
    choice = form.get("as_wechat", "")
    if choice not in ("on", "off"):
        return PlainTextResponse("as_wechat must be 'on' or 'off'.", status_code=400)
    response = RedirectResponse(_local_path(form.get("next", "/")), status_code=303)
    if choice == "on":
        # A browser-session cookie: closing the browser ends "Browse as WeChat".
        response.set_cookie(AS_WECHAT_COOKIE, "1", path="/", httponly=True, samesite="lax")
    else:
        response.delete_cookie(AS_WECHAT_COOKIE, path="/", httponly=True, samesite="lax")
    return response
