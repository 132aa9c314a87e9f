"""Behind a reverse proxy: the middleware never reads X-Forwarded-* itself.

The trust model (docs/proxy.md): `public_url`, when set, decides the redirect_uri, the cookies'
Secure flag and the origin, whatever the request says. Without it, the middleware uses the
request's own scheme (ASGI `scope["scheme"]`, WSGI `wsgi.url_scheme`) and its Host header
(syntax-checked; a malformed one gets a 400). Behind a proxy, the server layer that knows which
proxies to trust rewrites those: uvicorn's ProxyHeadersMiddleware (`--proxy-headers
--forwarded-allow-ips`), gunicorn's `--forwarded-allow-ips` + `secure_scheme_headers`,
werkzeug's ProxyFix. These tests pin down that division of labour, in-process and through real
uvicorn and gunicorn processes behind an emulated TLS-terminating proxy.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit
from wsgiref.validate import validator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware, get_wechat_user

from .servers import free_port, python_command, running_server
from .support import (
    CHROME_UA,
    WECHAT_UA,
    Middleware,
    Stack,
    Switchboard,
    inner_wsgi_app,
    middleware_options,
    user_json,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PAGE = {"user-agent": WECHAT_UA, "accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
# The site's public name, as the browser (and WeChat's registered domain) knows it.
PUBLIC = "shop.example.com"
# The Host the app server sees when the proxy does NOT pass the browser's on: nginx's default
# for `proxy_pass http://127.0.0.1:8000` is the upstream's address.
INTERNAL = "127.0.0.1:8000"
BROWSER_IP = "203.0.113.7"  # TEST-NET-3: the phone's public address, seen by the proxy
# The login-state cookie: a __Host- one where the browser sees https.
STATE_COOKIES = ("wxauth_session_login=", "__Host-wxauth_session_login=")
# The environment variable that tells the server-process factories where "WeChat" is.
WECHAT_URL_ENV = "PROXY_TEST_WECHAT_URL"


# -- helpers -----------------------------------------------------------------------------------


def redirect_uri(response: httpx.Response) -> str:
    """The redirect_uri of the authorize URL a login start sent the browser to."""
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    [uri] = query["redirect_uri"]
    return uri


def state_cookie(response: httpx.Response) -> str:
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith(STATE_COOKIES)]
    return cookie


def is_secure(cookie: str) -> bool:
    return "secure" in [attribute.strip().lower() for attribute in cookie.split(";")[1:]]


@pytest.fixture
def wsgi_stack(wechat_server: tuple[Switchboard, str]) -> Stack:
    switchboard, url = wechat_server
    return Stack("wsgi", switchboard, url)


@asynccontextmanager
async def asgi_browser(
    app: Any, middleware: WeChatAuthMiddleware, *, client_ip: str, origin: str = f"http://{PUBLIC}"
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser whose connection to the ASGI server comes from `client_ip` (the peer address
    the server puts in `scope["client"]`: the proxy's, when there is one)."""
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=origin, headers=PAGE) as client:
            yield client
    finally:
        await middleware.aclose()


@contextmanager
def wsgi_browser(
    app: WSGIApplication, middleware: WeChatAuthWSGIMiddleware, *, origin: str = f"http://{PUBLIC}"
) -> Iterator[httpx.Client]:
    """A browser in front of a WSGI stack, served in-process."""
    transport = httpx.WSGITransport(app=validator(app))
    try:
        with httpx.Client(transport=transport, base_url=origin, headers=PAGE) as client:
            yield client
    finally:
        middleware.close()


def uvicorn_proxy_headers(middleware: WeChatAuthMiddleware, trusted_hosts: str) -> Any:
    """`middleware` behind uvicorn's ProxyHeadersMiddleware, as `uvicorn --proxy-headers
    --forwarded-allow-ips=<trusted_hosts>` serves it."""
    # uvicorn types scopes as its own TypedDicts, starlette as mappings: the same thing at run
    # time, not to mypy.
    return ProxyHeadersMiddleware(cast(Any, middleware), trusted_hosts=trusted_hosts)


