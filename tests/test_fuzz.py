"""Property-based fuzzing of both adapters, in-process, with hypothesis.

The ASGI middleware is called directly with generated scopes (on one event loop, through a
blocking portal); the WSGI middleware with generated PEP 3333 environs, through
`wsgiref.validate.validator` (which also checks every response it sends). WeChat's API is an
`httpx.MockTransport` whose answers are drawn too, so a callback with an issued state goes as
deep as the login can: token, userinfo, snapshot users, errcodes, garbage, timeouts.

Requests are generated from paths (the middleware's own ones, verify files, tricky and over-long
ones, random bytes), query strings (`code`/`state`/`next`/`scope` with issued and random values),
methods, headers (random names, latin-1 values), cookies (random, and mutated valid session and
state cookies), user agents and Host headers. Invariants, for every request:

- no exception escapes the middleware;
- the inner application is called at most once, always with `wechat_user` set (None or a
  `WeChatUser` WeChat vouched for), and then answers itself (the middleware adds nothing);
- otherwise the middleware answers a status in OWN_STATUSES, and 500 only for a configuration
  error (a bad AppSecret/AppID, a scope the account lacks, no unionid with identity="unionid");
  a page of its own puts only the callback's clean address (`callback_path?page=...`, no code
  or state) in the address bar;
- no header holds CR or LF; a `Location` is the configured authorize/qrconnect URL (whose
  redirect_uri is a valid URL on the site's origin) or a path of this site;
- a session cookie is only ever set by the callback of a state issued to this browser;
- no response carries the AppSecret or a signing key.

Each example picks one of the CONFIGS sites, among them "store": sessions in the session's real
Redis server (the differential test leaves it out: both adapters share the store, so the first
one's answer changes what the second one finds), and "scan": the desktop login by scanning.

The paths added since have a property of their own, per adapter (`test_the_newer_paths_...`):
the JS-SDK's endpoint and script (WeChat's stable_token and getticket answers drawn too; a 200
signs only a page of the site's own origin, with the ticket WeChat gave), every scan path (a
ticket started by the desktop, opened and confirmed by a phone or not, its binding cookie sent,
mutated or not, the phone's form posted with tokens real or not; only the confirmed desktop's
`done` may set a session), the callback's clean pages (`?page=` minted, mutated, made up: never
a redirect) and the restart page (a callback with a code and no login-state cookie).

Examples per property: 300, or WXAUTH_FUZZ_EXAMPLES. The last test prints how many examples
each property ran.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode, urlsplit
from wsgiref.validate import validator

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from wxauth_middleware import (
    ConfigurationError,
    HTTPRequest,
    Rule,
    WeChatAPIError,
    WeChatAuthError,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
    WeChatUser,
)
from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
)
from wxauth_middleware.wechat.credentials import jssdk_signature
from wxauth_middleware.wechat.errcodes import ERRCODES

from .redis_support import REDIS_SERVER, RedisServer
from .support import CHROME_UA, SECRET_KEY, WECHAT_UA, WECOM_UA, clean_address

AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
QRCONNECT_URL = "https://open.weixin.qq.com/connect/qrconnect"
# What the middleware may answer by itself (405: a JS-SDK path asked with another method;
# 409/410: a scan login's ticket not confirmed yet / expired or used; 413: a scan form too
# large).
OWN_STATUSES = frozenset({200, 302, 303, 400, 401, 403, 405, 409, 410, 413, 500, 502, 503, 504})
# WeChat errcodes that mean the site is misconfigured: the only WeChat answers worth a 500.
# The errcodes that are the site's configuration to fix (a 500), as the errcode table says.
CONFIG_ERRCODES = frozenset(code for code, (status, _) in ERRCODES.items() if status == 500)
# Where a browser may be sent: one '/', not followed by '/' or '\', printable ASCII only.
SAFE_PATH = re.compile(r"/(?![/\\])[!-~]*")
# The characters both adapters leave unencoded in a path (RFC 3986 pchar and '/').
PATH_SAFE = "/:@!$&'()*+,;=-._~"
MINI_PROGRAM_UA = WECHAT_UA + " miniProgram"
VERIFY_FILE = "MP_verify_Fuzz123.txt"
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Examples per property: 300 in the suite (about a minute for the whole file); the long run
# is `WXAUTH_FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz.py -q` (docs/development.md).
# No shrinking: a failing example is reported as it was drawn (every draw is labelled), with a
# blob for @reproduce_failure; shrinking requests with kilobytes of path can take minutes. Add
# Phase.shrink here to shrink one locally.
EXAMPLES = int(os.environ.get("WXAUTH_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Transient failures are retried with a real sleep: not here (the option is recent, so only
# when the middleware has it).
_NO_RETRIES = (
    {"retries": 0}
    if "retries" in inspect.signature(WeChatAuthMiddleware.__init__).parameters
    else {}
)

# -- configurations -----------------------------------------------------------------------------

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "policies": {
        "scope": "snsapi_userinfo",
        "public_url": "https://example.com",
        "rules": [
            Rule("/static/**", exempt=True),
            Rule("/profile/**", scope="snsapi_userinfo"),
            Rule("/members/**", other_browsers="refuse"),
        ],
        "other_browsers": "qrconnect",
        "website_app_id": DEFAULT_WEBSITE_APP_ID,
        "website_app_secret": DEFAULT_WEBSITE_APP_SECRET,
        "verify_files": {VERIFY_FILE: "Fuzz123"},
        "snapshot_users": "app",
        "identity": "unionid",
    },
    "refuse": {
        "other_browsers": "refuse",
        "callback_path": "/shop/cb",
        "login_path": None,
        "logout_path": "/shop/out",
        "session_cookie": "sid",
        "max_age": None,
        "https_only": True,
    },
    # Desktop login by scanning (tickets in the process), and the JS-SDK's paths (on in all).
    "scan": {"other_browsers": "scan", "scan_max_age": 60},
}


# Sessions in Redis (the real server of the test session): fuzzed where Redis runs (always in CI).
STORE: dict[str, Any] = {"redis_prefix": "fuzz:", "keep_tokens": True}
if REDIS_SERVER is not None or os.environ.get("CI"):
    CONFIGS["store"] = STORE


@dataclass(frozen=True)
class Site:
    name: str
    callback_path: str
    session_cookie: str
    public_url: str | None

    https: bool  # the site's cookies are Secure whatever the request (public_url, https_only)

    def session_name(self, scheme: str) -> str:
        """The session cookie's name on a request of `scheme`: `__Host-` on https."""
        return (
            f"__Host-{self.session_cookie}"
            if self.https or scheme == "https"
            else self.session_cookie
        )

    @property
    def login_cookie(self) -> str:
        """The login-state cookie's name (the fuzzed requests are http)."""
        return (
            f"__Host-{self.session_cookie}_login" if self.https else f"{self.session_cookie}_login"
        )


def _site(name: str) -> Site:
    options = CONFIGS[name]
    return Site(
        name,
        options.get("callback_path", "/wxauth/callback"),
        options.get("session_cookie", "wxauth_session"),
        options.get("public_url"),
        options.get("https_only", False) or options.get("public_url", "").startswith("https:"),
    )


