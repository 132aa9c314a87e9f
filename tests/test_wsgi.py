"""What only the WSGI middleware has: PEP 3333 environ details, mounting, iterables."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from wsgiref.validate import validator

import httpx
import pytest

from wxauth_middleware import ConfigurationError, HTTPResponse, WeChatAuthWSGIMiddleware
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxauth_middleware.login.in_progress import LoginStateCodec

from .support import SECRET_KEY, WECHAT_UA, Stack, inner_wsgi_app, location

pytestmark = pytest.mark.anyio


def _middleware(app: Any = inner_wsgi_app, **options: Any) -> WeChatAuthWSGIMiddleware:
    options.setdefault("authorize_url", "http://127.0.0.1:9/connect/oauth2/authorize")
    options.setdefault("api_base_url", "http://127.0.0.1:9")
    return WeChatAuthWSGIMiddleware(
        app, app_id=DEFAULT_APP_ID, app_secret=DEFAULT_APP_SECRET, secret_key=SECRET_KEY, **options
    )


def _call(app: Any, **environ: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": WECHAT_UA,
        "HTTP_ACCEPT": "text/html",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    env.update(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    result = validator(app)(env, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    return seen["status"], seen["headers"], body


def test_script_name_prefix_is_part_of_return_path_and_redirect_uri() -> None:
    middleware = _middleware(callback_path="/app/wxauth/callback")
    status, headers, _ = _call(
        middleware,
        SCRIPT_NAME="/app",
        PATH_INFO="/page",
        QUERY_STRING="x=1",
        HTTP_HOST="example.com",
    )
    assert status == "302 Found"
    url = dict(headers)["location"]
    assert dict(parse_qsl(urlsplit(url).query))["redirect_uri"] == (
        "http://example.com/app/wxauth/callback"
    )
    state_cookie = next(v for k, v in headers if k == "set-cookie")
    # The login-state cookie is on the root: a new login finds the others in progress.
    assert state_cookie.startswith("wxauth_session_login=")
    assert "; Path=/;" in state_cookie


def test_host_comes_from_server_name_without_a_host_header() -> None:
    _, headers, _ = _call(
        _middleware(), SERVER_NAME="example.org", SERVER_PORT="8080", PATH_INFO="/"
    )
    redirect_uri = dict(parse_qsl(urlsplit(dict(headers)["location"]).query))["redirect_uri"]
    assert redirect_uri == "http://example.org:8080/wxauth/callback"


def test_https_url_scheme_makes_cookies_secure() -> None:
    _, headers, _ = _call(_middleware(), **{"wsgi.url_scheme": "https", "HTTP_HOST": "example.com"})
    assert "Secure" in dict(headers)["set-cookie"]


def test_latin1_environ_path_becomes_a_percent_encoded_return_path() -> None:
    # PEP 3333: PATH_INFO holds the request's bytes decoded as latin-1.
    path = "/中文页".encode().decode("latin-1")
    status, headers, _ = _call(_middleware(), PATH_INFO=path, HTTP_HOST="example.com")
    assert status == "302 Found"
    name, _, rest = dict(headers)["set-cookie"].partition("=")
    assert name == "wxauth_session_login"
    (login,) = LoginStateCodec((SECRET_KEY.encode(),), 600).decode(rest.split(";")[0])
    assert login.return_to == "/%E4%B8%AD%E6%96%87%E9%A1%B5"


def test_app_iterable_is_passed_through_and_closed() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            yield b"b"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return Body()

    status, _, body = _call(_middleware(app), HTTP_USER_AGENT="curl/8")
    assert (status, body, closed) == ("200 OK", b"ab", [True])


def test_head_gets_headers_and_no_body() -> None:
    # A page the middleware answers itself (the callback without a state: an error page):
    # HEAD gets GET's status and length, without the body.
    page = {"PATH_INFO": "/wxauth/callback", "HTTP_HOST": "example.com"}
    status, headers, body = _call(_middleware(), **page)
    head_status, head_headers, head_body = _call(_middleware(), REQUEST_METHOD="HEAD", **page)
    assert head_status == status
    assert body
    assert head_body == b""
    assert dict(head_headers)["content-length"] == dict(headers)["content-length"] != "0"


def test_async_transport_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="BaseTransport"):
        _middleware(transport=httpx.AsyncHTTPTransport())


async def test_callback_sets_session_and_state_cookies_as_two_headers(
    wechat_server: tuple[Any, str],
) -> None:
    stack = Stack("wsgi", *wechat_server)
    stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    assert isinstance(middleware, WeChatAuthWSGIMiddleware)
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        callback = await client.get(location(await client.get(location(start))))
        http_client = middleware._client
    cookies = callback.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert {c.split("=")[0] for c in cookies} == {"wxauth_session", "wxauth_session_login"}
    # One client made the calls, and close() (which the phone calls at its end) closed it.
    assert http_client is not None
    assert http_client.is_closed
    assert middleware._client is None


def test_a_non_standard_status_from_on_error_is_served() -> None:
    def on_error(error: object, request: object) -> HTTPResponse:
        return HTTPResponse(499, (("content-type", "text/plain"),), b"custom")

    status, _, body = _call(_middleware(on_error=on_error), PATH_INFO="/wxauth/callback")
    assert (status, body) == ("499 Unknown", b"custom")
