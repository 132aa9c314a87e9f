"""The attack suite, through both adapters (the `stack` fixture) against the WeChat emulator.

What an attacker controls here: the `state`/`code` of a callback, every cookie, the request
target, the `next` parameter of the login/logout paths, the Referer, the Host and X-Forwarded-*
headers. For each, the middleware must log nobody in that WeChat did not vouch for, redirect
nowhere but WeChat's authorize/qrconnect URL or a path of this site, never answer a 500, and
never let a secret (AppSecret, signing keys, WeChat's tokens, the one-time code) out.

Raw request targets and non-ASCII header bytes are sent with `_raw`, which calls the middleware
the way a server would (an ASGI scope, or a PEP 3333 environ through `wsgiref.validate`), since
an HTTP client normalises or refuses them.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import secrets
import string
import time
import warnings
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urljoin, urlsplit
from wsgiref.validate import validator

import anyio
import httpx
import pytest

from wxauth_middleware import (
    HTTPRequest,
    WeChatAuthError,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
)
from wxauth_middleware.cookies import LOGIN_STATE_SALT, SESSION_SALT, Signer
from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    DEFAULT_WEBSITE_APP_ID,
    WeChatEmulator,
)

from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    Middleware,
    Stack,
    ThreadedWSGITransport,
    approve_consent,
    location,
    login,
    shown,
)

pytestmark = pytest.mark.anyio

OTHER_KEY = "another-deployments-key-0123456789"
OLD_KEY = "old-signing-key-0123456789abcdef"
NEW_KEY = "new-signing-key-fedcba9876543210"
SESSION = "wxauth_session"
LOGIN_COOKIE = "wxauth_session_login"
JSON = {"accept": "application/json"}
XIAOMING = next(p for p in DEFAULT_PERSONAS if p.key == "xiaoming")
LILY = next(p for p in DEFAULT_PERSONAS if p.key == "lily")
# A path a browser may be sent to: one '/', not followed by '/' or '\', printable ASCII only.
SAFE_PATH = re.compile(r"/(?![/\\])[!-~]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- helpers ------------------------------------------------------------------------------------


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _callback(state: str, code: str) -> str:
    return f"/wxauth/callback?code={code}&state={state}"


def _set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def _sessions_set(set_cookies: Sequence[str]) -> list[str]:
    """The Set-Cookie values that give the browser a session (not the ones that clear it)."""
    return [
        c for c in set_cookies if c.startswith(f"{SESSION}=") and not c.startswith(f"{SESSION}=;")
    ]


def _cookie_value(set_cookies: Sequence[str], name: str) -> str:
    found = [c.split(";", 1)[0][len(name) + 1 :] for c in set_cookies if c.startswith(name + "=")]
    assert len(found) == 1, set_cookies
    return found[0]


@dataclass(frozen=True)
class Started:
    """A login this browser started: its state, and the state cookie that stands for it."""

    state: str
    cookie_name: str
    cookie_value: str

    @property
    def cookie(self) -> str:
        return f"{self.cookie_name}={self.cookie_value}"


def _started(response: httpx.Response) -> Started:
    if response.status_code == 302:
        url = location(response)
    else:
        assert response.status_code == 401, response.text
        url = response.json()["authorize_url"]
    state = _params(url)["state"]
    return Started(state, LOGIN_COOKIE, _cookie_value(_set_cookies(response), LOGIN_COOKIE))


async def _start(client: httpx.AsyncClient, target: str = "/page") -> Started:
    return _started(await client.get(target))


def _headers_of(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]


def _assert_safe_location(value: str, offsite: Sequence[str]) -> None:
    """`value` is WeChat's authorize (or qrconnect) URL, or a path of this site."""
    if any(value.startswith(url + "?") for url in offsite):
        return
    assert SAFE_PATH.fullmatch(value), value
    # Where a browser goes (WHATWG: tabs/newlines dropped, '\' read as '/'): this site.
    seen = CONTROL.sub("", value).replace("\\", "/")
    assert urlsplit(urljoin(APP_ORIGIN + "/here", seen)).netloc == urlsplit(APP_ORIGIN).netloc


def _assert_safe_headers(headers: Sequence[tuple[str, str]], offsite: Sequence[str]) -> None:
    for name, value in headers:
        assert "\r" not in name + value, (name, value)
        assert "\n" not in name + value, (name, value)
        if name.lower() == "location":
            _assert_safe_location(value, offsite)


def _assert_safe(response: httpx.Response, stack: Stack) -> None:
    _assert_safe_headers(_headers_of(response), (stack.authorize_url,))
    assert response.status_code != 500, response.text


async def _not_logged_in(client: httpx.AsyncClient, cookie: str = "") -> None:
    headers = {**JSON, "cookie": cookie} if cookie else JSON
    api = await client.get("/whoami", headers=headers)
    assert api.status_code == 401, api.text


def _refused(response: httpx.Response) -> None:
    """A callback that logged nobody in: a 400 page, no session, no redirect."""
    assert _sessions_set(_set_cookies(response)) == []
    assert response.status_code == 400, response.text
    assert "location" not in response.headers


def _token_codes(emulator: WeChatEmulator) -> list[str | None]:
    return [c.param("code") for c in emulator.calls if c.path == "/sns/oauth2/access_token"]