SITES = {name: _site(name) for name in CONFIGS}

# -- WeChat's API, scripted per example -------------------------------------------------------


def _token(scope: str, openid: str, **extra: Any) -> bytes:
    answer = {
        "access_token": "ACCESS-fuzz-token",
        "expires_in": 7200,
        "refresh_token": "REFRESH-fuzz-token",
        "openid": openid,
        "scope": scope,
        **extra,
    }
    return json.dumps(answer).encode()


def _errcode(code: object) -> bytes:
    return json.dumps({"errcode": code, "errmsg": f"fuzz, rid: 5f-{code}"}).encode()


OPENIDS = frozenset({"oFuzzBase", "oFuzzProfile", "oFuzzSnapshot", "oFuzzWebsite"})
Answer = bytes | type[Exception] | int  # a body, an exception to raise, or an HTTP error status
GOOD_TOKENS: list[Answer] = [
    _token("snsapi_base", "oFuzzBase"),
    _token("snsapi_userinfo", "oFuzzProfile", unionid="uFuzzUnion"),
    _token("snsapi_userinfo", "oFuzzProfile"),
    _token("snsapi_userinfo", "oFuzzSnapshot", is_snapshotuser=1),
    _token("snsapi_login", "oFuzzWebsite", unionid="uFuzzUnion"),
    _token("snsapi_base,snsapi_userinfo", "oFuzzProfile", unionid="uFuzzUnion"),
]
ERRCODE_TOKENS: list[Answer] = [
    *(
        _errcode(code)
        for code in (
            -1,
            40001,
            40002,
            40003,
            40013,
            40029,
            40125,
            40163,
            42003,
            45009,
            45011,
            48001,
        )
    ),
    _errcode(99999),
    _errcode("40029"),
    _errcode(True),
]
GARBAGE_TOKENS: list[Answer] = [
    b'{"access_token": 5, "openid": "oFuzzBase"}',
    b'{"access_token": "a", "openid": ""}',
    b'{"access_token": "a", "openid": "oFuzzBase", "expires_in": "soon"}',
    b"<html>502 Bad Gateway</html>",
    b"[1, 2]",
    b"",
    b"\xff\xfe\x00",
    b"[" * 50_000,  # nesting deeper than the JSON parser's recursion limit
    b'{"a":' * 50_000,
]
FAILURES: list[Answer] = [
    500,
    404,
    httpx.ReadTimeout,
    httpx.ConnectError,
    httpx.RemoteProtocolError,
]
USERINFO_ANSWERS: list[Answer] = [
    b"ECHO",  # a good answer for the token's openid
    b'{"openid": "oSomeoneElse", "nickname": "x"}',
    b'{"openid": "ECHO", "privilege": "not a list"}',
    b'{"openid": "ECHO", "sex": "1"}',
    b'{"openid": "ECHO", "nickname": "\\u0007\xe6\x8e\xa7", "privilege": [1, null]}',
    _errcode(48001),
    _errcode(-1),
    b"not json",
    b"{" * 50_000,
    500,
    httpx.ReadTimeout,
]


@dataclass
class WeChatScript:
    """What WeChat's API answers in the current example."""

    token: Answer = GOOD_TOKENS[0]
    userinfo: Answer = USERINFO_ANSWERS[0]

    def answer(self, request: httpx.Request) -> httpx.Response:
        planned = self.userinfo if request.url.path.endswith("/userinfo") else self.token
        if isinstance(planned, type):
            raise planned("fuzzed failure", request=request)  # type: ignore[call-arg]
        if isinstance(planned, int):
            return httpx.Response(planned, text="<html>error</html>")
        if planned == b"ECHO" or b'"ECHO"' in planned:
            openid = request.url.params.get("openid", "")
            if planned == b"ECHO":
                planned = json.dumps(
                    {
                        "openid": openid,
                        "nickname": "Fuzz 🐼",
                        "privilege": [],
                        "unionid": "uFuzzUnion",
                    }
                ).encode()
            else:
                planned = planned.replace(b'"ECHO"', json.dumps(openid).encode())
        return httpx.Response(200, content=planned, headers={"content-type": "text/plain"})


SCRIPT = WeChatScript()
token_answers = st.one_of(
    st.sampled_from(GOOD_TOKENS),
    st.sampled_from(ERRCODE_TOKENS),
    st.sampled_from(GARBAGE_TOKENS),
    st.sampled_from(FAILURES),
    st.dictionaries(
        st.sampled_from(
            ["access_token", "openid", "scope", "unionid", "errcode", "is_snapshotuser"]
        ),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    ).map(lambda d: json.dumps(d).encode()),
)
userinfo_answers = st.sampled_from(USERINFO_ANSWERS)

# -- what the inner application and the error hook saw -------------------------------------------

MISSING = object()


@dataclass
class Seen:
    app_users: list[object] = field(default_factory=list)
    errors: list[WeChatAuthError] = field(default_factory=list)

    def clear(self) -> None:
        self.app_users.clear()
        self.errors.clear()


SEEN = Seen()


async def inner_asgi(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    SEEN.app_users.append(scope.get("wechat_user", MISSING))
    headers = [(b"content-type", b"text/plain"), (b"x-app", b"reached")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"app"})


def inner_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    SEEN.app_users.append(environ.get("wechat_user", MISSING))
    start_response("200 OK", [("content-type", "text/plain"), ("x-app", "reached")])
    return [b"app"]


def on_error(error: WeChatAuthError, request: HTTPRequest) -> None:
    SEEN.errors.append(error)  # and the default page


def _middleware(kind: str, name: str) -> WeChatAuthMiddleware | WeChatAuthWSGIMiddleware:
    options: dict[str, Any] = {
        "app_id": DEFAULT_APP_ID,
        "app_secret": DEFAULT_APP_SECRET,
        "secret_key": SECRET_KEY,
        "transport": httpx.MockTransport(SCRIPT.answer),
        "on_error": on_error,
        **_NO_RETRIES,
        **CONFIGS[name],
    }
    if kind == "asgi":
        return WeChatAuthMiddleware(inner_asgi, **options)
    return WeChatAuthWSGIMiddleware(inner_wsgi, **options)


# -- requests, and calling the middleware as a server would ------------------------------------


@dataclass
class Req:
    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    scheme: str = "http"
    send_raw_path: bool = True
    script_name: str = ""
    body: bytes = b""

    def header(self, name: bytes) -> bytes:
        return b", ".join(v for k, v in self.headers if k.lower() == name)

    def params(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in parse_qsl(self.query.decode("latin-1"), keep_blank_values=True):
            found.setdefault(key, value)
        return found


@dataclass
class Exchange:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    app_users: list[object]
    errors: list[WeChatAuthError]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


def _asgi_scope(req: Req) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": req.scheme,
        "path": unquote_to_bytes(req.raw_path).decode("utf-8", "replace"),
        "query_string": req.query,
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in req.headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 8000),
    }
    if req.send_raw_path:
        scope["raw_path"] = req.raw_path
    return scope


