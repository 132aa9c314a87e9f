"""Cookie tossing (issue 20, F8), in real Chromium against real servers of both adapters.

A sibling subdomain (evil.example.test) plants its own session cookie for the parent domain
on a longer path (`Domain=example.test; Path=/pay`); Chromium then sends it to
shop.example.test's /pay pages first, before the visitor's own. Over https the session
cookie is a `__Host-` one, which no sibling can plant: the visitor stays themselves. Over
plain http (no prefix possible), two session cookies of different values are no session:
never the planter's. Host names map to 127.0.0.1 with Chromium's --host-resolver-rules.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import uvicorn

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware, WeChatUser
from wxauth_middleware.config import Config
from wxauth_middleware.cookies import Session, SessionCodec

from .browser_support import CHROMIUM_ARGS, chromium_path
from .support import inner_app, inner_wsgi_app, middleware_options

SHOP = "shop.example.test"
SIBLING = "evil.example.test"
HOST_RULES = "--host-resolver-rules=MAP *.example.test 127.0.0.1"


def _session(openid: str) -> str:
    """A session cookie's value for `openid`, as the site signs it (the planter logged in on
    the real site with their own account and copied their cookie)."""
    keys = Config(**middleware_options("http://127.0.0.1:1")).secret_keys
    return SessionCodec(keys, 3600).encode(Session(WeChatUser(openid=openid)))


PLANTED = _session("o-planter")
VICTIM = _session("o-victim")


def _plants(secure: bool) -> list[tuple[str, str]]:
    """What the sibling's page answers: its session for the parent domain, on /pay, under
    the plain name and the __Host- one (which a browser refuses with a Domain)."""
    tail = "; Domain=example.test; Path=/pay" + ("; Secure" if secure else "")
    return [
        ("set-cookie", f"wxauth_session={PLANTED}{tail}"),
        ("set-cookie", f"__Host-wxauth_session={PLANTED}{tail}"),
        ("content-type", "text/html"),
    ]


def _asgi_site(secure: bool) -> Any:
    middleware = WeChatAuthMiddleware(inner_app(), **middleware_options("http://127.0.0.1:1"))

    async def site(scope: Any, receive: Any, send: Any) -> None:
        host = dict(scope.get("headers", [])).get(b"host", b"").decode()
        if scope["type"] == "http" and host.startswith(SIBLING):
            headers = [(k.encode(), v.encode()) for k, v in _plants(secure)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"<p>hi</p>"})
            return
        await middleware(scope, receive, send)

    return site


def _wsgi_site(secure: bool) -> Callable[..., Any]:
    middleware = WeChatAuthWSGIMiddleware(
        inner_wsgi_app, **middleware_options("http://127.0.0.1:1")
    )

    def site(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_HOST", "").startswith(SIBLING):
            start_response("200 OK", _plants(secure))
            return [b"<p>hi</p>"]
        return middleware(environ, start_response)

    return site


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _HTTPSHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["HTTPS"] = "on"  # wsgiref's wsgi.url_scheme follows it
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPHandler(_HTTPSHandler):
    def get_environ(self) -> dict[str, Any]:
        return WSGIRequestHandler.get_environ(self)


@contextmanager
def _certificate() -> Iterator[tuple[str, str]]:
    """A self-signed certificate for *.example.test (Chromium is told to accept it)."""
    with tempfile.TemporaryDirectory() as folder:
        cert, key = str(Path(folder) / "cert.pem"), str(Path(folder) / "key.pem")
        subprocess.run(  # noqa: S603
            [  # noqa: S607
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", key, "-out", cert, "-subj", "/CN=example.test",
                "-addext", "subjectAltName=DNS:*.example.test",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        yield cert, key


@contextmanager
def _serving(kind: str, secure: bool) -> Iterator[int]:
    """The site (the sibling's page and the shop behind the middleware) on a free port."""
    with _certificate() as (cert, key):
        if kind == "asgi":
            tls: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key} if secure else {}
            config = uvicorn.Config(
                _asgi_site(secure),
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="off",
                **tls,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            ready = threading.Event()
            while not server.started and thread.is_alive():
                ready.wait(0.01)
            try:
                yield server.servers[0].sockets[0].getsockname()[1]
            finally:
                server.should_exit = True
                thread.join(10)
            return
        handler = _HTTPSHandler if secure else _HTTPHandler
        wsgi = make_server("127.0.0.1", 0, _wsgi_site(secure), _ThreadingServer, handler)
        if secure:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            wsgi.socket = context.wrap_socket(wsgi.socket, server_side=True)
        thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
        thread.start()
        try:
            yield wsgi.server_port
        finally:
            wsgi.shutdown()
            wsgi.server_close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, HOST_RULES, "--ignore-certificate-errors"],
            timeout=30_000,
        )
        try:
            yield browser
        finally:
            browser.close()