def behind_proxy_layer(middleware: Middleware) -> Any:
    """The middleware wrapped by its server-side proxy layer, configured to trust 127.0.0.1:
    uvicorn's ProxyHeadersMiddleware (ASGI) or werkzeug's ProxyFix (WSGI)."""
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        return ProxyFix(validator(middleware), x_proto=1, x_host=1)
    return uvicorn_proxy_headers(middleware, trusted_hosts="127.0.0.1")


async def visit(app: Any, middleware: Middleware, **headers: str) -> httpx.Response:
    """One WeChat page visit without a session, from 127.0.0.1 (a trusted proxy's address)."""
    extra = {name.replace("_", "-"): value for name, value in headers.items()}
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        with wsgi_browser(app, middleware) as client:
            return client.get("/page?x=1", headers=extra)
    async with asgi_browser(app, middleware, client_ip="127.0.0.1") as client:
        return await client.get("/page?x=1", headers=extra)


# -- the middleware alone: forwarded headers are never read -------------------------------------

FORWARDED_HEADERS = [
    {"x-forwarded-proto": "https"},
    {"x-forwarded-host": "evil.example"},
    {"x-forwarded-proto": "https", "x-forwarded-host": "evil.example", "x-forwarded-port": "443"},
    {"forwarded": "for=203.0.113.7;proto=https;host=evil.example"},
    {"x-forwarded-ssl": "on"},
    {"x-forwarded-protocol": "ssl"},
    {"x-forwarded-scheme": "https"},
    {"x-url-scheme": "https"},
    {"front-end-https": "on"},
    {"x-original-host": "evil.example"},
    {"x-forwarded-server": "evil.example"},
    {"x-forwarded-for": "203.0.113.7"},
]


@pytest.mark.anyio
@pytest.mark.parametrize("headers", FORWARDED_HEADERS, ids=lambda h: ",".join(h))
async def test_middleware_alone_ignores_every_forwarded_header(
    stack: Stack, headers: dict[str, str]
) -> None:
    # Whoever can reach the server can send these: only a server layer that knows the proxy's
    # address may act on them, so the middleware never does.
    middleware = stack.middleware()
    async with stack.phone(middleware, origin=f"http://{PUBLIC}") as phone:
        start = await phone.get("/page", headers=headers)
    assert redirect_uri(start) == f"http://{PUBLIC}/wxauth/callback"
    assert not is_secure(state_cookie(start))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("origin", "expected", "secure"),
    [
        (f"http://{PUBLIC}", f"http://{PUBLIC}/wxauth/callback", False),
        (f"https://{PUBLIC}", f"https://{PUBLIC}/wxauth/callback", True),
        (f"https://{PUBLIC}:443", f"https://{PUBLIC}/wxauth/callback", True),
        (f"http://{PUBLIC}:80", f"http://{PUBLIC}/wxauth/callback", False),
        (f"http://{INTERNAL}", f"http://{INTERNAL}/wxauth/callback", False),
        ("https://[::1]:8443", "https://[::1]:8443/wxauth/callback", True),
    ],
)
async def test_without_public_url_the_request_scheme_and_host_decide(
    stack: Stack, origin: str, expected: str, secure: bool
) -> None:
    middleware = stack.middleware()
    async with stack.phone(middleware, origin=origin) as phone:
        start = await phone.get("/page")
    assert redirect_uri(start) == expected
    assert is_secure(state_cookie(start)) is secure


MALFORMED_HOSTS = [
    "evil.example/path",
    "user@evil.example",
    "evil.example:99999999",
    "evil.example,other.example",
    "evil example",
    "-evil.example",
    "evil.example\\x",
]