async def _asgi_exchange(app: WeChatAuthMiddleware, req: Req) -> Exchange:
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": req.body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    SEEN.clear()
    await app(_asgi_scope(req), receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert all(m["type"] == "http.response.body" for m in sent[1:])
    assert sent[-1].get("more_body", False) is False
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in sent[0]["headers"]]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return Exchange(sent[0]["status"], headers, body, list(SEEN.app_users), list(SEEN.errors))


def _environ(req: Req) -> dict[str, Any]:
    path_info = unquote_to_bytes(req.raw_path).decode("latin-1")
    if req.script_name and path_info.startswith(req.script_name):
        path_info = path_info[len(req.script_name) :]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": req.script_name,
        "PATH_INFO": path_info or ("" if req.script_name else "/"),
        "QUERY_STRING": req.query.decode("latin-1"),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": req.scheme,
        "wsgi.input": io.BytesIO(req.body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in req.headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value.decode("latin-1")
            continue
        key = "HTTP_" + key
        text = value.decode("latin-1")
        joiner = "; " if key == "HTTP_COOKIE" else ", "
        environ[key] = environ[key] + joiner + text if key in environ else text
    return environ


def _wsgi_exchange(app: WeChatAuthWSGIMiddleware, req: Req) -> Exchange:
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    SEEN.clear()
    # The validator asserts PEP 3333 on both sides: the environ, and the status and headers
    # the middleware answers (no control characters in a header value, a Content-Type...).
    result = validator(app)(_environ(req), start_response)
    try:
        body = b"".join(result)
    finally:
        close: Callable[[], None] | None = getattr(result, "close", None)
        if close is not None:
            close()
    [(status, headers)] = started
    return Exchange(
        int(status.split()[0]), list(headers), body, list(SEEN.app_users), list(SEEN.errors)
    )


class Driver:
    """One middleware, ASGI or WSGI, and the way to call it."""

    def __init__(self, kind: str, site: Site, portal: BlockingPortal) -> None:
        self.kind = kind
        self.site = site
        self.middleware = _middleware(kind, site.name)
        self._portal = portal

    def __call__(self, req: Req) -> Exchange:
        if isinstance(self.middleware, WeChatAuthMiddleware):
            return self._portal.call(_asgi_exchange, self.middleware, req)
        return _wsgi_exchange(self.middleware, req)

    def __repr__(self) -> str:
        return f"Driver({self.kind!r}, {self.site.name!r})"

    def close(self) -> None:
        if isinstance(self.middleware, WeChatAuthMiddleware):
            self._portal.call(self.middleware.aclose)
        else:
            self.middleware.close()


@dataclass(frozen=True)
class Issued:
    """A state issued to "this browser", and the cookie that came with it."""

    state: str
    cookie_name: str
    cookie_value: str


def _cookie_of(exchange: Exchange, wanted: str) -> tuple[str, str] | None:
    for header in exchange.set_cookies():
        name, _, rest = header.partition("=")
        if name == wanted:
            return name, rest.split(";", 1)[0]
    return None


def _start_login(driver: Driver, page: str = "/page") -> Issued:
    """A WeChat page visit without a session: the state the middleware issues."""
    SCRIPT.token, SCRIPT.userinfo = GOOD_TOKENS[1], USERINFO_ANSWERS[0]
    exchange = driver(
        Req(
            "GET",
            page.encode(),
            b"",
            [(b"host", b"localhost:8000"), (b"user-agent", WECHAT_UA.encode())],
        )
    )
    assert exchange.status == 302, exchange
    location = exchange.header("location")
    assert location is not None
    state = dict(parse_qsl(urlsplit(location).query))["state"]
    cookie = _cookie_of(exchange, driver.site.login_cookie)
    assert cookie is not None
    return Issued(state, *cookie)


class Fixture:
    """Per adapter and configuration: a driver, two logged-in users' session cookies (so that
    a request can carry someone else's), and a completed state."""

    def __init__(
        self, driver: Driver, sessions: dict[str, str], done: Issued, issued: set[Issued]
    ) -> None:
        self.driver = driver
        self.sessions = sessions  # session cookie value -> its user's openid
        self.done = done
        self.issued = issued

    def __repr__(self) -> str:
        return f"Fixture({self.driver!r})"


def _login(driver: Driver, token: Answer) -> tuple[Issued, str, Issued]:
    """A whole login through the driver: the state issued, the session, the completed state."""
    login = _start_login(driver)
    SCRIPT.token, SCRIPT.userinfo = token, USERINFO_ANSWERS[0]
    callback = driver(
        Req(
            "GET",
            driver.site.callback_path.encode(),
            f"code=fixture&state={login.state}".encode(),
            [
                (b"host", b"localhost:8000"),
                (b"user-agent", WECHAT_UA.encode()),
                (b"cookie", f"{login.cookie_name}={login.cookie_value}".encode()),
            ],
        )
    )
    assert callback.status == 302, callback
    session = _cookie_of(callback, driver.site.session_name("http"))
    done = _cookie_of(callback, login.cookie_name)
    assert session is not None
    assert done is not None
    return login, session[1], Issued(login.state, *done)


def _fixture(kind: str, name: str, portal: BlockingPortal) -> Fixture:
    driver = Driver(kind, SITES[name], portal)
    login, profile, done = _login(driver, GOOD_TOKENS[1])
    other = _token("snsapi_userinfo", "oFuzzBase", unionid="uFuzzOther")
    _, base, _ = _login(driver, other)
    return Fixture(driver, {profile: "oFuzzProfile", base: "oFuzzBase"}, done, {login})


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="module")
def fixtures(
    portal: BlockingPortal, request: pytest.FixtureRequest
) -> Iterator[dict[tuple[str, str], Fixture]]:
    redis_server: RedisServer | None = None
    if "store" in CONFIGS:
        redis_server = request.getfixturevalue("redis_server")
        STORE["redis_url"] = redis_server.url
    built = {
        (kind, name): _fixture(kind, name, portal) for kind in ("asgi", "wsgi") for name in CONFIGS
    }
    yield built
    for fixture in built.values():
        fixture.driver.close()
    if redis_server is not None:
        with redis_server.client() as client:
            keys = list(client.scan_iter(match=str(STORE["redis_prefix"]) + "*"))
            if keys:
                client.delete(*keys)


# -- strategies -----------------------------------------------------------------------------------