@dataclass
class Answer:
    """A response taken straight from the middleware, as a server would."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


async def _asgi_raw(
    app: WeChatAuthMiddleware, method: str, target: bytes, headers: list[tuple[bytes, bytes]]
) -> Answer:
    raw_path, _, query = target.partition(b"?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 8000),
    }
    messages: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(dict(message))

    await app(scope, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    return Answer(
        start["status"],
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
        b"".join(m.get("body", b"") for m in messages[1:]),
    )


def _wsgi_raw(
    app: WeChatAuthWSGIMiddleware, method: str, target: bytes, headers: list[tuple[bytes, bytes]]
) -> Answer:
    raw_path, _, query = target.partition(b"?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]}, {text}" if key in environ else text
    seen: list[Any] = []

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc: Any = None
    ) -> Any:
        seen.append((status, response_headers))
        return lambda data: None

    result = validator(app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, response_headers = seen[0]
    return Answer(int(status.split()[0]), list(response_headers), body)


async def _raw(
    middleware: Middleware,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    method: str = "GET",
    user_agent: str = WECHAT_UA,
    host: bytes | None = b"localhost:8000",
) -> Answer:
    """`method target` with exactly these header bytes, straight into the middleware."""
    all_headers = [(b"user-agent", user_agent.encode()), *headers]
    if host is not None:
        all_headers.insert(0, (b"host", host))
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        call = functools.partial(_wsgi_raw, middleware, method, target, all_headers)
        return await anyio.to_thread.run_sync(call)
    return await _asgi_raw(middleware, method, target, all_headers)


class _Recorder(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """The middleware's transport to the emulator, keeping WeChat's answers (to learn the
    access and refresh tokens it handed out)."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self._async = httpx.AsyncHTTPTransport()
        self._sync = httpx.HTTPTransport()

    def _keep(self, request: httpx.Request, body: bytes) -> None:
        try:
            payload = json.loads(body.decode("utf-8", "replace"), strict=False)
        except ValueError:
            return  # an injected fault's HTML page
        if isinstance(payload, dict):
            self.answers.append((request.url.path, payload))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._async.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        self._keep(request, body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._sync.handle_request(request)
        body = response.read()
        response.close()
        self._keep(request, body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self._async.aclose()

    def close(self) -> None:
        self._sync.close()

    def token_answers(self) -> list[dict[str, Any]]:
        return [a for path, a in self.answers if path.endswith("/access_token")]

    def tokens(self) -> set[str]:
        return {
            str(answer[key])
            for _, answer in self.answers
            for key in ("access_token", "refresh_token")
            if answer.get(key)
        }


@asynccontextmanager
async def _browser(
    stack: Stack,
    middleware: Middleware,
    emulator: WeChatEmulator,
    *,
    origin: str = APP_ORIGIN,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """Like `Stack.phone`, but with WeChat's pages served in-process, so that nothing but the
    middleware talks to WeChat over the network (and only its logs are about those calls)."""
    site: httpx.AsyncBaseTransport
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        site = ThreadedWSGITransport(validator(middleware))
    else:
        site = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(
        mounts={origin: site, stack.wechat_url: httpx.ASGITransport(app=emulator)},
        base_url=origin,
        headers={"user-agent": WECHAT_UA, "accept": "text/html,*/*;q=0.8", **(headers or {})},
    ) as client:
        yield client
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        middleware.close()
    else:
        await middleware.aclose()


# -- 1. state -----------------------------------------------------------------------------------


async def test_forged_state_without_a_cookie_logs_nobody_in(stack: Stack) -> None:
    emulator = stack.emulator()
    alphabet = string.ascii_letters + string.digits
    async with stack.phone(stack.middleware()) as client:
        await _start(client)  # the browser has a login of its own in progress
        for length in (1, 16, 32, 128):
            state = "".join(secrets.choice(alphabet) for _ in range(length))
            # A perfectly good code: only the state can refuse it.
            response = await client.get(_callback(state, emulator.issue_code()))
            _refused(response)
            _assert_safe(response, stack)
        await _not_logged_in(client)
    assert _token_codes(emulator) == []  # no code was spent on a forged state


def _signer(key: str, purpose: str) -> Signer:
    """What the middleware signs with, for `key` and `purpose`."""
    return Signer((key.encode(),), purpose, time.time)


def _payload(value: str, purpose: str) -> object:
    verified = _signer(SECRET_KEY, purpose).verify(value, 3600)
    assert verified is not None
    return verified[0]


def _forge_state(key: str, state: str, salt: str = LOGIN_STATE_SALT) -> str:
    login = [state, "/forged", "snsapi_base", 0, False, "", False, int(time.time())]
    return _signer(key, salt).sign([login])


async def test_state_cookie_signed_with_another_key_logs_nobody_in(stack: Stack) -> None:
    emulator = stack.emulator()
    middleware = stack.middleware()
    other_deployment = stack.middleware(secret_key=OTHER_KEY)
    async with stack.phone(other_deployment) as elsewhere:
        foreign = await _start(elsewhere)  # a real state cookie, from another key
    async with stack.phone(middleware) as client:
        # The other deployment's genuine cookie, and one forged with a guessed key.
        _refused(
            await client.get(
                _callback(foreign.state, emulator.issue_code()), headers={"cookie": foreign.cookie}
            )
        )
        forged = f"{LOGIN_COOKIE}={_forge_state(OTHER_KEY, 'abc123')}"
        _refused(
            await client.get(_callback("abc123", emulator.issue_code()), headers={"cookie": forged})
        )
        # Control: the same forgery with the right key is accepted, so the refusals above are
        # the key's doing, not a malformed test cookie's.
        genuine = f"{LOGIN_COOKIE}={_forge_state(SECRET_KEY, 'abc123')}"
        ok = await client.get(
            _callback("abc123", emulator.issue_code()), headers={"cookie": genuine}
        )
    assert ok.status_code == 302
    assert location(ok) == "/forged"
    assert len(_sessions_set(_set_cookies(ok))) == 1
    assert len(_token_codes(emulator)) == 1


async def test_replayed_callback_with_another_code_without_the_session_logs_nobody_in(
    stack: Stack,
) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        callback_url = location(await client.get(location(start)))
        state = _params(callback_url)["state"]
        first = await client.get(callback_url)
        assert first.status_code == 302
        done_cookie = f"{LOGIN_COOKIE}=" + _cookie_value(_set_cookies(first), LOGIN_COOKIE)
        client.cookies.delete(SESSION)
        fresh = emulator.issue_code("lily")
        # The same browser (it still has the completed state cookie), without the session...
        replay = await client.get(_callback(state, fresh))
        _refused(replay)
        await _not_logged_in(client)
    async with stack.phone(middleware) as attacker:
        # ...and another browser that copied the completed state cookie.
        stolen = await attacker.get(_callback(state, fresh), headers={"cookie": done_cookie})
        _refused(stolen)
        await _not_logged_in(attacker)
        # The fresh code was never spent: a login of its own still takes it.
        own = await _start(attacker, "/mine")
        mine = await attacker.get(_callback(own.state, fresh))
        page = await attacker.get("/mine", headers=JSON)
    assert location(mine) == "/mine"
    assert page.json()["user"]["openid"] == LILY.openid_for(DEFAULT_APP_ID)
    assert _token_codes(emulator) == [_params(callback_url)["code"], fresh]


async def test_replay_with_another_accounts_code_keeps_the_logged_in_account(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/page")
        callback_url = location(await client.get(location(start)))
        await client.get(callback_url)
        session = client.cookies[SESSION]
        state = _params(callback_url)["state"]
        replay = await client.get(_callback(state, emulator.issue_code("lily")))
        page = await client.get("/page", headers=JSON)
    assert replay.status_code == 302
    assert location(replay) == "/page"
    assert _sessions_set(_set_cookies(replay)) == []
    assert client.cookies[SESSION] == session
    assert page.json()["user"]["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert len(_token_codes(emulator)) == 1


async def test_expired_login_state_is_refused_by_the_server_itself(
    monkeypatch: pytest.MonkeyPatch, stack: Stack
) -> None:
    # The emulator keeps the real clock (its default was bound at import): only the
    # middleware's signatures age. The state cookie is sent by hand, so the browser's own
    # Max-Age bookkeeping cannot be what refuses it.
    emulator = stack.emulator()
    real_time = time.time
    async with stack.phone(stack.middleware()) as client:  # login_max_age=600
        early = await _start(client, "/early")
        late = await _start(client, "/late")
        client.cookies.clear()
        monkeypatch.setattr(time, "time", lambda: real_time() + 590)
        in_time = await client.get(
            _callback(early.state, emulator.issue_code()), headers={"cookie": early.cookie}
        )
        monkeypatch.setattr(time, "time", lambda: real_time() + 610)
        expired = await client.get(
            _callback(late.state, emulator.issue_code()), headers={"cookie": late.cookie}
        )
    assert in_time.status_code == 302
    assert location(in_time) == "/early"
    _refused(expired)
    assert len(_token_codes(emulator)) == 1  # the expired one spent nothing


async def test_callbacks_never_log_in_a_browser_they_were_not_issued_to(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    async with stack.phone(middleware) as victim, stack.phone(middleware) as attacker:
        start = await victim.get("/inbox")
        victims_callback = location(await victim.get(location(start)))
        # The attacker, with a login of its own in progress, opens the victim's callback.
        attackers_start = await attacker.get("/page")
        _refused(await attacker.get(victims_callback))
        await _not_logged_in(attacker)
        # Login CSRF: the attacker lures the victim to a callback carrying the attacker's own
        # code and state.
        attackers_callback = location(await attacker.get(location(attackers_start)))
        _refused(await victim.get(attackers_callback))
        await _not_logged_in(victim)
        # The victim's own login was not disturbed: its code is still good.
        own = await victim.get(victims_callback)
        page = await victim.get("/inbox", headers=JSON)
    assert location(own) == "/inbox"
    assert page.json()["user"]["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert _token_codes(emulator) == [_params(victims_callback)["code"]]


@pytest.mark.parametrize(
    ("asked", "granted"),
    [("snsapi_base", "snsapi_userinfo"), ("snsapi_userinfo", "snsapi_base")],
)
async def test_the_session_scope_is_what_wechats_token_says_not_the_state(
    asked: str, granted: str, stack: Stack
) -> None:
    """The state cookie says which scope was asked for; the code says what WeChat granted.

    The sane behaviour, asserted: the user's scope is the token answer's `scope`, profile
    fields only when that scope allows them, never more (nor less) than WeChat granted.
    """
    emulator = stack.emulator()
    recorder = _Recorder()
    middleware = stack.middleware(scope=asked, transport=recorder)
    async with stack.phone(middleware) as client:
        started = await client.get("/page")
        assert _params(location(started))["scope"] == asked
        login_state = _started(started)
        code = emulator.issue_code("xiaoming", scope=granted)
        callback = await client.get(_callback(login_state.state, code))
        page = await client.get("/page", headers=JSON)
    assert location(callback) == "/page"
    [token] = recorder.token_answers()
    assert token["scope"] == granted
    user = page.json()["user"]
    assert user["scope"] == token["scope"]
    paths = [call.path for call in emulator.calls]
    if granted == "snsapi_userinfo":
        assert user["nickname"] == XIAOMING.nickname
        assert paths == ["/sns/oauth2/access_token", "/sns/userinfo"]
    else:
        assert user["nickname"] is None
        assert paths == ["/sns/oauth2/access_token"]  # no userinfo call a base token can't make


async def test_a_login_cookie_without_the_state_is_refused(stack: Stack) -> None:
    emulator = stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        a = await _start(client, "/a")  # its cookie holds login a only
        b = await _start(client, "/b")  # its cookie holds b, then a
        client.cookies.clear()
        _refused(
            await client.get(
                _callback(b.state, emulator.issue_code()), headers={"cookie": a.cookie}
            )
        )
    assert _token_codes(emulator) == []


# -- 2. open redirects --------------------------------------------------------------------------

RAW_PAGE_TARGETS = [
    b"//evil.com/x",
    b"/\\evil.com",
    b"/%2F%2Fevil.com",
    b"/%5C%5Cevil.com",
    b"/\\/evil.com",
    b"///evil.com",
    b"/\\\\evil.com",
    b"//evil.com/%2e%2e",
    b"/%09/evil.com",
    b"/%E2%88%95%E2%88%95evil.com",  # two U+2215 DIVISION SLASH
    b"/%EF%BC%8F%EF%BC%8Fevil.com",  # two U+FF0F FULLWIDTH SOLIDUS
    b"/x?next=//evil.com",
    b"/" + b"a" * 5000,
    b"//" + b"a" * 5000,
]


@pytest.mark.parametrize("target", RAW_PAGE_TARGETS, ids=lambda t: t[:30].decode())
async def test_the_page_path_never_becomes_an_off_site_return(target: bytes, stack: Stack) -> None:
    # The first hop goes in raw (an HTTP client would normalise the target; httpx's WSGI
    # transport would also break PEP 3333's latin-1 environ), the rest as a browser.
    stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    start = await _raw(middleware, target, [(b"accept", b"text/html")])
    _assert_safe_headers(start.headers, (stack.authorize_url,))
    assert start.status == 302, start
    authorize_url = start.header("location")
    assert authorize_url is not None
    assert authorize_url.startswith(stack.authorize_url + "?")
    [state_cookie] = start.set_cookies()
    async with stack.phone(middleware) as client:
        callback_url = location(await client.get(authorize_url))
        callback = await client.get(callback_url, headers={"cookie": state_cookie.split(";", 1)[0]})
    _assert_safe(callback, stack)
    assert callback.status_code == 302
    assert len(_sessions_set(_set_cookies(callback))) == 1


UNSAFE_NEXTS = [
    "//evil.com",
    "//evil.com/x",
    "/\\evil.com",
    "\\/evil.com",
    "\\\\evil.com",
    "/\\/evil.com",
    "///evil.com",
    "https://evil.com",
    "https:evil.com",
    "http:/evil.com",
    "HTTPS://evil.com",
    "//evil.com@localhost:8000",
    "@evil.com",
    "evil.com",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "\r\nLocation: https://evil.com",
    "/\r\nLocation: https://evil.com",
    "/x\r\nSet-Cookie: wxauth_session=forged",
    "/\t/evil.com",
    "/\x00//evil.com",
    " //evil.com",
    "/\u2215\u2215evil.com",
    "\u2215\u2215evil.com",
    "\uff0f\uff0fevil.com",
    "/\uff0f\uff0fevil.com",
    "/%2F%2Fevil.com",
    "/" + "a" * 5000,
    "//" + "a" * 5000,
]
NEXT_QUERIES = [quote(n, safe="").encode() for n in UNSAFE_NEXTS] + [
    b"//evil.com",
    b"/\\evil.com",
    b"\\/evil.com",
    b"/\\/evil.com",
    b"https:evil.com",
    b"%0d%0aLocation:%20https://evil.com",
    b"/%0d%0aLocation:%20https://evil.com",
    b"/%2F%2Fevil.com",
    b"%2F%2Fevil.com",
    b"/%5C%5Cevil.com",
    b"/%E2%88%95%E2%88%95evil.com",
    b"%EF%BC%8F%EF%BC%8Fevil.com",
    b"//evil.com&next=/x",
    b"/x&next=//evil.com",
]


@pytest.mark.parametrize("value", NEXT_QUERIES, ids=lambda v: v[:40].decode())
async def test_login_next_never_redirects_off_site(value: bytes, stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    target = httpx.URL(APP_ORIGIN, raw_path=b"/wxauth/login?next=" + value)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get(target)  # not logged in: to WeChat, then back
        _assert_safe(start, stack)
        assert location(start).startswith(stack.authorize_url + "?")
        callback = await client.get(location(await client.get(location(start))))
        _assert_safe(callback, stack)
        assert callback.status_code == 302
        again = await client.get(target)  # logged in: straight to next
    _assert_safe(again, stack)
    assert again.status_code == 302
    assert location(again) == location(callback)


@pytest.mark.parametrize("value", NEXT_QUERIES, ids=lambda v: v[:40].decode())
async def test_logout_next_never_redirects_off_site(value: bytes, stack: Stack) -> None:
    stack.emulator()
    url = httpx.URL(APP_ORIGIN, raw_path=b"/wxauth/logout?next=" + value)
    async with stack.phone(stack.middleware()) as client:
        response = await client.post(url, headers={"origin": APP_ORIGIN})
        page = await client.get(url)
    _assert_safe(response, stack)
    assert response.status_code == 302
    # A GET shows the logout button, whose form posts back with a path of this site.
    _assert_safe(page, stack)
    action = re.search(r'<form method="post" action="([^"]*)">', page.text)
    assert action is not None, page.text
    next_page = _params(unescape(action.group(1)))["next"]
    assert next_page == location(response)


REFERERS = [
    f"{APP_ORIGIN}//evil.com",
    f"{APP_ORIGIN}//evil.com/x?y=1",
    f"{APP_ORIGIN}/\\evil.com",
    f"{APP_ORIGIN}/\\/evil.com",
    f"{APP_ORIGIN}/%2F%2Fevil.com",
    f"{APP_ORIGIN}/%5C%5Cevil.com",
    "HTTP://LOCALHOST:8000//evil.com",
    "https://evil.com/x",
    "http://localhost:8000@evil.com/x",
    "http://evil.com@localhost:8000//evil.com",
    "http://localhost:8000.evil.com/x",
    "//localhost:8000//evil.com",
    "javascript:alert(1)",
    "http://[::1",
    f"{APP_ORIGIN}/\r\nLocation: https://evil.com",
    f"{APP_ORIGIN}/x\r\nSet-Cookie: wxauth_session=forged",
    f"{APP_ORIGIN}/\t/evil.com",
    f"{APP_ORIGIN}/\u2215\u2215evil.com",
    f"{APP_ORIGIN}/" + "a" * 5000,
]


@pytest.mark.parametrize("referer", REFERERS, ids=lambda r: ascii(r[:40]))
async def test_the_referer_never_becomes_an_off_site_return(referer: str, stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    api = await _raw(
        middleware,
        b"/api/me",
        [(b"accept", b"application/json"), (b"referer", referer.encode("utf-8"))],
    )
    _assert_safe_headers(api.headers, (stack.authorize_url,))
    assert api.status == 401, api
    body = json.loads(api.body)
    assert body["authorize_url"].startswith(stack.authorize_url + "?")
    login_url = body["login_url"]
    assert SAFE_PATH.fullmatch(login_url), login_url
    next_page = _params(login_url)["next"]
    _assert_safe_location(next_page, ())
    [state_cookie] = api.set_cookies()
    async with stack.phone(middleware) as client:
        # The front end sends the page to authorize_url...
        callback_url = location(await client.get(body["authorize_url"]))
        callback = await client.get(callback_url, headers={"cookie": state_cookie.split(";", 1)[0]})
        client.cookies.clear()
        # ...or to login_url.
        via_login = await client.get(login_url)
        _assert_safe(via_login, stack)
        callback_2 = await client.get(location(await client.get(location(via_login))))
    for response in (callback, callback_2):
        _assert_safe(response, stack)
        assert response.status_code == 302
        assert location(response) == next_page


# -- 3. the Host header -------------------------------------------------------------------------

# Without public_url: a Host that is a syntactically valid host[:port] is used as is (WeChat
# itself refuses a redirect_uri outside the registered domain: error 10003); anything else is
# refused with a 400. None = refused.
HOSTS: dict[bytes, str | None] = {
    b"evil.com": "http://evil.com/wxauth/callback",
    b"EVIL.com:80": "http://evil.com/wxauth/callback",
    b"evil.com:8080": "http://evil.com:8080/wxauth/callback",
    b"[::1]:8000": "http://[::1]:8000/wxauth/callback",
    b"evil.com:80@good.com": None,
    b"good.com/evil": None,
    b"good.com\r\nX-Injected: 1": None,
    b"good.com\r\n": None,
    b"good.com\n": None,
    b"good.com evil.com": None,
    b"good.com\\evil.com": None,
    b"good.com#@evil.com": None,
    b"good.com?@evil.com": None,
    b"evil.com:": None,
    b"evil.com:+80": None,
    b"-evil.com": None,
    b"[::1": None,
    b"": None,
    "\uff45\uff56\uff49\uff4c.com".encode(): None,  # fullwidth
    b"\xff\xfe": None,
    b"a" * 300: None,
    (b"a" * 63 + b".") * 4 + b"com": None,
    b"a" * 5000: None,
    # A port or an IP literal no URL can hold.
    b"evil.com:99999": None,
    b"[1.2.3.4]": None,
    b"[:]": None,
}


def _check_redirect_uri(url: str, expected: str) -> None:
    redirect_uri = _params(url)["redirect_uri"]
    assert redirect_uri == expected
    parts = urlsplit(redirect_uri)  # a URL, whose host and port parse
    assert parts.hostname
    assert parts.port is None or 0 < parts.port < 65536


@pytest.mark.parametrize("host", list(HOSTS), ids=lambda h: h[:30].decode("latin-1"))
async def test_a_malicious_host_gives_a_valid_redirect_uri_or_a_400(
    host: bytes, stack: Stack
) -> None:
    expected = HOSTS[host]
    stack.emulator()
    middleware = stack.middleware()
    page = await _raw(middleware, b"/page", [(b"accept", b"text/html")], host=host)
    api = await _raw(middleware, b"/api", [(b"accept", b"application/json")], host=host)
    start = await _raw(middleware, b"/wxauth/login?next=/x", host=host)
    for answer in (page, api, start):
        _assert_safe_headers(answer.headers, (stack.authorize_url,))
        if expected is None:
            assert answer.status == 400, answer
            assert answer.header("location") is None
            assert answer.set_cookies() == []
            assert len(host) < 4 or host not in answer.body
    if expected is not None:
        assert page.status == start.status == 302
        assert api.status == 401
        for url in (page.header("location"), start.header("location")):
            assert url is not None
            _check_redirect_uri(url, expected)
        _check_redirect_uri(json.loads(api.body)["authorize_url"], expected)


async def test_forwarded_headers_are_never_trusted(stack: Stack) -> None:
    stack.emulator()
    forwarded = {
        "x-forwarded-host": "evil.com",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "forwarded": "host=evil.com;proto=https",
        "x-original-host": "evil.com",
    }
    async with stack.phone(stack.middleware()) as client:
        responses = [
            await client.get("/page", headers=forwarded),
            await client.get("/api", headers={**forwarded, **JSON}),
            await client.get("/wxauth/login?next=/x", headers=forwarded),
        ]
    for response in responses:
        url = (
            location(response) if response.status_code == 302 else response.json()["authorize_url"]
        )
        assert _params(url)["redirect_uri"] == f"{APP_ORIGIN}/wxauth/callback"
        assert "evil.com" not in str(response.headers) + response.text


async def test_with_public_url_the_host_never_appears_in_a_response(stack: Stack) -> None:
    marker = "hostile-marker.example"
    emulator = stack.emulator(auto_approve=True)
    origin = "https://example.com"
    headers = {"host": marker, "x-forwarded-host": marker, "forwarded": f"host={marker}"}
    site: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        if response.url.host == "example.com":
            await response.aread()
            site.append(response)

    verify = {"MP_verify_Ab12Cd34.txt": "Ab12Cd34"}
    for options in (
        {"public_url": origin, "verify_files": verify},
        {"public_url": origin, "other_browsers": "refuse"},
    ):
        middleware = stack.middleware(**options)
        async with _browser(stack, middleware, emulator, origin=origin, headers=headers) as client:
            client.event_hooks["response"] = [keep]
            await client.get("/api", headers=JSON)
            await client.get("/wxauth/login?next=/x")
            await client.get("/wxauth/callback?code=x&state=y")
            await client.get("/MP_verify_Ab12Cd34.txt")
            await client.get("/page", headers={"user-agent": CHROME_UA})
            await client.get("/page", headers={"user-agent": CHROME_UA, **JSON})
            page = await login(client, "/page?x=1")
            assert page.json()["user"] is not None
            await client.post("/wxauth/logout?next=/bye", headers={"origin": origin})
            await client.get("/bye")  # the logged-out page
    assert len(site) >= 20
    for response in site:
        text = str(response.headers.raw) + response.content.decode("utf-8", "replace")
        assert marker not in text, text
        for url in re.findall(r"redirect_uri=([^&\"]+)", text):
            assert url.startswith("https%3A%2F%2Fexample.com%2F"), url


# -- 4. cookies ---------------------------------------------------------------------------------


def _flip(text: str, index: int) -> str:
    index %= len(text)
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def _broken_sessions(value: str) -> dict[str, str]:
    payload, timestamp, signature = value.rsplit(".", 2)
    return {
        "payload-flipped": f"{_flip(payload, len(payload) // 2)}.{timestamp}.{signature}",
        "payload-first-flipped": f"{_flip(payload, 1)}.{timestamp}.{signature}",
        "timestamp-flipped": f"{payload}.{_flip(timestamp, 2)}.{signature}",
        # Not the last character: base64 ignores its low bits, a "flip" there may be a no-op.
        "signature-flipped": f"{payload}.{timestamp}.{_flip(signature, len(signature) // 2)}",
        "signature-dropped": f"{payload}.{timestamp}",
        "signature-empty": f"{payload}.{timestamp}.",
        "truncated-by-two": value[:-2],
        "truncated-half": value[: len(value) // 2],
        "lower-cased": value.lower(),
        "dots-doubled": value.replace(".", "..", 1),
        "oversized-suffix": value + "A" * 8192,
        "oversized": "A" * 8192,
        "oversized-dotted": ".".join(["A" * 2730] * 3),
        "empty": "",
        "just-dots": "..",
    }


async def _assert_no_session(stack: Stack, middleware: Middleware, value: str) -> None:
    cookie = f"{SESSION}={value}"
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        page = await desktop.get("/page", headers={"cookie": cookie})
    async with stack.phone(middleware) as phone:
        api = await phone.get("/api", headers={**JSON, "cookie": cookie})
        nav = await phone.get("/page", headers={"cookie": cookie})
    assert page.status_code == 200, page.text
    assert page.json()["user"] is None
    assert api.status_code == 401, api.text
    assert nav.status_code == 302
    assert location(nav).startswith(stack.authorize_url + "?")
    for response in (page, api, nav):
        assert _sessions_set(_set_cookies(response)) == []


async def _logged_in_session(stack: Stack, middleware: Middleware) -> str:
    async with stack.phone(middleware) as client:
        page = await login(client)
        assert page.json()["user"] is not None
        return client.cookies[SESSION]


@pytest.mark.parametrize("variant", list(_broken_sessions("p.t.s")))
async def test_a_broken_session_cookie_is_no_session(variant: str, stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    value = await _logged_in_session(stack, middleware)
    await _assert_no_session(stack, middleware, _broken_sessions(value)[variant])


async def test_session_cookies_of_other_keys_and_purposes_are_no_session(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    value = await _logged_in_session(stack, middleware)
    other = await _logged_in_session(stack, stack.middleware(secret_key=OTHER_KEY))
    await _assert_no_session(stack, middleware, other)
    # The right key, the login-state salt: not a session.
    payload = _payload(value, SESSION_SALT)
    as_state = _signer(SECRET_KEY, LOGIN_STATE_SALT).sign(payload)
    await _assert_no_session(stack, middleware, as_state)
    # Control: re-signed with the session salt it is a session again (the payload is intact).
    resigned = _signer(SECRET_KEY, SESSION_SALT).sign(payload)
    async with stack.phone(middleware) as client:
        ok = await client.get("/api", headers={**JSON, "cookie": f"{SESSION}={resigned}"})
        assert ok.json()["user"] is not None
        # And the reverse: a login state signed with the session salt is no login state.
        started = await _start(client)
        state_payload = _payload(started.cookie_value, LOGIN_STATE_SALT)
        as_session = _signer(SECRET_KEY, SESSION_SALT).sign(state_payload)
        client.cookies.clear()
        refused = await client.get(
            _callback(started.state, emulator.issue_code()),
            headers={"cookie": f"{started.cookie_name}={as_session}"},
        )
        _refused(refused)
        restored = _signer(SECRET_KEY, LOGIN_STATE_SALT).sign(state_payload)
        accepted = await client.get(
            _callback(started.state, emulator.issue_code()),
            headers={"cookie": f"{started.cookie_name}={restored}"},
        )
    assert accepted.status_code == 302
    assert len(_sessions_set(_set_cookies(accepted))) == 1


GARBAGE_COOKIES = [
    b"wxauth_session=\xff\xfe\x00\x01",
    b"wxauth_session=\x80\x81; wxauth_session_login=\xff",
    b"\xff\xff\xff",
    b"wxauth_session=" + bytes(range(0x80, 0x100)),
    "wxauth_session=中文.x.y".encode(),
    b";;;;==;=;wxauth_session",
    b"wxauth_session=%ff%fe",
    b'wxauth_session="\\"\\"\\""',
    b"wxauth_session=" + b"\x01" * 100,
    b"wxauth_session=" + b"." * 5000,
    b"wxauth_session=garbage; wxauth_session=; wxauth_session==",
]


@pytest.mark.parametrize("cookie", GARBAGE_COOKIES, ids=lambda c: c[:24].decode("latin-1"))
async def test_garbage_cookie_bytes_are_no_session_never_an_error(
    cookie: bytes, stack: Stack
) -> None:
    stack.emulator()
    middleware = stack.middleware()
    desktop = await _raw(middleware, b"/page", [(b"cookie", cookie)], user_agent=CHROME_UA)
    api = await _raw(middleware, b"/api", [(b"cookie", cookie), (b"accept", b"application/json")])
    nav = await _raw(middleware, b"/page", [(b"cookie", cookie)])
    callback = await _raw(middleware, b"/wxauth/callback?code=c&state=abc", [(b"cookie", cookie)])
    assert desktop.status == 200
    assert b'"user":null' in desktop.body.replace(b" ", b"")
    assert api.status == 401
    assert nav.status == 302
    # No readable login-state cookie: refused, or (none at all: a lost cookie) the login
    # restarted from a page that goes to WeChat, never with this code.
    assert callback.status in (200, 400)
    if callback.status == 200:
        refresh = callback.header("refresh") or ""
        assert refresh.startswith("0;url=" + stack.authorize_url + "?")
    for answer in (desktop, api, nav, callback):
        _assert_safe_headers(answer.headers, (stack.authorize_url,))
        assert _sessions_set(answer.set_cookies()) == []


async def test_a_session_smuggled_inside_another_cookies_value_is_no_session(
    stack: Stack,
) -> None:
    """Only a cookie *named* like the session cookie is a session. A value that merely holds
    "wxauth_session=..." after a space (a cookie the site fills from user input, a tracking
    cookie set from a URL parameter) must not log the browser in as whoever signed it: that
    would be login CSRF without going through the state check."""
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    attacker = await _logged_in_session(stack, middleware)  # xiaoming, the attacker here
    async with stack.phone(middleware) as client:
        own = await _start(client)
        await client.get(_callback(own.state, emulator.issue_code("lily")))
        victim = client.cookies[SESSION]
    cases = {
        f"utm_campaign=x {SESSION}={attacker}".encode(): None,
        f"utm_campaign=x {SESSION}={attacker}; lang=zh".encode(): None,
        f"utm_campaign=x {SESSION}={attacker}; {SESSION}={victim}".encode(): LILY,
        f"{SESSION}={victim}; utm_campaign=x {SESSION}={attacker}".encode(): LILY,
        f"utm_campaign=x,{SESSION}={attacker}".encode(): None,
        f"utm_campaign=x\t{SESSION}={attacker}".encode(): None,
    }
    for cookie, expected in cases.items():
        answer = await _raw(middleware, b"/whoami", [(b"cookie", cookie)], user_agent=CHROME_UA)
        assert answer.status == 200, answer
        user = json.loads(answer.body)["user"]
        got = None if user is None else user["openid"]
        want = None if expected is None else expected.openid_for(DEFAULT_APP_ID)
        assert got == want, (cookie, got)


async def test_key_rotation_end_to_end(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    old = stack.middleware(secret_key=OLD_KEY)
    rotated = stack.middleware(secret_key=[OLD_KEY, NEW_KEY])
    new_only = stack.middleware(secret_key=NEW_KEY)
    async with stack.phone(old) as client:
        await login(client)
        old_session = client.cookies[SESSION]
        client.cookies.clear()
        pending = await _start(client, "/later")  # a login in progress across the deploy
    code = emulator.issue_code("lily")

    async def user(middleware: Middleware, session: str) -> Any:
        async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
            response = await desktop.get("/whoami", headers={"cookie": f"{SESSION}={session}"})
        assert _sessions_set(_set_cookies(response)) == []  # a valid session is not re-written
        return response.json()["user"]

    assert (await user(rotated, old_session))["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    async with stack.phone(rotated) as client:
        finished = await client.get(
            _callback(pending.state, code), headers={"cookie": pending.cookie}
        )
        assert location(finished) == "/later"
        finished_session = _cookie_value(_sessions_set(_set_cookies(finished)), SESSION)
        client.cookies.clear()
        await login(client, "/fresh")
        fresh_session = client.cookies[SESSION]
    for session in (finished_session, fresh_session):
        assert await user(new_only, session) is not None  # signed with the new key...
        assert await user(old, session) is None  # ...not with the old one
    assert (await user(new_only, finished_session))["openid"] == LILY.openid_for(DEFAULT_APP_ID)
    assert await user(new_only, old_session) is None  # the old key removed: anonymous


# -- 5. secrets ---------------------------------------------------------------------------------


async def test_no_secret_token_or_code_leaks_across_a_whole_session(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = stack.emulator()
    recorder = _Recorder()
    errors: list[WeChatAuthError] = []

    def on_error(error: WeChatAuthError, request: HTTPRequest) -> None:
        errors.append(error)

    middleware = stack.middleware(
        scope="snsapi_userinfo",
        secret_key=[OLD_KEY, NEW_KEY],
        transport=recorder,
        on_error=on_error,
    )
    site: list[str] = []
    callback_codes: set[str] = set()
    leaky = "LEAKY-token-value-5f2e9a"

    async def keep(response: httpx.Response) -> None:
        if response.url.host == "localhost":
            await response.aread()
            site.append(str(response.headers.raw) + response.content.decode("utf-8", "replace"))
            if response.url.path == "/wxauth/callback":
                callback_codes.update(
                    v for k, v in response.url.params.multi_items() if k == "code"
                )

    async def to_callback(client: httpx.AsyncClient, path: str, persona: str) -> str:
        consent = await client.get(location(await client.get(path)))
        return location(await approve_consent(client, consent, persona=persona))

    async with _browser(stack, middleware, emulator) as client:
        client.event_hooks["response"] = [keep]
        assert (await login(client, "/page", persona="xiaoming")).status_code == 200
        await client.post("/wxauth/logout?next=/", headers={"origin": APP_ORIGIN})
        # After a logout, WeChat's visitor logs in again on purpose (the logged-out page's
        # button).
        assert (await login(client, "/wxauth/login?next=/me", persona="lily")).status_code == 200
        client.cookies.clear()
        faults: list[dict[str, Any]] = [
            {"endpoint": "access_token", "errcode": 40001},
            {"endpoint": "access_token", "errcode": 45011},
            {"endpoint": "access_token", "http_status": 500},
            {
                "endpoint": "access_token",
                "body": f'{{"access_token": "{leaky}", "openid": 5}}'.encode(),
            },
            {"endpoint": "userinfo", "errcode": 48001},
            {"endpoint": "userinfo", "body": b"<html>oops</html>"},
        ]
        for fault in faults:
            client.cookies.clear()
            callback_url = await to_callback(client, "/page", "xiaoming")
            emulator.inject(**fault)
            failed = await shown(client, callback_url)
            assert failed.status_code in (500, 502, 503), failed.text
            replay = await client.get(callback_url)  # a reload: finishes or restarts the login
            assert replay.status_code == 302, replay.text
        client.cookies.clear()
        # An invalid code: restarted once, then the login goes through.
        callback_url = await to_callback(client, "/again", "ctrl")
        emulator.inject("access_token", errcode=40029)
        restart = await client.get(callback_url)
        consent = await client.get(location(restart))
        approved = await approve_consent(client, consent, persona="ctrl")
        assert (await client.get(location(approved))).status_code == 302
        client.cookies.clear()
        snapshot = await shown(client, await to_callback(client, "/snap", "snapshot"))
        assert snapshot.status_code == 200
        await client.get("/api", headers=JSON)
        await shown(client, "/wxauth/callback?code=bogus-code-4e1f9c2a&state=abc")
    assert errors
    tokens = recorder.tokens()
    assert len(tokens) >= 8  # access and refresh tokens of four logins at least
    assert any(a.get("refresh_token") for a in recorder.token_answers())
    codes = {code for code in _token_codes(emulator) if code} | callback_codes
    assert len(codes) >= 10
    hidden = {DEFAULT_APP_SECRET, OLD_KEY, NEW_KEY, leaky, *tokens, *codes}

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = [formatter.format(record) for record in caplog.records]
    assert any("login ok" in line for line in logged)
    assert any("errcode=40001" in line for line in logged)
    texts = [
        *site,
        *logged,
        repr(middleware),
        str(middleware),
        repr(middleware.config),
        str(middleware.config),
        *(repr(error) for error in errors),
        *(str(error) for error in errors),
        *(f"{error.title} {error.hint} {error.message}" for error in errors),
    ]
    for text in texts:
        for secret in hidden:
            assert secret not in text, (secret, text[:500])


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_secrets_stay_out_of_reprs_and_configuration_errors(kind: str) -> None:
    secret = "s3cr3t-App-Secret-0123456789"
    website_secret = "s3cr3t-Website-Secret-987654"
    cls: type[Any] = WeChatAuthMiddleware if kind == "asgi" else WeChatAuthWSGIMiddleware
    base: dict[str, Any] = {
        "app_id": DEFAULT_APP_ID,
        "app_secret": secret,
        "secret_key": [OLD_KEY, NEW_KEY],
        "other_browsers": "qrconnect",
        "website_app_id": DEFAULT_WEBSITE_APP_ID,
        "website_app_secret": website_secret,
        "verify_files": {"MP_verify_Ab12Cd34.txt": "Ab12Cd34"},
    }
    middleware = cls(None, **base)
    texts = [repr(middleware), str(middleware), repr(middleware.config), str(middleware.config)]
    hidden = {secret, website_secret, OLD_KEY, NEW_KEY}
    mistakes: list[dict[str, Any]] = [
        {"app_secret": "has a space " + secret},
        {"secret_key": [OLD_KEY, ""]},
        {"secret_key": [OLD_KEY, 12345]},
        {"secret_key": {OLD_KEY: NEW_KEY}},
        {"website_app_id": DEFAULT_APP_ID},
        {"website_app_secret": None},
    ]
    for mistake in mistakes:
        with pytest.raises(ValueError, match=r"\w") as raised:
            cls(None, **{**base, **mistake})
        texts += [str(raised.value), repr(raised.value)]
    environ = {
        "WXAUTH_APP_ID": DEFAULT_APP_ID,
        "WXAUTH_APP_SECRET": "has a space " + secret,
        "WXAUTH_SECRET_KEY": f"{OLD_KEY},{NEW_KEY}",
    }
    with pytest.raises(ValueError, match="app_secret") as from_env:
        cls.from_env(None, environ=environ)
    texts += [str(from_env.value), repr(from_env.value)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls(None, **{**base, "secret_key": [OLD_KEY, "short-new-key"]})
    hidden.add("short-new-key")
    texts += [str(w.message) for w in caught]
    assert caught  # the short key was warned about...
    for text in texts:
        for value in hidden:
            assert value not in text, text  # ...without being named