@pytest.mark.anyio
@pytest.mark.parametrize("host", MALFORMED_HOSTS)
async def test_malformed_host_is_refused_without_public_url(stack: Stack, host: str) -> None:
    middleware = stack.middleware()
    async with stack.phone(middleware, origin=f"http://{PUBLIC}") as phone:
        start = await phone.get("/page", headers={"host": host})
    assert start.status_code == 400
    assert "location" not in start.headers
    assert host not in start.text


# -- public_url wins -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x_forwarded_proto": "http"},
        {"x_forwarded_proto": "https", "x_forwarded_host": "evil.example"},
        {"host": INTERNAL, "x_forwarded_proto": "http", "x_forwarded_host": "evil.example"},
        {"host": "evil.example", "x_forwarded_for": BROWSER_IP},
        {"host": "evil.example/path"},  # malformed: irrelevant, the Host is not used
    ],
)
async def test_public_url_wins_over_forwarded_headers_and_host(
    stack: Stack, headers: dict[str, str]
) -> None:
    middleware = stack.middleware(public_url="https://example.com")
    app = behind_proxy_layer(middleware)  # even with a proxy layer that trusts us
    start = await visit(app, middleware, **headers)
    assert redirect_uri(start) == "https://example.com/wxauth/callback"
    assert is_secure(state_cookie(start))


@pytest.mark.anyio
async def test_http_public_url_is_not_upgraded_by_a_forwarded_proto(stack: Stack) -> None:
    # public_url is the whole answer: a forwarded https does not turn an http one into https.
    middleware = stack.middleware(public_url="http://example.com")
    app = behind_proxy_layer(middleware)
    start = await visit(app, middleware, x_forwarded_proto="https")
    assert redirect_uri(start) == "http://example.com/wxauth/callback"
    assert not is_secure(state_cookie(start))


# -- ASGI: uvicorn's ProxyHeadersMiddleware in front ---------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("trusted", "client_ip", "headers", "expected", "secure"),
    [
        # The proxy (a trusted peer) says the browser spoke https.
        ("127.0.0.1", "127.0.0.1", {"x-forwarded-proto": "https"}, "https", True),
        # Anyone else saying so is ignored: the request is the plain http it is.
        ("127.0.0.1", BROWSER_IP, {"x-forwarded-proto": "https"}, "http", False),
        ("127.0.0.1", "10.1.2.3", {"x-forwarded-proto": "https"}, "http", False),
        # Networks work too; loopback is not trusted unless listed.
        ("10.0.0.0/8", "10.1.2.3", {"x-forwarded-proto": "https"}, "https", True),
        ("10.0.0.0/8", "127.0.0.1", {"x-forwarded-proto": "https"}, "http", False),
        # A trusted proxy saying http, or nothing: http.
        ("127.0.0.1", "127.0.0.1", {"x-forwarded-proto": "http"}, "http", False),
        ("127.0.0.1", "127.0.0.1", {}, "http", False),
        # Values uvicorn does not recognise leave the scheme alone.
        ("127.0.0.1", "127.0.0.1", {"x-forwarded-proto": "ftp"}, "http", False),
        ("127.0.0.1", "127.0.0.1", {"x-forwarded-proto": "https, http"}, "http", False),
        # X-Forwarded-For moves scope["client"]; it has no say in the scheme.
        ("127.0.0.1", "127.0.0.1", {"x-forwarded-for": BROWSER_IP}, "http", False),
    ],
)
async def test_uvicorn_proxy_headers_set_the_scheme_for_trusted_peers_only(
    asgi_stack: Stack,
    trusted: str,
    client_ip: str,
    headers: dict[str, str],
    expected: str,
    secure: bool,
) -> None:
    middleware = cast(WeChatAuthMiddleware, asgi_stack.middleware())
    app = uvicorn_proxy_headers(middleware, trusted_hosts=trusted)
    async with asgi_browser(app, middleware, client_ip=client_ip) as browser:
        start = await browser.get("/page", headers=headers)
    assert redirect_uri(start) == f"{expected}://{PUBLIC}/wxauth/callback"
    assert is_secure(state_cookie(start)) is secure