latin1_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=40)
header_values = st.one_of(
    latin1_text.map(lambda s: s.encode("latin-1")),
    st.binary(max_size=30).map(
        lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
    ),
)
TRICKY_PATHS = [
    b"//evil.com/x",
    b"/\\evil.com",
    b"/%2F%2Fevil.com",
    b"/%5C%5Cevil.com",
    b"/\\/evil.com",
    b"/%0d%0aLocation:%20https://evil.com",
    b"/%E2%88%95%E2%88%95evil.com",
    b"/%EF%BC%8F%EF%BC%8Fevil.com",
    b"/\xff\xfe",
    b"/%ff%fe",
]
KNOWN_PATHS = [
    "/",
    "/page",
    "/wxauth/callback",
    "/wxauth/login",
    "/wxauth/logout",
    "/shop/cb",
    "/shop/out",
    "/" + VERIFY_FILE,
    "/MP_verify_Other9.txt",
    "/static/app.js",
    "/profile/me",
    "/members/list",
    "/api/me",
    "/wxauth/callback/",
    "/WXAUTH/CALLBACK",
]
raw_paths = st.one_of(
    st.sampled_from(KNOWN_PATHS).map(str.encode),
    st.sampled_from(TRICKY_PATHS),
    st.text(max_size=40).map(lambda s: b"/" + quote(s.encode("utf-8"), safe=PATH_SAFE).encode()),
    st.binary(max_size=30).map(lambda b: b"/" + bytes(c for c in b if c not in b"?# \r\n\x00")),
    st.integers(1000, 6000).map(lambda n: b"/" + b"a" * n),
)
canonical_paths = st.one_of(
    st.sampled_from(KNOWN_PATHS).map(str.encode),
    st.text(max_size=40).map(lambda s: b"/" + quote(s.encode("utf-8"), safe=PATH_SAFE).encode()),
    st.integers(1000, 6000).map(lambda n: b"/" + b"a" * n),
)
NEXT_VALUES = [
    "/spa#x",
    "/other?a=1",
    "//evil.com",
    "/\\evil.com",
    "https://evil.com",
    "javascript:alert(1)",
    "\r\nLocation: https://evil.com",
    "/\u2215\u2215evil.com",
    "\uff0f\uff0fevil.com",
    "/" + "a" * 5000,
]
USER_AGENTS = [WECHAT_UA, MINI_PROGRAM_UA, WECOM_UA, CHROME_UA, "MicroMessenger/8.0", "curl/8"]
HOSTS = [
    b"localhost:8000",
    b"example.com",
    b"EXAMPLE.com:443",
    b"evil.com",
    b"[::1]:8000",
    b"evil.com:80@good.com",
    b"good.com/evil",
    b"a" * 300,
]


def _mutate(data: st.DataObject, value: str) -> str:
    """`value`, changed so that it is different (the signature no longer matches)."""
    if not value:
        return "x"
    op = data.draw(st.sampled_from(["flip", "truncate", "append", "insert", "case"]))
    # Not the last character: base64 ignores its low bits, so a flip there may be a no-op.
    # Drawn from a fixed range: signed values' lengths vary from run to run (compression).
    index = data.draw(st.integers(0, 4095)) % max(1, len(value) - 1)
    if op == "flip":
        return value[:index] + ("A" if value[index] != "A" else "B") + value[index + 1 :]
    if op == "truncate":
        return value[:index]
    if op == "append":
        return value + data.draw(st.text(ALNUM + ".-_", min_size=1, max_size=8))
    if op == "insert":
        return value[:index] + data.draw(st.sampled_from('.-_=;"\\')) + value[index:]
    swapped = value.swapcase()
    return swapped if swapped != value else value + "x"


def _cookie_header(
    data: st.DataObject, fixture: Fixture, issued: list[Issued], scheme: str
) -> bytes | None:
    site = fixture.driver.site
    sessions = st.sampled_from(sorted(fixture.sessions))
    # The name the request's scheme reads, mostly; the other one too (on https, a planted
    # plain-named cookie must be ignored).
    session_cookie = data.draw(
        st.sampled_from([site.session_name(scheme)] * 3 + [site.session_cookie])
    )
    pieces: list[str] = []
    kinds = [
        "session",
        "session-mutated",
        "session-quoted",
        "session-smuggled",
        "state",
        "state-mutated",
        "state-renamed",
        "done",
        "random",
    ]
    for _ in range(data.draw(st.integers(0, 4))):
        kind = data.draw(st.sampled_from(kinds))
        if kind == "session":
            pieces.append(f"{session_cookie}={data.draw(sessions)}")
        elif kind == "session-mutated":
            pieces.append(f"{session_cookie}={_mutate(data, data.draw(sessions))}")
        elif kind == "session-quoted":
            pieces.append(f'{session_cookie}="{data.draw(sessions)}"')
        elif kind == "session-smuggled":
            # Inside another cookie's value: not a session cookie.
            name = data.draw(st.sampled_from(["utm", "q", "x"]))
            pieces.append(f"{name}=a {session_cookie}={data.draw(sessions)}")
        elif kind in ("state", "state-mutated", "state-renamed") and issued:
            login = data.draw(st.sampled_from(issued))
            value = login.cookie_value
            name = login.cookie_name
            if kind == "state-mutated":
                value = _mutate(data, value)
            elif kind == "state-renamed":
                name = data.draw(st.sampled_from([session_cookie, site.login_cookie + "x"]))
            pieces.append(f"{name}={value}")
        elif kind == "done":
            pieces.append(f"{fixture.done.cookie_name}={fixture.done.cookie_value}")
        else:
            name = data.draw(st.one_of(st.just(session_cookie), st.text(ALNUM + "_", max_size=20)))
            pieces.append(f"{name}={data.draw(latin1_text)}")
    raw = data.draw(st.booleans()) and not pieces
    if raw:
        return data.draw(header_values)
    return "; ".join(pieces).encode("latin-1", "replace") if pieces else None


def _query(data: st.DataObject, states: list[str]) -> bytes:
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(st.binary(max_size=40)).replace(b"#", b"").replace(b" ", b"+")
    pairs: list[tuple[str, str]] = []
    for _ in range(data.draw(st.integers(0, 4))):
        key = data.draw(
            st.sampled_from(["code", "state", "next", "scope", "x"]) | st.text(max_size=8)
        )
        if key == "state" and states:
            value = data.draw(st.sampled_from(states) | st.text(ALNUM, max_size=130) | latin1_text)
        elif key == "code":
            value = data.draw(st.sampled_from(["c0de", "fixture", ""]) | latin1_text)
        elif key == "next":
            value = data.draw(st.sampled_from(NEXT_VALUES) | st.text(max_size=30))
        elif key == "scope":
            value = data.draw(
                st.sampled_from(["snsapi_base", "snsapi_userinfo", "snsapi_login", "x"])
            )
        else:
            value = data.draw(st.text(max_size=20))
        pairs.append((key, value))
    return urlencode(pairs).encode()