def _user(page: Any, url: str) -> str | None:
    page.goto(url, timeout=10_000)
    user = json.loads(page.inner_text("body"))["user"]
    return None if user is None else str(user["openid"])


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("scheme", "name", "on_pay"),
    [
        # https: the visitor's cookie is __Host-; the planted one is not read at all.
        ("https", "__Host-wxauth_session", "o-victim"),
        # http: both are sent under one name: no session, never the planter's.
        ("http", "wxauth_session", None),
    ],
)
def test_a_sibling_subdomain_cannot_plant_a_session(
    chromium: Any, kind: str, scheme: str, name: str, on_pay: str | None
) -> None:
    secure = scheme == "https"
    with _serving(kind, secure) as port:
        shop = f"{scheme}://{SHOP}:{port}"
        context = chromium.new_context(ignore_https_errors=True)
        try:
            page = context.new_page()
            # The visitor logs in on the shop: the cookie the site sets there is this one.
            page.goto(f"{shop}/account", timeout=10_000)
            context.add_cookies(
                [{"name": name, "value": VICTIM, "url": f"{shop}/", "secure": secure}]
            )
            assert _user(page, f"{shop}/pay/checkout") == "o-victim"
            # A page of the sibling subdomain plants its session for /pay.
            page.goto(f"{scheme}://{SIBLING}:{port}/", timeout=10_000)
            sent = context.cookies(f"{shop}/pay/checkout")
            plain = {c["value"] for c in sent if c["name"] == "wxauth_session"}
            assert plain == ({PLANTED} if secure else {PLANTED, VICTIM})
            # The browser refused the planted __Host- cookie (it named a Domain).
            hosts = [c["value"] for c in sent if c["name"] == "__Host-wxauth_session"]
            assert hosts == ([VICTIM] if secure else [])
            assert _user(page, f"{shop}/pay/checkout") == on_pay
            assert _user(page, f"{shop}/account") == "o-victim"  # off /pay: only the visitor's
        finally:
            context.close()


@pytest.mark.parametrize(
    ("options", "http", "https"),
    [
        ({}, "wxauth_session", "__Host-wxauth_session"),
        ({"session_cookie": "sid"}, "sid", "__Host-sid"),
        # No __Host- possible: a Domain, or another path.
        ({"cookie_domain": "example.com"}, "wxauth_session", "wxauth_session"),
        (
            {
                "cookie_path": "/app",
                **{f"{p}_path": f"/app/{p}" for p in ("callback", "login", "logout")},
            },
            "wxauth_session",
            "wxauth_session",
        ),
        # https known from the configuration: whatever the request's scheme.
        ({"https_only": True}, "__Host-wxauth_session", "__Host-wxauth_session"),
        ({"public_url": "https://example.com"}, "__Host-wxauth_session", "__Host-wxauth_session"),
        ({"public_url": "http://example.com"}, "wxauth_session", "wxauth_session"),
        # A name with a prefix of its own stays as it is.
        ({"session_cookie": "__Host-s", "https_only": True}, "__Host-s", "__Host-s"),
        (
            {"session_cookie": "__Secure-s", "https_only": True, "cookie_domain": "example.com"},
            "__Secure-s",
            "__Secure-s",
        ),
    ],
)
@pytest.mark.parametrize("kind", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
def test_the_session_cookies_name_by_scheme(
    kind: type, options: dict[str, Any], http: str, https: str
) -> None:
    middleware = kind(inner_app(), **middleware_options("http://127.0.0.1:1", **options))
    cookies = middleware.core.cookies
    assert (cookies.session_name("http"), cookies.session_name("https")) == (http, https)
    assert cookies.session_name("wss") == https