@pytest.mark.anyio
async def test_uvicorn_ignores_x_forwarded_host_the_host_header_wins(asgi_stack: Stack) -> None:
    # uvicorn has no X-Forwarded-Host support: the proxy must pass the browser's Host on
    # (nginx: `proxy_set_header Host $host;`), or public_url must be set.
    middleware = cast(WeChatAuthMiddleware, asgi_stack.middleware())
    app = uvicorn_proxy_headers(middleware, trusted_hosts="127.0.0.1")
    async with asgi_browser(app, middleware, client_ip="127.0.0.1") as browser:
        passed_on = await browser.get(
            "/page", headers={"x-forwarded-proto": "https", "x-forwarded-host": "evil.example"}
        )
        not_passed_on = await browser.get(
            "/page",
            headers={"host": INTERNAL, "x-forwarded-proto": "https", "x-forwarded-host": PUBLIC},
        )
    assert redirect_uri(passed_on) == f"https://{PUBLIC}/wxauth/callback"
    # The misconfiguration WeChat answers with 10003: the internal address leaks into
    # redirect_uri. The fix is the proxy's Host header or public_url, never X-Forwarded-Host.
    assert redirect_uri(not_passed_on) == f"https://{INTERNAL}/wxauth/callback"


# -- WSGI: werkzeug's ProxyFix in front ----------------------------------------------------------

XFP_XFH = {"host": INTERNAL, "x-forwarded-proto": "https", "x-forwarded-host": PUBLIC}


@pytest.mark.parametrize(
    ("proxy_fix", "headers", "expected", "secure"),
    [
        # The documented setup: the proxy's scheme and host, as one proxy set them.
        ({"x_proto": 1, "x_host": 1}, XFP_XFH, f"https://{PUBLIC}", True),
        # A client-sent value before the proxy's own: only the last (the proxy's) counts.
        (
            {"x_proto": 1, "x_host": 1},
            {
                "host": INTERNAL,
                "x-forwarded-proto": "http, https",
                "x-forwarded-host": f"evil.example, {PUBLIC}",
            },
            f"https://{PUBLIC}",
            True,
        ),
        # x_host not enabled: the Host header wins, X-Forwarded-Host is ignored.
        ({"x_proto": 1}, XFP_XFH, f"https://{INTERNAL}", True),
        # No forwarded headers: the request as it came.
        ({"x_proto": 1, "x_host": 1}, {"host": INTERNAL}, f"http://{INTERNAL}", False),
        # No ProxyFix at all: the forwarded headers are ignored.
        (None, XFP_XFH, f"http://{INTERNAL}", False),
    ],
)
def test_werkzeug_proxy_fix_outside_the_middleware(
    wsgi_stack: Stack,
    proxy_fix: dict[str, int] | None,
    headers: dict[str, str],
    expected: str,
    secure: bool,
) -> None:
    middleware = cast(WeChatAuthWSGIMiddleware, wsgi_stack.middleware())
    app: WSGIApplication = validator(middleware)
    if proxy_fix is not None:
        app = ProxyFix(app, **proxy_fix)
    with wsgi_browser(app, middleware) as browser:
        start = browser.get("/page", headers=headers)
    assert redirect_uri(start) == f"{expected}/wxauth/callback"
    assert is_secure(state_cookie(start)) is secure


def test_proxy_fix_inside_the_middleware_is_too_late(wsgi_stack: Stack) -> None:
    # ProxyFix around the app, the middleware around both: the middleware sees the environ
    # before ProxyFix fixes it. ProxyFix must be the OUTER layer.
    inner = ProxyFix(inner_wsgi_app, x_proto=1, x_host=1)
    middleware = WeChatAuthWSGIMiddleware(inner, **middleware_options(wsgi_stack.wechat_url))
    with wsgi_browser(middleware, middleware) as browser:
        start = browser.get("/page", headers=XFP_XFH)
    assert redirect_uri(start) == f"http://{INTERNAL}/wxauth/callback"
    assert not is_secure(state_cookie(start))