def _request(
    data: st.DataObject,
    fixture: Fixture,
    issued: list[Issued],
    *,
    wsgi: bool,
    canonical: bool = False,
) -> Req:
    """A request. Three scenarios, so that the deep paths are reached often: a plausible
    callback (an issued state, its cookie, a code), a page load (any path, a browser that may
    not be WeChat's), and anything at all. `canonical` requests are the same for both adapters
    (a path in its canonical percent-encoding, a Host header, no SCRIPT_NAME)."""
    site = fixture.driver.site
    states = [i.state for i in issued] + [fixture.done.state]
    scenario = data.draw(st.sampled_from(["callback", "page", "any", "any"]), label="scenario")
    paths = canonical_paths if canonical else raw_paths
    if scenario == "callback" or (scenario == "any" and data.draw(st.booleans())):
        raw_path = site.callback_path.encode()
    else:
        raw_path = data.draw(paths)
    if scenario == "page":
        method = data.draw(st.sampled_from(["GET", "HEAD"]))
    else:
        method = data.draw(
            st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
            | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)
        )
    headers: list[tuple[bytes, bytes]] = []

    def maybe(name: bytes, values: st.SearchStrategy[bytes]) -> None:
        value = data.draw(st.none() | values)
        if value is not None:
            headers.append((name, value))

    hosts = st.sampled_from(HOSTS) | header_values
    if canonical or scenario != "any":
        headers.append(
            (b"host", data.draw(st.sampled_from(HOSTS[:5]) if scenario != "any" else hosts))
        )
    else:
        maybe(b"host", hosts)
    maybe(b"user-agent", st.sampled_from(USER_AGENTS).map(str.encode) | header_values)
    accepts = st.sampled_from([b"text/html", b"application/json", b"*/*", b"image/webp,*/*"])
    maybe(b"accept", accepts | header_values if scenario == "any" else accepts)
    if scenario == "any":
        maybe(b"sec-fetch-mode", st.sampled_from([b"navigate", b"cors"]) | header_values)
        maybe(b"sec-fetch-dest", st.sampled_from([b"document", b"empty", b"iframe", b"image"]))
        maybe(b"x-requested-with", st.sampled_from([b"XMLHttpRequest", b"com.tencent.mm"]))
        maybe(
            b"referer",
            st.sampled_from(
                [
                    b"http://localhost:8000/spa?x=1",
                    b"https://evil.com/",
                    b"http://localhost:8000//evil.com",
                ]
            )
            | header_values,
        )
    scheme = data.draw(st.sampled_from(["http", "https"]))
    query = _query(data, states)
    cookie = _cookie_header(data, fixture, issued, scheme)
    if scenario == "callback":
        login = data.draw(st.sampled_from([*issued, fixture.done]), label="callback for")
        code = data.draw(st.sampled_from(["c0de", "fixture", ""]) | st.text(max_size=10))
        pairs = [("code", code), ("state", login.state)]
        if data.draw(st.integers(0, 4)) == 0:
            pairs.remove(("code", code))  # the user refused
        query = (urlencode(pairs) + ("&" + query.decode("latin-1") if query else "")).encode(
            "latin-1"
        )
        value = login.cookie_value
        if data.draw(st.integers(0, 9)) == 0:
            value = _mutate(data, value)
        own = f"{login.cookie_name}={value}".encode()
        cookie = own + b"; " + cookie if cookie else own
    if cookie is not None:
        headers.append((b"cookie", cookie))
    forbidden = {"host", "cookie", "content-type", "content-length"}
    for _ in range(data.draw(st.integers(0, 2))):
        name = data.draw(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))
        if name not in forbidden:
            headers.append((name.encode(), data.draw(header_values)))
    script_name = ""
    if wsgi and not canonical and data.draw(st.integers(0, 9)) == 0:
        script_name = "/shop"
    return Req(
        method,
        raw_path,
        query,
        headers,
        scheme=scheme,
        send_raw_path=wsgi or canonical or data.draw(st.integers(0, 9)) > 0,
        script_name=script_name,
    )


# -- the invariants -------------------------------------------------------------------------------


def _is_configuration_error(error: WeChatAuthError) -> bool:
    if isinstance(error, ConfigurationError):
        return True
    return isinstance(error, WeChatAPIError) and error.errcode in CONFIG_ERRCODES


def _expected_origin(req: Req, site: Site) -> str | None:
    if site.public_url is not None:
        return site.public_url
    host = req.header(b"host").decode("latin-1").lower()
    if not host:
        return None  # the WSGI adapter falls back to SERVER_NAME; checked for validity only
    for default in (":80", ":443"):
        if host.endswith(default) and (default == ":443") == (req.scheme == "https"):
            host = host[: -len(default)]
    return f"{req.scheme}://{host}"


def _check_location(value: str, req: Req, site: Site) -> None:
    for base in (AUTHORIZE_URL, QRCONNECT_URL):
        if value.startswith(base + "?"):
            query = dict(parse_qsl(urlsplit(value).query))
            redirect_uri = query["redirect_uri"]
            parts = urlsplit(redirect_uri)  # a valid URL: host and port parse
            assert parts.scheme in ("http", "https"), redirect_uri
            assert parts.hostname, redirect_uri
            assert parts.port is None or 0 < parts.port < 65536, redirect_uri
            assert parts.path == site.callback_path, redirect_uri
            origin = _expected_origin(req, site)
            if origin is not None:
                assert redirect_uri == origin + site.callback_path, (redirect_uri, origin)
            assert re.fullmatch(r"[A-Za-z0-9]{1,128}", query["state"])
            return
    assert SAFE_PATH.fullmatch(value), value


def _named(header: str, name: str) -> list[str]:
    """The values of the cookies called `name` in a Cookie header (RFC 6265: pairs separated
    by ';'), quoted or not."""
    values = []
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            values += [value, value[1:-1]] if value[:1] == value[-1:] == '"' else [value]
    return values


def check_invariants(
    req: Req,
    exchange: Exchange,
    fixture: Fixture,
    issued: list[Issued],
    scan: ScanLogin | None = None,
) -> None:
    site = fixture.driver.site
    # Headers: never CR/LF, never an off-site Location.
    for name, value in exchange.headers:
        assert not re.search(r"[\r\n]", name + value), (name, value)
        if name.lower() == "location":
            _check_location(value, req, site)
    text = repr(exchange.headers) + exchange.body.decode("utf-8", "replace")
    assert DEFAULT_APP_SECRET not in text
    assert SECRET_KEY not in text
    assert DEFAULT_WEBSITE_APP_SECRET not in text
    assert "ACCESS-fuzz-token" not in text
    assert "REFRESH-fuzz-token" not in text
    if exchange.app_users:
        # The application answered: once, with a user the middleware vouches for.
        [user] = exchange.app_users
        assert user is None or isinstance(user, WeChatUser), user
        assert exchange.status == 200
        assert exchange.header("x-app") == "reached"
        assert exchange.set_cookies() == []
        if isinstance(user, WeChatUser):
            assert user.openid in OPENIDS, user
            cookies = req.header(b"cookie").decode("latin-1")
            # Whose sessions the request carries, in cookies named like the session cookie.
            named = _named(cookies, site.session_name(req.scheme))
            owners = {fixture.sessions.get(value) for value in named}
            from_snapshot = user.is_snapshot_user and site.name == "policies"
            assert user.openid in owners or from_snapshot, (user, cookies)
        return
    # The middleware answered.
    assert exchange.status in OWN_STATUSES, exchange.status
    if exchange.status == 500 and req.raw_path == b"/wxauth/jssdk":
        # The JS-SDK's endpoint answers WeChat's errors itself (no on_error): its JSON says.
        if req.method != "HEAD":
            assert json.loads(exchange.body)["errcode"] in CONFIG_ERRCODES, exchange.body
    elif exchange.status == 500:
        assert exchange.errors, "a 500 that is not a login error"
        assert all(_is_configuration_error(e) for e in exchange.errors), exchange.errors
    if exchange.status == 302:
        assert exchange.header("location") is not None
    clean = clean_address(exchange.body.decode("utf-8", "replace"))
    if clean is not None:
        parts = urlsplit(clean)
        assert parts.path == site.callback_path, clean
        assert [k for k, _ in parse_qsl(parts.query)] == ["page"], clean
    # A session is only ever set by the callback of a state this browser was issued.
    for header in exchange.set_cookies():
        name, _, rest = header.partition("=")
        value = rest.split(";", 1)[0]
        if name in (site.session_cookie, site.session_name(req.scheme)) and value not in ("", '""'):
            if scan is not None and _scan_completes(req, scan):
                continue
            state = req.params().get("state")
            known = {i.state: i for i in issued}
            assert state in known, (state, header)
            login = known[state]
            cookies = req.header(b"cookie").decode("latin-1")
            assert f"{login.cookie_name}={login.cookie_value}" in cookies, cookies


