"""The demo site: the whole login in-process, the demo-only UA switch, and the real command."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from wxauth_middleware.demo import (
    AS_WECHAT_COOKIE,
    WECHAT_IOS_UA,
    BrowseAsWeChatMiddleware,
    create_demo_app,
)
from wxauth_middleware.demo.__main__ import main
from wxauth_middleware.demo.pages import home_page, profile_page
from wxauth_middleware.emulator import DEFAULT_APP_ID
from wxauth_middleware.user import WeChatUser

from .redis_support import RedisServer
from .servers import REPO_ROOT, STOP_TIMEOUT_S, free_port, python_command, running_server
from .support import shown

ORIGIN = "http://127.0.0.1:8000"
AUTHORIZE = f"{ORIGIN}/_wechat/connect/oauth2/authorize"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ANDROID_WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 "
    "MMWEBID/1234 MicroMessenger/8.0.42.2460(0x28002A35) WeChat/arm64 Weixin NetType/WIFI "
    "Language/zh_CN ABI/arm64"
)
PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
XIAOMING = "小明🐼"
AUTHORIZE_RE = re.compile(
    re.escape(AUTHORIZE)
    + r"\?appid=(?P<appid>[^&]+)&redirect_uri=(?P<redirect_uri>[^&]+)&response_type=code"
    r"&scope=snsapi_userinfo&state=(?P<state>[A-Za-z0-9]{1,128})#wechat_redirect"
)


class _Elements(HTMLParser):
    """Collects forms (action + inputs) and the text of elements that carry an id."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, list[dict[str, str]]]] = []
        self.text_by_id: dict[str, str] = {}
        self.attrs_by_id: dict[str, dict[str, str]] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), []))
        elif tag in ("input", "button") and self.forms:
            self.forms[-1][1].append({"tag": tag, **values})
        if "id" in values:
            self.attrs_by_id[values["id"]] = values
            self.text_by_id.setdefault(values["id"], "")
        if tag not in ("input", "meta", "br", "img", "link"):
            self._open.append((tag, values.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id is not None:
                self.text_by_id[element_id] += data


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def demo_client(*, auto_approve: bool = False) -> httpx.AsyncClient:
    app = create_demo_app(public_url=ORIGIN, auto_approve=auto_approve)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN)


def assert_authorize_redirect(response: httpx.Response) -> str:
    assert response.status_code == 302
    location = response.headers["location"]
    match = AUTHORIZE_RE.fullmatch(location)
    assert match is not None, location
    assert match["appid"] == DEFAULT_APP_ID
    assert match["redirect_uri"] == quote(f"{ORIGIN}/wxauth/callback", safe="")
    return location


async def approve(client: httpx.AsyncClient, location: str, persona: str) -> httpx.Response:
    """Open the consent page, choose `persona` and press Allow; returns the emulator's answer."""
    consent = await client.get(location, headers=PAGE)
    assert consent.status_code == 200
    assert consent.headers["content-type"].startswith("text/html")
    action, fields = parse(consent.text).forms[0]
    assert action == "/_wechat/connect/oauth2/authorize/confirm"
    personas = {f["value"] for f in fields if f.get("name") == "persona"}
    assert {"xiaoming", "lily", "snapshot", "ctrl"} <= personas
    query = next(f["value"] for f in fields if f.get("name") == "query")
    return await client.post(
        action, data={"query": query, "persona": persona, "decision": "allow"}, headers=PAGE
    )


@pytest.mark.anyio
async def test_desktop_browser_to_wechat_login_and_logout() -> None:
    async with demo_client() as client:
        client.headers["user-agent"] = CHROME_UA
        home = await client.get("/", headers=PAGE)
        assert home.status_code == 200
        assert home.headers["content-type"] == "text/html; charset=utf-8"
        page = parse(home.text)
        assert page.attrs_by_id["login-status"]["data-logged-in"] == "false"
        assert "Not logged in" in page.text_by_id["login-status"]
        assert "nickname" not in page.attrs_by_id
        assert "Browsing as WeChat" not in home.text
        toggle = page.attrs_by_id["as-wechat"]
        assert (toggle["name"], toggle["value"]) == ("as_wechat", "on")

        switched = await client.post("/_demo/as-wechat", data={"as_wechat": "on", "next": "/"})
        assert switched.status_code == 303
        assert switched.headers["location"] == "/"
        assert client.cookies[AS_WECHAT_COOKIE] == "1"

        # Still Chrome's UA: the demo cookie alone makes the middleware see WeChat.
        location = assert_authorize_redirect(await client.get("/", headers=PAGE))

        allowed = await approve(client, location, "xiaoming")
        assert allowed.status_code == 302
        callback = urlsplit(allowed.headers["location"])
        assert (callback.scheme, callback.netloc, callback.path) == (
            "http",
            "127.0.0.1:8000",
            "/wxauth/callback",
        )
        assert "code=" in callback.query

        back = await client.get(allowed.headers["location"], headers=PAGE)
        assert back.status_code == 302
        assert back.headers["location"] == "/"
        assert "wxauth_session" in client.cookies

        home = await client.get("/", headers=PAGE)
        assert home.status_code == 200
        page = parse(home.text)
        assert page.text_by_id["nickname"] == XIAOMING
        assert XIAOMING.encode("utf-8") in home.content
        assert page.attrs_by_id["login-status"]["data-logged-in"] == "true"
        assert page.text_by_id["scope"] == "snsapi_userinfo"
        assert page.text_by_id["openid"].startswith("o")
        assert page.text_by_id["unionid"].startswith("o")
        assert "Browsing as WeChat (demo only)" in page.text_by_id["banner"]
        assert page.attrs_by_id["as-wechat"]["value"] == "off"

        me = await client.get("/api/me", headers={"accept": "application/json"})
        assert me.status_code == 200
        body = me.json()
        assert body["logged_in"] is True
        assert body["user"]["openid"] == page.text_by_id["openid"]
        assert body["user"]["nickname"] == XIAOMING
        assert body["user"]["is_snapshot_user"] is False

        profile = await client.get("/profile", headers=PAGE)
        fields = parse(profile.text).text_by_id
        assert fields["field-openid"] == page.text_by_id["openid"]
        assert fields["field-nickname"] == XIAOMING
        assert fields["field-scope"] == "snsapi_userinfo"
        assert fields["field-is_snapshot_user"] == "False"

        # Switching WeChat off keeps the session: a valid session works whatever the UA.
        await client.post("/_demo/as-wechat", data={"as_wechat": "off", "next": "/"})
        assert AS_WECHAT_COOKIE not in client.cookies
        home = await client.get("/", headers=PAGE)
        assert parse(home.text).text_by_id["nickname"] == XIAOMING
        assert "Browsing as WeChat" not in home.text

        logout = await client.post("/logout", headers={"origin": ORIGIN})
        assert logout.status_code == 303
        assert logout.headers["location"] == "/logged-out"
        assert "wxauth_session" not in client.cookies
        home = await client.get("/", headers=PAGE)
        assert parse(home.text).attrs_by_id["login-status"]["data-logged-in"] == "false"


@pytest.mark.anyio
async def test_logout_while_browsing_as_wechat_shows_logged_out_first() -> None:
    async with demo_client(auto_approve=True) as client:
        client.headers["user-agent"] = CHROME_UA
        await client.post("/_demo/as-wechat", data={"as_wechat": "on", "next": "/"})
        location = assert_authorize_redirect(await client.get("/", headers=PAGE))
        approved = await client.get(location.split("#")[0], headers=PAGE)
        await client.get(approved.headers["location"], headers=PAGE)
        assert "wxauth_session" in client.cookies

        logout = await client.post("/logout", headers={"origin": ORIGIN})
        assert (logout.status_code, logout.headers["location"]) == (303, "/logged-out")
        assert "wxauth_session" not in client.cookies
        # Still "WeChat", without a session: the page says so instead of starting a login.
        landed = await client.get(logout.headers["location"], headers=PAGE)
        assert landed.status_code == 200
        page = parse(landed.text)
        assert page.text_by_id["logged-out"] == "已退出登录 · Logged out"
        assert page.attrs_by_id["login-again"]["href"] == "/wxauth/login?next=%2F"
        assert page.attrs_by_id["as-wechat"]["value"] == "off"
        # Any page of the site says so too, never logging in behind the visitor's back...
        home = await client.get("/", headers=PAGE)
        assert (home.status_code, "已退出登录" in home.text) == (200, True)
        # ...and the way back in is one tap: a login, as WeChat.
        again = await client.get(page.attrs_by_id["login-again"]["href"], headers=PAGE)
        assert_authorize_redirect(again)


@pytest.mark.anyio
async def test_home_page_speaks_to_the_real_wechat_browser() -> None:
    async with demo_client(auto_approve=True) as client:
        client.headers["user-agent"] = ANDROID_WECHAT_UA
        location = assert_authorize_redirect(await client.get("/", headers=PAGE))
        approved = await client.get(location.split("#")[0], headers=PAGE)
        await client.get(approved.headers["location"], headers=PAGE)
        home = await client.get("/", headers=PAGE)
        assert parse(home.text).attrs_by_id["login-status"]["data-logged-in"] == "true"
        assert "You opened this page in WeChat" in home.text
        assert "Press <strong>Browse as WeChat</strong>" not in home.text
        assert "as-wechat" not in parse(home.text).attrs_by_id
    async with demo_client() as client:
        client.headers["user-agent"] = CHROME_UA
        home = await client.get("/", headers=PAGE)
        assert "Press <strong>Browse as WeChat</strong>" in home.text
        assert "You opened this page in WeChat" not in home.text


@pytest.mark.anyio
async def test_real_wechat_ua_needs_no_cookie_and_api_gets_401_json() -> None:
    async with demo_client() as client:
        client.headers["user-agent"] = ANDROID_WECHAT_UA
        assert_authorize_redirect(await client.get("/profile", headers=PAGE))
        api = await client.get("/api/me", headers={"accept": "application/json"})
        assert api.status_code == 401
        assert AUTHORIZE_RE.fullmatch(api.json()["authorize_url"])

        client.headers["user-agent"] = CHROME_UA
        anonymous = await client.get("/api/me", headers={"accept": "application/json"})
        assert anonymous.status_code == 401
        assert anonymous.json()["logged_in"] is False
        assert "authorize_url" not in anonymous.json()


@pytest.mark.anyio
async def test_snapshot_persona_and_return_to_profile() -> None:
    async with demo_client() as client:
        client.headers["user-agent"] = WECHAT_IOS_UA
        location = assert_authorize_redirect(await client.get("/profile", headers=PAGE))
        allowed = await approve(client, location, "snapshot")
        # No session for a virtual identity: the callback shows the page itself, once.
        profile = await client.get(allowed.headers["location"], headers=PAGE)
        assert profile.status_code == 200
        assert "wxauth_session=" not in profile.headers.get("set-cookie", "")
        page = parse(profile.text)
        assert page.text_by_id["field-is_snapshot_user"] == "True"
        assert "snapshot-note" in page.attrs_by_id
        # A real WeChat UA without the demo cookie: no "demo only" banner, no switch.
        assert "demo only" not in profile.text
        # The next visit starts a real login: the snapshot identity was never kept.
        assert_authorize_redirect(await client.get("/", headers=PAGE))


@pytest.mark.anyio
async def test_refusing_consent_offers_a_way_out_of_wechat_mode() -> None:
    async with demo_client() as client:
        client.headers["user-agent"] = CHROME_UA
        client.cookies.set(AS_WECHAT_COOKIE, "1")
        location = assert_authorize_redirect(await client.get("/", headers=PAGE))
        consent = await client.get(location, headers=PAGE)
        action, fields = parse(consent.text).forms[0]
        query = next(f["value"] for f in fields if f.get("name") == "query")
        refused = await client.post(action, data={"query": query, "decision": "refuse"})
        declined = await shown(client, refused.headers["location"], headers=PAGE)
        assert declined.status_code == 403
        page = parse(declined.text)
        assert page.text_by_id["error-code"] == "login_declined"
        assert page.attrs_by_id["as-wechat"]["value"] == "off"
        form_action = next(a for a, f in page.forms if any(x.get("id") == "as-wechat" for x in f))
        assert form_action == "/_demo/as-wechat"


@pytest.mark.anyio
async def test_auto_approve_follows_through_in_one_go() -> None:
    async with demo_client(auto_approve=True) as client:
        client.headers["user-agent"] = WECHAT_IOS_UA
        final = await client.get("/", headers=PAGE, follow_redirects=True)
        assert final.status_code == 200
        assert parse(final.text).text_by_id["nickname"] == XIAOMING


@pytest.mark.anyio
async def test_demo_controls_reject_bad_input() -> None:
    async with demo_client() as client:
        bad = await client.post("/_demo/as-wechat", data={"as_wechat": "maybe"})
        assert bad.status_code == 400
        offsite = await client.post(
            "/_demo/as-wechat", data={"as_wechat": "on", "next": "//evil.example/"}
        )
        assert offsite.headers["location"] == "/"
        cross = await client.post(
            "/logout", headers={"sec-fetch-site": "cross-site", "cookie": "wxauth_session=x"}
        )
        assert cross.status_code == 403
        # Logging out takes a POST: a GET (a prefetch, a link) leaves the session alone.
        client.cookies.delete(AS_WECHAT_COOKIE)
        client.cookies.set("wxauth_session", "kept")
        assert (await client.get("/logout")).status_code in (404, 405)
        assert client.cookies["wxauth_session"] == "kept"


def test_pages_escape_nicknames_and_control_characters() -> None:
    user = WeChatUser(
        openid="o<x>",
        nickname='<script>alert("1")</script>控制\x07',
        scope="snsapi_userinfo",
    )
    for html in (
        home_page(user, as_wechat=False, in_wechat=False, public_url=ORIGIN),
        profile_page(user, as_wechat=False, in_wechat=False),
    ):
        assert "<script>" not in html
        assert "\x07" not in html
        page = parse(html)
        assert page.text_by_id["nickname"] == '<script>alert("1")</script>控制\u2407'


@pytest.mark.anyio
async def test_browse_as_wechat_middleware_rewrites_only_with_the_cookie() -> None:
    seen: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        return None

    middleware = BrowseAsWeChatMiddleware(record)
    base = {"type": "http", "method": "GET", "path": "/"}
    with_cookie = [(b"user-agent", CHROME_UA.encode()), (b"cookie", b"a=b; demo_as_wechat=1")]
    other_cookie = [(b"user-agent", CHROME_UA.encode()), (b"cookie", b"demo_as_wechat=0")]
    await middleware({**base, "headers": with_cookie}, nothing, ignore)
    await middleware({**base, "headers": other_cookie}, nothing, ignore)
    await middleware({"type": "lifespan"}, nothing, ignore)
    rewritten, untouched, lifespan = seen
    assert dict(rewritten["headers"])[b"user-agent"] == WECHAT_IOS_UA.encode()
    assert [k for k, _ in rewritten["headers"]].count(b"user-agent") == 1
    assert untouched["headers"] == other_cookie
    assert lifespan == {"type": "lifespan"}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com"])  # noqa: S104
def test_cli_refuses_non_loopback_hosts(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--host", host])
    assert exited.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_cli_refuses_allow_remote_without_public_url(capsys: pytest.CaptureFixture[str]) -> None:
    # Without --public-url the emulator's pages would send a phone to 127.0.0.1: itself.
    with pytest.raises(SystemExit) as exited:
        main(["--host", "0.0.0.0", "--allow-remote"])  # noqa: S104
    assert exited.value.code == 2
    assert "--allow-remote needs --public-url" in capsys.readouterr().err


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_command_logs_in_at_whatever_loopback_host_it_is_opened_on(hostname: str) -> None:
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--port", str(port))
    site = f"http://{hostname}:{port}"
    with (
        running_server("demo", argv, port=port, ready_path="/_wechat/") as server,
        httpx.Client(timeout=5.0, trust_env=False) as client,
    ):
        client.headers["user-agent"] = WECHAT_IOS_UA
        start = client.get(f"{site}/profile", headers=PAGE)
        assert start.status_code == 302, start.text
        authorize = urlsplit(start.headers["location"])
        params = dict(parse_qsl(authorize.query))
        assert params["redirect_uri"] == f"{site}/wxauth/callback"
        consent = client.get(start.headers["location"].split("#")[0], headers=PAGE)
        assert consent.status_code == 200, consent.text
        action, fields = parse(consent.text).forms[0]
        query = next(f["value"] for f in fields if f.get("name") == "query")
        allowed = client.post(
            f"{authorize.scheme}://{authorize.netloc}{action}",
            data={"query": query, "persona": "xiaoming", "decision": "allow"},
            headers=PAGE,
        )
        assert allowed.status_code == 302, allowed.text
        assert allowed.headers["location"].startswith(f"{site}/wxauth/callback?code=")
        back = client.get(allowed.headers["location"], headers=PAGE)
        assert (back.status_code, back.headers["location"]) == (302, "/profile")
        profile = client.get(f"{site}/profile", headers=PAGE)
        assert profile.status_code == 200
        assert parse(profile.text).text_by_id["nickname"] == XIAOMING
    assert "invalid_state" not in server.output()


def test_command_serves_the_login_over_real_sockets() -> None:
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--port", str(port), "--auto-approve")
    with (
        running_server("demo", argv, port=port, ready_path="/_wechat/") as server,
        httpx.Client(base_url=server.url, timeout=5.0) as client,
    ):
        client.headers["user-agent"] = WECHAT_IOS_UA
        final = client.get("/", headers=PAGE, follow_redirects=True)
        assert final.status_code == 200
        # (A browser keeps "#wechat_redirect" across the redirects back, as httpx does.)
        assert (final.url.host, final.url.port, final.url.path) == ("127.0.0.1", port, "/")
        assert [r.status_code for r in final.history] == [302, 302, 302]
        page = parse(final.text)
        assert page.text_by_id["nickname"] == XIAOMING
        me = client.get("/api/me", headers={"accept": "application/json"})
        assert json.loads(me.content.decode("utf-8"))["user"]["nickname"] == XIAOMING
    output = server.output()
    assert f"http://127.0.0.1:{port}/" in output
    assert "Browse as WeChat" in output


# -- sessions in Redis (--redis-url) -----------------------------------------------------------


def _keys(redis_server: RedisServer, pattern: str) -> set[str]:
    with redis_server.client() as db:
        return {key.decode() for key in db.scan_iter(match=pattern)}


@pytest.mark.anyio
async def test_sessions_in_redis_and_logout_ends_the_stored_one(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    app = create_demo_app(
        public_url=ORIGIN, auto_approve=True, redis_url=redis_server.url, redis_prefix=redis_prefix
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN
        ) as client:
            client.headers["user-agent"] = WECHAT_IOS_UA
            final = await client.get("/", headers=PAGE, follow_redirects=True)
            assert parse(final.text).text_by_id["nickname"] == XIAOMING
            sessions = _keys(redis_server, redis_prefix + "session:*")
            assert len(sessions) == 1
            # The cookie holds a signed id only, never the user.
            assert XIAOMING not in client.cookies["wxauth_session"]
            assert "openid" not in client.cookies["wxauth_session"]

            # The demo's "Log out" ends the stored session, not only the cookie.
            logout = await client.post("/logout", headers={"origin": ORIGIN})
            assert logout.status_code == 303
            assert logout.headers["location"] == "/logged-out"
            assert "wxauth_session" not in client.cookies
            assert _keys(redis_server, redis_prefix + "session:*") == set()
            home = await client.get("/", headers=PAGE)
            assert (home.status_code, "已退出登录" in home.text) == (200, True)
            assert_authorize_redirect(await client.get("/wxauth/login?next=/", headers=PAGE))
    finally:
        await app.state.auth.aclose()


def test_command_with_redis_url_keeps_sessions_in_redis(redis_server: RedisServer) -> None:
    port = free_port()
    argv = python_command(
        "-m", "wxauth_middleware.demo", "--port", str(port), "--auto-approve",
        "--redis-url", redis_server.url,
    )  # fmt: skip
    # The command keeps the default prefix, which only this test uses on the shared server:
    # it deletes the keys that appear under it.
    before = _keys(redis_server, "wxauth:*")
    try:
        with (
            running_server("demo", argv, port=port, ready_path="/_wechat/") as server,
            httpx.Client(base_url=server.url, timeout=5.0) as client,
        ):
            client.headers["user-agent"] = WECHAT_IOS_UA
            final = client.get("/", headers=PAGE, follow_redirects=True)
            assert final.status_code == 200
            assert parse(final.text).text_by_id["nickname"] == XIAOMING
            new_sessions = _keys(redis_server, "wxauth:session:*") - before
            assert len(new_sessions) == 1
            me = client.get("/api/me", headers={"accept": "application/json"})
            assert me.json()["user"]["nickname"] == XIAOMING

            logout = client.post("/logout", headers={"origin": server.url})
            assert logout.status_code == 303
            assert _keys(redis_server, "wxauth:session:*") & new_sessions == set()
        output = server.output()
        assert f"Sessions: in Redis at {redis_server.url} (keys under wxauth:)" in output
        assert "does not answer" not in output
        assert "Traceback" not in output
    finally:
        created = _keys(redis_server, "wxauth:*") - before
        if created:
            with redis_server.client() as db:
                db.delete(*created)


MUST_BE = (
    "--redis-url must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("localhost:6379", MUST_BE),
        ("http://:hunter2@127.0.0.1:6379/0", MUST_BE + " (e.g. 'redis://127.0.0.1:6379/0'), not"),
        ("redis://:hunter2@127.0.0.1:notaport/0", "--redis-url is not a valid Redis URL"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379", "--redis-url is not a valid Redis URL"),
        ("redis+cluster://:hunter2@127.0.0.1:x/0", "--redis-url is not a valid Redis URL"),
        ("rediss://:hunter2@127.0.0.1:6379/0?nonsense=1", "--redis-url is not a valid Redis URL"),
    ],
)
def test_cli_refuses_a_bad_redis_url(
    url: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--redis-url", url])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    *usage, error = err.strip().splitlines()
    assert usage[0].startswith("usage: python -m wxauth_middleware.demo")
    assert error.startswith(f"python -m wxauth_middleware.demo: error: {expected}")
    assert "hunter2" not in err  # the password is never shown


def test_command_with_a_bad_redis_url_exits_2_without_a_traceback() -> None:
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        python_command(
            "-m", "wxauth_middleware.demo", "--redis-url", "redis//:hunter2@127.0.0.1:6379"
        ),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        timeout=STOP_TIMEOUT_S * 3,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"python -m wxauth_middleware.demo: error: {MUST_BE} "
        "(e.g. 'redis://127.0.0.1:6379/0'), not a value starting 'redis//'."
    )


@pytest.mark.anyio
async def test_home_page_links_to_every_demo_page() -> None:
    async with demo_client() as client:
        client.headers["user-agent"] = CHROME_UA
        links = parse((await client.get("/", headers=PAGE)).text).attrs_by_id
        for link in ("profile-link", "share-link", "desktop-link"):
            page = await client.get(links[link]["href"], headers=PAGE)
            assert page.status_code == 200, (link, page.text)
        # A desktop browser on /desktop gets the scan login's QR-code page.
        desktop = await client.get(links["desktop-link"]["href"], headers=PAGE)
        assert "data-scan-url" in desktop.text