def test_proxy_fixed_host_is_still_syntax_checked(wsgi_stack: Stack) -> None:
    # ProxyFix copies X-Forwarded-Host into HTTP_HOST as is: the middleware's Host check
    # still applies to it.
    middleware = cast(WeChatAuthWSGIMiddleware, wsgi_stack.middleware())
    app = ProxyFix(validator(middleware), x_proto=1, x_host=1)
    with wsgi_browser(app, middleware) as browser:
        start = browser.get(
            "/page", headers={"x-forwarded-proto": "https", "x-forwarded-host": "evil.example/x"}
        )
    assert start.status_code == 400
    assert "location" not in start.headers


# -- real servers behind an emulated TLS-terminating proxy ---------------------------------------


async def _seen(request: Request) -> Response:
    client = request.client.host if request.client else None
    return JSONResponse(
        {
            "user": user_json(get_wechat_user(request)),
            "scheme": request.url.scheme,
            "host": request.headers.get("host"),
            "client": client,
        }
    )


def _wechat_url() -> str:
    return os.environ[WECHAT_URL_ENV]


def make_app() -> WeChatAuthMiddleware:
    """The ASGI site for `uvicorn --factory tests.test_proxy:make_app`: every page answers who
    is logged in and what the app saw (scheme, Host, client address)."""
    site = Starlette(routes=[Route("/{path:path}", _seen)])
    return WeChatAuthMiddleware(site, **middleware_options(_wechat_url()))


def _seen_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    body = {
        "user": user_json(get_wechat_user(environ)),
        "scheme": environ["wsgi.url_scheme"],
        "host": environ.get("HTTP_HOST"),
        "client": environ.get("REMOTE_ADDR"),
    }
    start_response("200 OK", [("content-type", "application/json")])
    return [json.dumps(body).encode()]


def make_wsgi_app() -> WeChatAuthWSGIMiddleware:
    """The same site in WSGI, for `gunicorn 'tests.test_proxy:make_wsgi_app()'`."""
    return WeChatAuthWSGIMiddleware(_seen_wsgi, **middleware_options(_wechat_url()))


class TLSTerminatingProxy(httpx.BaseTransport):
    """A reverse proxy configured as docs/proxy.md says for nginx: the browser speaks https to
    it; it passes each request on to the app server over plain http with the browser's Host
    (`proxy_set_header Host $host`), `X-Forwarded-Proto: https` (`$scheme`) and the browser's
    address appended to X-Forwarded-For (`$proxy_add_x_forwarded_for`)."""

    def __init__(self, upstream: str) -> None:
        self._upstream = httpx.URL(upstream)
        self._transport = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(
            scheme=self._upstream.scheme, host=self._upstream.host, port=self._upstream.port
        )
        headers = httpx.Headers(request.headers)  # Host stays the browser's
        headers["x-forwarded-proto"] = request.url.scheme
        earlier = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{earlier}, {BROWSER_IP}" if earlier else BROWSER_IP
        upstream = httpx.Request(request.method, url, headers=headers, content=request.read())
        return self._transport.handle_request(upstream)

    def close(self) -> None:
        self._transport.close()