# -- the properties -------------------------------------------------------------------------------

RUNS: Counter[str] = Counter()
KINDS_AND_SITES = [(kind, name) for kind in ("asgi", "wsgi") for name in CONFIGS]


def _run_one(data: st.DataObject, fixtures: dict[tuple[str, str], Fixture], kind: str) -> None:
    name = data.draw(st.sampled_from(list(CONFIGS)), label="config")
    fixture = fixtures[(kind, name)]
    issued = [next(iter(fixture.issued))]
    for _ in range(data.draw(st.integers(0, 2), label="logins started")):
        page = data.draw(st.sampled_from(["/page", "/a?b=1", "/profile/me"]))
        issued.append(_start_login(fixture.driver, page))
    SCRIPT.token = data.draw(token_answers, label="token answer")
    SCRIPT.userinfo = data.draw(userinfo_answers, label="userinfo answer")
    req = _request(data, fixture, issued, wsgi=kind == "wsgi")
    exchange = fixture.driver(req)
    check_invariants(req, exchange, fixture, issued)


@SETTINGS
@given(data=st.data())
def test_asgi_fuzzed_scopes_keep_the_invariants(
    data: st.DataObject, fixtures: dict[tuple[str, str], Fixture]
) -> None:
    RUNS["asgi: fuzzed scopes"] += 1
    _run_one(data, fixtures, "asgi")


@SETTINGS
@given(data=st.data())
@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")  # unknown methods
def test_wsgi_fuzzed_environs_keep_the_invariants(
    data: st.DataObject, fixtures: dict[tuple[str, str], Fixture]
) -> None:
    RUNS["wsgi: fuzzed environs"] += 1
    _run_one(data, fixtures, "wsgi")


# A login's state: 32 hex characters, a restarted login's "R" and 40 hex characters, or one
# started off public_url's host: "H", 40 hex characters, its host in hex. The callback's clean
# page: a signed token, timestamped.
_STATE_HEX = re.compile(r"[RH][0-9a-f]{40}|[0-9a-f]{32}|page=[A-Za-z0-9_.-]+")
# A scan login's ticket (in its URLs and its binding cookie's name), and its QR code.
_TICKET = re.compile(r"(?<=_scan_)[A-Za-z0-9_-]{22}|(?<=t=)[A-Za-z0-9_-]{22}|<svg.*?</svg>")


def _random_parts(text: str) -> str:
    return _TICKET.sub("T", _STATE_HEX.sub("S", text))


def _normalised(exchange: Exchange) -> tuple[Any, ...]:
    """What must not depend on the adapter: the random states and cookie values aside."""
    headers = sorted(
        (k.lower(), _random_parts(v.split("=", 1)[0] + ";" + v.partition(";")[2]))
        if k.lower() == "set-cookie"
        else (k.lower(), _random_parts(v))
        for k, v in exchange.headers
    )
    body = _random_parts(exchange.body.decode("utf-8", "replace"))
    if any("_scan_" in cookie for cookie in exchange.set_cookies()):
        # A scan page: its QR code's size depends on its random ticket (HEAD: no body).
        headers = [(k, "N" if k == "content-length" else v) for k, v in headers]
    return exchange.status, headers, body, exchange.app_users


@SETTINGS
@given(data=st.data())
@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_asgi_and_wsgi_answer_alike(
    data: st.DataObject, fixtures: dict[tuple[str, str], Fixture]
) -> None:
    """The same well-formed request (a canonical path, a Host) through both adapters: the same
    answer, the same user for the application, the same cookies set."""
    RUNS["asgi = wsgi: differential"] += 1
    # Not the store: both adapters share it, so the first one's answer (a login replacing a
    # session, a logout) changes what the second one finds.
    name = data.draw(st.sampled_from([n for n in CONFIGS if n != "store"]), label="config")
    asgi, wsgi = fixtures[("asgi", name)], fixtures[("wsgi", name)]
    # A state allows one exchange in each process: a fresh one for each example.
    issued = [_start_login(asgi.driver)]
    if data.draw(st.booleans()):
        issued.append(_start_login(asgi.driver))
    token = data.draw(token_answers, label="token answer")
    userinfo = data.draw(userinfo_answers, label="userinfo answer")
    req = _request(data, asgi, issued, wsgi=False, canonical=True)
    answers = []
    # The request may carry either adapter's sessions (both sign with the one key).
    sessions = {**asgi.sessions, **wsgi.sessions}
    # One second for both: what is signed or dated (cookies, their ages) must not differ by
    # the second each adapter happened to answer in.
    now = time.time()
    with mock.patch("time.time", return_value=now):
        for fixture in (asgi, wsgi):
            SCRIPT.token, SCRIPT.userinfo = token, userinfo
            exchange = fixture.driver(req)
            either = Fixture(fixture.driver, sessions, fixture.done, fixture.issued)
            check_invariants(req, exchange, either, issued)
            answers.append(_normalised(exchange))
    assert answers[0] == answers[1]


# -- the paths added since: the JS-SDK's, the scan login's, clean pages, the restart page --------

JSSDK_PATH = "/wxauth/jssdk"
SCAN_PATH = "/wxauth/scan"
JSSDK_TICKET = "TICKET-fuzz-ticket"
# The script answers stable_token and getticket alike: one answer that serves as both.
JSSDK_ANSWERS: list[Answer] = [
    json.dumps(
        {
            "errcode": 0,
            "access_token": "ACCESS-fuzz-token",
            "ticket": JSSDK_TICKET,
            "expires_in": 7200,
        }
    ).encode(),
    *(_errcode(code) for code in (-1, 40001, 42001, 45009, 40125, 40164)),
    b'{"ticket": 5, "expires_in": 7200}',
    b'{"access_token": "a", "expires_in": -5}',
    b"not json",
    500,
    httpx.ReadTimeout,
    httpx.ConnectError,
]
PAGE_URLS = [
    "http://localhost:8000/page",
    "http://localhost:8000/a?b=1#frag",
    "http://LOCALHOST:8000/p",
    "https://localhost:8000/p",
    "https://example.com/shop",
    "https://example.com:443/shop?x=%20",
    "https://evil.com/",
    "//localhost:8000/x",
    "javascript:alert(1)",
    "http://localhost:8000/a b",
    "http://localhost:8000/\u2028",
    "http://localhost:8000/" + "a" * 3000,
    "",
]
NEW_SCENARIOS = ["jssdk", "jssdk", "jssdk script", "scan", "scan", "clean page", "restart"]


@dataclass(frozen=True)
class ScanLogin:
    """A scan login started by "this" desktop: its ticket, the desktop's binding cookie
    ("name=value"), the phone's confirmation form's token once the phone opened it, and
    whether the phone confirmed."""

    ticket: str
    binding: str
    csrf: str | None
    confirmed: bool


def _scan_login(data: st.DataObject, fixture: Fixture) -> ScanLogin:
    driver = fixture.driver
    desktop = driver(
        Req(
            "GET",
            b"/members",
            b"",
            [(b"host", b"localhost:8000"), (b"user-agent", CHROME_UA.encode())],
        )
    )
    assert desktop.status == 200, desktop
    found = re.search(r'data-scan-url="[^"]*\?t=([A-Za-z0-9_-]+)"', desktop.body.decode())
    assert found is not None
    ticket = found[1]
    binding = next(c.split(";")[0] for c in desktop.set_cookies() if f"_scan_{ticket}=" in c)
    csrf, confirmed = None, False
    if data.draw(st.booleans(), label="the phone opened it"):
        session = data.draw(st.sampled_from(sorted(fixture.sessions)), label="the phone's")
        phone = [
            (b"host", b"localhost:8000"),
            (b"user-agent", WECHAT_UA.encode()),
            (b"cookie", f"{driver.site.session_name('http')}={session}".encode()),
        ]
        query = f"t={ticket}".encode()
        page = driver(Req("GET", f"{SCAN_PATH}/phone".encode(), query, phone))
        assert page.status == 200, page
        token = re.search(r'name="csrf" value="([^"]+)"', page.body.decode())
        assert token is not None
        csrf = token[1]
        if data.draw(st.booleans(), label="the phone confirmed"):
            body = urlencode({"decision": "confirm", "csrf": csrf}).encode()
            form = [
                (b"origin", b"http://localhost:8000"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
            ]
            done = driver(
                Req("POST", f"{SCAN_PATH}/phone".encode(), query, phone + form, body=body)
            )
            assert done.status == 200, done
            confirmed = True
    return ScanLogin(ticket, binding, csrf, confirmed)


def _scan_completes(req: Req, scan: ScanLogin) -> bool:
    """Whether `req` is the desktop fetching its confirmed login's `done` URL: the one request
    besides a callback that may set a session."""
    cookies = req.header(b"cookie").decode("latin-1")
    name, _, value = scan.binding.partition("=")
    return (
        scan.confirmed
        and req.raw_path == f"{SCAN_PATH}/done".encode()
        and req.params().get("t") == scan.ticket
        and value in _named(cookies, name)
    )


def _minted_page(fixture: Fixture, login: Issued) -> str:
    """A clean page's token, as a refused callback's page puts it in the address bar."""
    site = fixture.driver.site
    refused = fixture.driver(
        Req(
            "GET",
            site.callback_path.encode(),
            f"state={login.state}".encode(),
            [
                (b"host", b"localhost:8000"),
                (b"user-agent", WECHAT_UA.encode()),
                (b"accept", b"text/html"),
                (b"cookie", f"{login.cookie_name}={login.cookie_value}".encode()),
            ],
        )
    )
    address = clean_address(refused.body.decode("utf-8", "replace"))
    assert address is not None, refused
    return dict(parse_qsl(urlsplit(address).query))["page"]


def _new_path_request(
    data: st.DataObject, fixture: Fixture, issued: list[Issued], scenario: str
) -> tuple[Req, ScanLogin | None]:
    """A request of `scenario` (one of NEW_SCENARIOS): to one of the paths added since the
    fuzzing was written."""
    site = fixture.driver.site
    scheme = data.draw(st.sampled_from(["http", "https"]))
    method = data.draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "OPTIONS"]))
    headers = [
        (b"host", data.draw(st.sampled_from(HOSTS[:5]) | st.sampled_from(HOSTS))),
        (b"user-agent", data.draw(st.sampled_from(USER_AGENTS).map(str.encode) | header_values)),
    ]
    accepts = st.sampled_from([b"text/html", b"application/json", b"*/*"]) | header_values
    if data.draw(st.booleans()):
        headers.append((b"accept", data.draw(accepts)))
    cookies = [c for c in [_cookie_header(data, fixture, issued, scheme)] if c]
    pairs: list[tuple[str, str]] = []
    scan: ScanLogin | None = None
    body = b""
    if scenario == "jssdk":
        raw_path = JSSDK_PATH.encode()
        # Mostly a page of the origin the request names (or public_url), as a page asks.
        host = dict(headers)[b"host"].decode("latin-1")
        own = site.public_url or f"{scheme}://{host}"
        page = st.sampled_from(["/", "/page?a=1&b=%E4%BD%A0", "/spa#/route", "/" + "p" * 2000])
        ours = page.map(lambda tail: own + tail)
        urls = st.one_of(ours, ours, ours, st.sampled_from(PAGE_URLS), st.text(max_size=40))
        if data.draw(st.integers(0, 5)) > 0:
            pairs.append(("url", data.draw(urls)))
    elif scenario == "jssdk script":
        raw_path = (
            JSSDK_PATH + data.draw(st.sampled_from([".js", ".js/", ".JS", "x.js"]))
        ).encode()
    elif scenario == "scan":
        if site.name == "scan":
            scan = _scan_login(data, fixture)
        # A confirmed login's desktop mostly fetches its done URL, as its page does.
        tails = ["/done"] * 6 if scan is not None and scan.confirmed else []
        tails += ["", "/status", "/done", "/phone", "/phone/", "/x"]
        raw_path = (SCAN_PATH + data.draw(st.sampled_from(tails))).encode()
        ticket = scan.ticket if scan is not None else "AAAAAAAAAAAAAAAAAAAAAA"
        t = data.draw(st.sampled_from([ticket] * 4) | st.text(ALNUM + "-_", max_size=30))
        if data.draw(st.integers(0, 9)) > 0:
            pairs.append(("t", _mutate(data, t) if data.draw(st.integers(0, 5)) == 0 else t))
        if data.draw(st.booleans()):
            pairs.append(("next", data.draw(st.sampled_from(NEXT_VALUES))))
        if scan is not None and data.draw(st.integers(0, 5)) > 0:
            binding = scan.binding
            if data.draw(st.integers(0, 5)) == 0:
                binding = _mutate(data, binding)
            cookies.append(binding.encode("latin-1", "replace"))
        if method == "POST":
            csrf = scan.csrf if scan is not None and scan.csrf else "x"
            decision = data.draw(st.sampled_from(["confirm", "cancel", "", "CONFIRM"]))
            form = {
                "decision": decision,
                "csrf": _mutate(data, csrf) if data.draw(st.booleans()) else csrf,
            }
            body = (
                data.draw(st.binary(max_size=200))
                if data.draw(st.integers(0, 5)) == 0
                else urlencode(form).encode()
            )
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
            headers.append((b"content-length", str(len(body)).encode()))
            origin = st.sampled_from([b"http://localhost:8000", b"https://evil.com", b"null"])
            if data.draw(st.booleans()):
                headers.append((b"origin", data.draw(origin)))
            if data.draw(st.booleans()):
                site_header = st.sampled_from([b"same-origin", b"cross-site", b"none"])
                headers.append((b"sec-fetch-site", data.draw(site_header)))
    elif scenario == "clean page":
        raw_path = site.callback_path.encode()
        token = _minted_page(fixture, data.draw(st.sampled_from(issued)))
        kind = data.draw(st.sampled_from(["minted", "minted", "mutated", "random", "empty"]))
        if kind == "mutated":
            token = _mutate(data, token)
        elif kind == "random":
            token = data.draw(st.text(max_size=60))
        elif kind == "empty":
            token = ""
        pairs.append(("page", token))
    else:  # restart: a callback with a code but without its login-state cookie
        raw_path = site.callback_path.encode()
        login = data.draw(st.sampled_from([*issued, fixture.done]))
        state = data.draw(
            st.sampled_from([login.state, "R" + "0" * 40]) | st.text(ALNUM, max_size=41)
        )
        pairs += [("code", data.draw(st.sampled_from(["c0de", ""]))), ("state", state)]
        cookies = [c for c in cookies if login.cookie_value.encode() not in c]
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    req = Req(method, raw_path, urlencode(pairs).encode(), headers, scheme=scheme, body=body)
    return req, scan