def _command(server: str, port: int, allow_ips: str) -> list[str]:
    """The documented command lines, with the test's address and trusted proxy."""
    if server == "uvicorn":
        return [
            *("-m", "uvicorn", "--factory", "tests.test_proxy:make_app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            *("--proxy-headers", "--forwarded-allow-ips", allow_ips),
        ]
    return [
        *("-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
        *("--graceful-timeout", "5", "--forwarded-allow-ips", allow_ips),
        "tests.test_proxy:make_wsgi_app()",
    ]


@contextmanager
def running(server: str, allow_ips: str, wechat_url: str) -> Iterator[str]:
    """`server` serving this module's site on a free 127.0.0.1 port, trusting `allow_ips` as
    proxies; yields its base URL once it answers. Always stopped, within bounded waits."""
    port = free_port()
    # A desktop browser passes anonymously: a 200 at /up shows the server is up.
    with running_server(
        server,
        python_command(*_command(server, port, allow_ips)),
        port=port,
        env={WECHAT_URL_ENV: wechat_url},
        unset=("FORWARDED_ALLOW_IPS",),
        ready_path="/up",
    ) as process:
        yield process.url


@contextmanager
def phone_via_proxy(upstream: str) -> Iterator[httpx.Client]:
    """A phone that reaches https://shop.example.com through the TLS-terminating proxy in
    front of `upstream`, and "WeChat" (the emulator) directly."""
    with httpx.Client(
        mounts={f"https://{PUBLIC}": TLSTerminatingProxy(upstream)},
        headers=PAGE,
        timeout=10.0,
        trust_env=False,
    ) as client:
        yield client


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_full_login_through_a_real_server_behind_a_tls_proxy(
    server: str, asgi_stack: Stack
) -> None:
    emulator = asgi_stack.emulator(auto_approve=True, domains=(PUBLIC,))
    with (
        running(server, "127.0.0.1", asgi_stack.wechat_url) as base,
        phone_via_proxy(base) as phone,
    ):
        start = phone.get(f"https://{PUBLIC}/page?x=1")
        final = phone.get(f"https://{PUBLIC}/page?x=1", follow_redirects=True)
    # The server trusted the proxy's X-Forwarded-Proto: the redirect_uri WeChat checks is
    # https on the public name, and the login cookies are Secure.
    assert redirect_uri(start) == f"https://{PUBLIC}/wxauth/callback"
    assert is_secure(state_cookie(start))
    # The whole login went through: page -> WeChat -> callback -> page, logged in. The
    # Secure cookies came back because the phone speaks https to the proxy.
    assert final.status_code == 200
    # (httpx, like a browser, keeps the authorize URL's #wechat_redirect across the redirects)
    assert str(final.url.copy_with(fragment=None)) == f"https://{PUBLIC}/page?x=1"
    assert [r.status_code for r in final.history] == [302, 302, 302]
    callback = final.history[2]
    assert all(is_secure(c) for c in callback.headers.get_list("set-cookie"))
    seen = final.json()
    assert seen["user"]["openid"] == emulator.personas[0].openid_for(emulator.app_id)
    assert (seen["scheme"], seen["host"]) == ("https", PUBLIC)
    # uvicorn also takes the client address from X-Forwarded-For; gunicorn leaves REMOTE_ADDR
    # as the proxy's (docs/proxy.md says so).
    assert seen["client"] == {"uvicorn": BROWSER_IP, "gunicorn": "127.0.0.1"}[server]


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_real_server_ignores_x_forwarded_proto_from_an_untrusted_peer(
    server: str, asgi_stack: Stack
) -> None:
    # The proxy is at 192.0.2.10; this request comes from 127.0.0.1, which is not it: its
    # X-Forwarded-Proto is ignored by the server, so the middleware sees plain http.
    asgi_stack.emulator(auto_approve=True, domains=(PUBLIC,))
    with (
        running(server, "192.0.2.10", asgi_stack.wechat_url) as base,
        phone_via_proxy(base) as phone,
    ):
        start = phone.get(f"https://{PUBLIC}/page")
        page = phone.get(f"https://{PUBLIC}/page", headers={"user-agent": CHROME_UA})
    assert redirect_uri(start) == f"http://{PUBLIC}/wxauth/callback"
    assert not is_secure(state_cookie(start))
    assert page.json()["scheme"] == "http"