def _same_origin(url: str, origin: str) -> bool:
    def key(address: str) -> tuple[str, str, int]:
        parts = urlsplit(address)
        return (
            parts.scheme,
            parts.hostname or "",
            parts.port or (443 if parts.scheme == "https" else 80),
        )

    return key(url) == key(origin)


def check_new_path_invariants(req: Req, exchange: Exchange, site: Site) -> None:
    path = req.raw_path.decode("latin-1")
    if path == JSSDK_PATH and not exchange.app_users:
        # JSON, never stored; a signature only for a page of the site's own origin.
        assert exchange.header("cache-control") == "no-store", exchange.headers
        assert (exchange.header("content-type") or "").startswith("application/json")
        if req.method == "HEAD":
            return
        answer = json.loads(exchange.body)
        if exchange.status == 200:
            assert set(answer) == {"appId", "timestamp", "nonceStr", "signature"}, answer
            url = req.params()["url"]
            page = url.partition("#")[0]
            origin = _expected_origin(req, site)
            assert origin is not None, req.headers
            assert _same_origin(page, origin), (url, origin)
            expected = jssdk_signature(JSSDK_TICKET, answer["nonceStr"], answer["timestamp"], page)
            assert answer["signature"] == expected
        else:
            assert "error" in answer, answer
    if path == site.callback_path and "page" in req.params():
        # A clean page is shown where it is: never a redirect (no loop).
        assert exchange.header("location") is None, exchange.headers


def _run_new_path(data: st.DataObject, fixtures: dict[tuple[str, str], Fixture], kind: str) -> None:
    scenario = data.draw(st.sampled_from(NEW_SCENARIOS), label="new path")
    # The scan login's paths mostly where it is on.
    names = ["scan"] * 3 * len(CONFIGS) + list(CONFIGS) if scenario == "scan" else list(CONFIGS)
    fixture = fixtures[(kind, data.draw(st.sampled_from(names), label="config"))]
    issued = [next(iter(fixture.issued)), _start_login(fixture.driver)]
    req, scan = _new_path_request(data, fixture, issued, scenario)
    # WeChat's answers for the JS-SDK: mostly good ones (the ticket is then kept, and signed
    # with), every failure sometimes; a login's otherwise.
    jssdk = st.sampled_from(JSSDK_ANSWERS[:1] * len(JSSDK_ANSWERS) + JSSDK_ANSWERS)
    answers = jssdk if scenario == "jssdk" else st.sampled_from(JSSDK_ANSWERS) | token_answers
    SCRIPT.token = data.draw(answers, label="WeChat's answer")
    SCRIPT.userinfo = data.draw(userinfo_answers, label="userinfo answer")
    exchange = fixture.driver(req)
    # What was reached (pytest --hypothesis-show-statistics): path, status, a session set.
    session = any(
        c.startswith(n + "=")
        for c in exchange.set_cookies()
        for n in ("wxauth_session", "__Host-wxauth_session", "sid", "__Host-sid")
    )
    event(
        f"{req.raw_path.decode('latin-1')[:20]} {exchange.status}{' +session' if session else ''}"
    )
    check_invariants(req, exchange, fixture, issued, scan)
    check_new_path_invariants(req, exchange, fixture.driver.site)


@SETTINGS
@given(data=st.data())
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning")
def test_the_newer_paths_keep_the_invariants(
    kind: str, data: st.DataObject, fixtures: dict[tuple[str, str], Fixture]
) -> None:
    """The JS-SDK's endpoint and script, every path of the scan login (with tickets started,
    opened and confirmed by a phone), clean pages (minted, mutated, made up) and the restart
    page: the invariants above, and the JS-SDK's own (a signature only for the site's own
    origin, right for the ticket WeChat gave; never stored)."""
    RUNS[f"{kind}: newer paths"] += 1
    _run_new_path(data, fixtures, kind)


# -- what the fuzzing found, pinned -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_an_over_long_address_on_the_open_in_wechat_page_is_no_500(
    kind: str, fixtures: dict[tuple[str, str], Fixture]
) -> None:
    # other_browsers="refuse" draws the page's address as a QR code; a long address (3000
    # characters, a tracking-laden URL) does not fit in one.
    driver = fixtures[(kind, "refuse")].driver
    for accept in (b"text/html", b"application/json"):
        req = Req(
            "GET",
            b"/" + b"a" * 3000,
            b"",
            [
                (b"host", b"localhost:8000"),
                (b"user-agent", CHROME_UA.encode()),
                (b"accept", accept),
            ],
        )
        exchange = driver(req)
        assert exchange.status == 403
        check_invariants(req, exchange, fixtures[(kind, "refuse")], [])


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("body", [b"[" * 50_000, b'{"a":' * 50_000], ids=["arrays", "objects"])
def test_deeply_nested_json_from_wechat_is_a_502_not_a_500(
    kind: str, body: bytes, fixtures: dict[tuple[str, str], Fixture]
) -> None:
    fixture = fixtures[(kind, "default")]
    login = _start_login(fixture.driver)
    SCRIPT.token = body
    req = Req(
        "GET",
        b"/wxauth/callback",
        f"code=c0de&state={login.state}".encode(),
        [
            (b"host", b"localhost:8000"),
            (b"user-agent", WECHAT_UA.encode()),
            (b"accept", b"application/json"),
            (b"cookie", f"{login.cookie_name}={login.cookie_value}".encode()),
        ],
    )
    exchange = fixture.driver(req)
    # A malformed answer from WeChat is a 502 (README: "non-JSON or malformed answers").
    assert exchange.status == 502, exchange.body
    assert json.loads(exchange.body)["error"] == "upstream_bad_response"


def test_zz_examples_run_per_property(capsys: pytest.CaptureFixture[str]) -> None:
    """Reports how many examples each property ran in this session (hypothesis counts
    examples, not only the distinct ones it reports in its statistics)."""
    if not RUNS:
        pytest.skip("no property ran in this session")
    with capsys.disabled():
        print("\nhypothesis examples run per property:")
        for name, count in sorted(RUNS.items()):
            print(f"  {name}: {count}")
    assert all(count >= 1 for count in RUNS.values())
