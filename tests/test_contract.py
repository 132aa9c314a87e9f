"""The public contract, checked from outside: only the package's public names, the emulator
run as its command (`python -m wxauth_middleware.emulator --auto-approve`), each middleware
served over real HTTP on 127.0.0.1 (uvicorn for ASGI, a threaded wsgiref server for WSGI), and
plain httpx clients as the browsers. Each test is named after the sentence it checks; what
other modules already check exactly is not repeated here."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from wxauth_middleware import (
    Rule,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_PERSONAS

from .credentials_support import burst
from .redis_support import Deployment
from .servers import ServerProcess, free_port, python_command, running_server
from .support import (
    CHROME_UA,
    WECHAT_UA,
    attribute,
    inner_app,
    inner_wsgi_app,
    middleware_options,
    served,
    session_cookie_set,
)

OPENID = DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)
SIGNED_KEYS = {"appId", "timestamp", "nonceStr", "signature"}
TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
STABLE_TOKEN_LINE = '"POST /cgi-bin/stable_token HTTP/1.1" 200'


@pytest.fixture(scope="module")
def wechat() -> Iterator[ServerProcess]:
    """`python -m wxauth_middleware.emulator --auto-approve` on a free port; every API answer
    50 ms late, so concurrent callers overlap. Its access log shows every call it got."""
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.emulator", "--port", str(port), "--auto-approve")
    argv += ["--latency", "0.05"]
    with running_server("emulator", argv, port=port) as server:
        yield server


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def build(kind: str, wechat_url: str, **options: Any) -> Any:
    options = middleware_options(wechat_url, **options)
    if kind == "asgi":
        return WeChatAuthMiddleware(inner_app(), **options)
    return WeChatAuthWSGIMiddleware(inner_wsgi_app, **options)


def browser(base: str, user_agent: str = CHROME_UA, **options: Any) -> httpx.Client:
    return httpx.Client(
        base_url=base,
        headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
        trust_env=False,
        timeout=10,
        **options,
    )


def phone(base: str) -> httpx.Client:
    """WeChat's browser, following every redirect (to the emulator and back) as it would."""
    return browser(base, WECHAT_UA, follow_redirects=True)


def stable_token_calls(wechat: ServerProcess) -> int:
    return wechat.output().count(STABLE_TOKEN_LINE)


def verify(wechat: ServerProcess, signed: dict[str, Any], url: str) -> dict[str, Any]:
    """What the emulator's wx.config check says of `signed` on the page `url`."""
    query = {**{k: str(v) for k, v in signed.items()}, "url": url}
    verdict: dict[str, Any] = httpx.get(
        f"{wechat.url}/_emulator/jsapi/verify", params=query, timeout=5
    ).json()
    return verdict


# -- Commands: the emulator's credential APIs and its JS-SDK ---------------------------------


def test_the_emulator_serves_stable_token_token_getticket_and_the_jssdk(
    wechat: ServerProcess,
) -> None:
    with httpx.Client(base_url=wechat.url, trust_env=False, timeout=5) as client:
        account = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID}
        secret = {"secret": DEFAULT_APP_SECRET}
        stable = client.post("/cgi-bin/stable_token", json={**account, **secret})
        assert set(stable.json()) == {"access_token", "expires_in"}
        wrong = client.post("/cgi-bin/stable_token", json={**account, "secret": "x" * 32})
        assert wrong.status_code == 200
        assert wrong.json()["errcode"] == 40125
        other = client.post(
            "/cgi-bin/stable_token",
            json={**account, "appid": "wx0000000000000000", "secret": DEFAULT_APP_SECRET},
        )
        assert other.json()["errcode"] in (40013, 40125)
        token = client.get("/cgi-bin/token", params={**account, "secret": DEFAULT_APP_SECRET})
        assert token.json()["expires_in"] == 7200
        ticket = client.get(
            "/cgi-bin/ticket/getticket",
            params={"access_token": token.json()["access_token"], "type": "jsapi"},
        ).json()
        assert ticket["errcode"] == 0
        assert ticket["ticket"]
        # The two APIs' tokens are isolated: /cgi-bin/token leaves the stable token valid.
        still = client.get(
            "/cgi-bin/ticket/getticket",
            params={"access_token": stable.json()["access_token"], "type": "jsapi"},
        ).json()
        assert still["errcode"] == 0
        forged = client.get(
            "/cgi-bin/ticket/getticket", params={"access_token": "x" * 100, "type": "jsapi"}
        )
        assert forged.json()["errcode"] in (40001, 40014)
        script = client.get("/open/js/jweixin-1.6.0.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "config" in script.text
        assert "ready" in script.text


# -- The Official Account's own credentials and the JS-SDK -----------------------------------


def test_concurrent_callers_cause_one_call_to_wechat_and_all_get_its_result(
    kind: str, wechat: ServerProcess
) -> None:
    before = stable_token_calls(wechat)
    app = build(kind, wechat.url)
    tokens = burst(app, "access_token", 50)
    assert all(isinstance(token, str) for token in tokens), tokens
    assert len(set(tokens)) == 1
    assert stable_token_calls(wechat) - before == 1
    assert tokens[0] not in repr(app)


def _scripted_wechat() -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "A" * 120, "expires_in": 7200})
        return httpx.Response(
            200, json={"errcode": 0, "errmsg": "ok", "ticket": TICKET, "expires_in": 7200}
        )

    return httpx.MockTransport(answer)


def jssdk_config(kind: str, url: Any, **options: Any) -> dict[str, Any]:
    """`app.jssdk_config(url)` as an application calls it, against a scripted WeChat."""
    options = {"transport": _scripted_wechat(), **options}
    app = build(kind, "https://api.weixin.qq.com", **options)
    if isinstance(app, WeChatAuthMiddleware):

        async def run() -> dict[str, Any]:
            try:
                return await app.jssdk_config(url)
            finally:
                await app.aclose()

        return asyncio.run(run())
    try:
        signed: dict[str, Any] = app.jssdk_config(url)
        return signed
    finally:
        app.close()


@pytest.mark.parametrize("public_url", [None, "https://www.example.com"])
def test_jssdk_config_signs_the_url_without_its_fragment_with_an_int_timestamp(
    kind: str, public_url: str | None
) -> None:
    page = "https://www.example.com/shop/item?id=7&utm=x"
    before = int(time.time())
    signed = jssdk_config(kind, page + "#reviews", public_url=public_url)
    assert set(signed) == SIGNED_KEYS
    assert signed["appId"] == DEFAULT_APP_ID
    assert type(signed["timestamp"]) is int
    assert before <= signed["timestamp"] <= time.time() + 1
    plain = (
        f"jsapi_ticket={TICKET}&noncestr={signed['nonceStr']}"
        f"&timestamp={signed['timestamp']}&url={page}"
    )
    assert signed["signature"] == hashlib.sha1(plain.encode()).hexdigest()  # noqa: S324


@pytest.mark.parametrize(
    ("url", "public_url"),
    [
        ("https://evil.example/shop", "https://www.example.com"),
        ("http://www.example.com/shop", "https://www.example.com"),  # another scheme
        ("https://www.example.com:8443/shop", "https://www.example.com"),  # another port
        ("/shop", None),
        ("www.example.com/shop", None),
        ("ftp://www.example.com/shop", None),
        ("javascript:alert(1)", None),
        ("", None),
        (None, None),
        ("/shop", "https://www.example.com"),
    ],
)
def test_jssdk_config_refuses_a_url_not_absolute_http_or_off_origin_with_public_url(
    kind: str, url: Any, public_url: str | None
) -> None:
    with pytest.raises(ValueError, match="url"):
        jssdk_config(kind, url, public_url=public_url)


def test_the_endpoint_signs_for_any_browser_with_or_without_session_what_wechat_accepts(
    kind: str, wechat: ServerProcess
) -> None:
    app = build(kind, wechat.url)
    with served(app) as base, phone(base) as logged_in, browser(base) as desktop:
        assert logged_in.get("/page").json()["user"]["openid"] == OPENID
        page = f"{base}/shop?item=7"
        for client in (logged_in, desktop, browser(base, WECHAT_UA)):
            answer = client.get("/wxauth/jssdk", params={"url": page + "#top"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["cache-control"] == "no-store"
            signed = answer.json()
            assert set(signed) == SIGNED_KEYS
            assert type(signed["timestamp"]) is int
            assert verify(wechat, signed, page) == {"ok": True, "errMsg": "config:ok"}
        for query in ({}, {"url": ""}, {"url": "https://evil.example/"}, {"url": "/shop"}):
            refused = desktop.get("/wxauth/jssdk", params=query)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]


# -- Desktop login by scanning with WeChat ---------------------------------------------------


def press(client: httpx.Client, page: httpx.Response, value: str) -> httpx.Response:
    """Submit the page's `<form method="post">` with its submit button `value`, as a browser
    does: every field of the form, the button's name and value, an Origin header."""
    form = re.search(r'<form method="post">(.*?)</form>', page.text, re.S)
    assert form is not None, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', form.group(1)))
    buttons = re.findall(r"<button[^>]*>", form.group(1))
    submits = {
        re.search(r'value="([^"]*)"', b).group(1): b  # type: ignore[union-attr]
        for b in buttons
        if 'type="submit"' in b and 'name="decision"' in b
    }
    assert set(submits) == {"confirm", "cancel"}, buttons
    origin = f"{page.url.scheme}://{page.url.netloc.decode()}"
    return client.post(
        str(page.url),
        data={**{unescape(k): unescape(v) for k, v in fields.items()}, "decision": value},
        headers={"origin": origin},
    )


@pytest.mark.parametrize(
    "options",
    [{"other_browsers": "scan"}, {"rules": [Rule("/desk/**", other_browsers="scan")]}],
    ids=["option", "rule"],
)
def test_a_desktop_logs_in_as_the_phone_user_who_confirms_on_the_form(
    kind: str, wechat: ServerProcess, options: dict[str, Any]
) -> None:
    app = build(kind, wechat.url, **options)
    with (
        served(app) as base,
        browser(base) as desktop,
        phone(base) as handset,
        browser(base) as stranger,
    ):
        page = desktop.get("/desk/report?x=1")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        scan_url = attribute(page, "data-scan-url")
        status_url = attribute(page, "data-status-url")
        assert urlsplit(scan_url).scheme in ("http", "https")
        assert desktop.get(status_url).json() == {"status": "waiting"}

        confirmation = handset.get(scan_url)  # logs the phone in, then the confirmation
        assert confirmation.status_code == 200
        assert '<form method="post">' in confirmation.text
        assert (
            handset.get("/whoami", headers={"accept": "application/json"}).json()["user"]["openid"]
            == OPENID
        )
        assert desktop.get(status_url).json() == {"status": "scanned"}

        assert press(handset, confirmation, "confirm").status_code == 200
        done = desktop.get(status_url).json()
        assert done["status"] == "confirmed"
        assert set(done) == {"status", "next"}
        # Another browser: neither the status URL nor next logs it in.
        peek = stranger.get(status_url)
        assert "next" not in peek.text
        stolen = stranger.get(done["next"])
        assert not session_cookie_set(stolen)
        json_only = {"accept": "application/json"}
        assert stranger.get("/desk/report", headers=json_only).status_code == 401
        landed = desktop.get(done["next"])
        assert landed.status_code == 302
        assert landed.headers["location"] in ("/desk/report?x=1", f"{base}/desk/report?x=1")
        assert session_cookie_set(landed)
        me = desktop.get("/desk/report?x=1", headers={"accept": "application/json"}).json()
        assert me["user"]["openid"] == OPENID
        # At most one login per ticket.
        desktop.cookies.clear()
        assert not session_cookie_set(desktop.get(done["next"]))


def test_a_cancel_on_the_form_logs_no_one_in(kind: str, wechat: ServerProcess) -> None:
    app = build(kind, wechat.url, other_browsers="scan")
    with served(app) as base, browser(base) as desktop, phone(base) as handset:
        page = desktop.get("/page")
        status_url = attribute(page, "data-status-url")
        confirmation = handset.get(attribute(page, "data-scan-url"))
        assert press(handset, confirmation, "cancel").status_code == 200
        assert desktop.get(status_url).json() == {"status": "cancelled"}
        assert press(handset, confirmation, "confirm").status_code >= 400
        assert desktop.get(status_url).json() == {"status": "cancelled"}


def test_a_ticket_expires_after_scan_max_age_180_by_default(
    kind: str, wechat: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build(kind, wechat.url, other_browsers="scan")
    with served(app) as base, browser(base) as desktop:
        page = desktop.get("/page")
        status_url = attribute(page, "data-status-url")
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + 178)
        assert desktop.get(status_url).json() == {"status": "waiting"}
        monkeypatch.setattr(time, "time", lambda: now + 182)
        assert desktop.get(status_url).json() == {"status": "expired"}


# -- Redis deployments -----------------------------------------------------------------------


def test_every_redis_url_form_with_query_options_logs_in_from_the_environment(
    kind: str, wechat: ServerProcess, redis_store: Deployment, redis_prefix: str
) -> None:
    url = redis_store.url + ("&" if "?" in redis_store.url else "?") + "socket_timeout=1.5"
    environ = {
        "WXAUTH_APP_ID": DEFAULT_APP_ID,
        "WXAUTH_APP_SECRET": DEFAULT_APP_SECRET,
        "WXAUTH_SECRET_KEY": "contract-signing-key-0123456789ab",
        "WXAUTH_AUTHORIZE_URL": f"{wechat.url}/connect/oauth2/authorize",
        "WXAUTH_API_BASE_URL": wechat.url,
        "WXAUTH_REDIS_URL": url,
        "WXAUTH_REDIS_PREFIX": redis_prefix,
    }
    cls = WeChatAuthMiddleware if kind == "asgi" else WeChatAuthWSGIMiddleware
    inner = inner_app() if kind == "asgi" else inner_wsgi_app
    app = cls.from_env(inner, environ=environ)
    password = urlsplit(redis_store.url.split(",")[0]).password
    assert password is None or password not in repr(app)
    with served(app) as base, phone(base) as client:
        assert client.get("/page").json()["user"]["openid"] == OPENID


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:6379/0?socket_timeout=0.5",
        "rediss://:hunter2@127.0.0.1:6380/1",
        "unix:///run/redis/redis.sock?db=2",
        "redis+sentinel://:hunter2@127.0.0.1:26379/mymaster",
        "redis+sentinel://:hunter2@127.0.0.1:26379,127.0.0.1:26380/mymaster/3?socket_timeout=1",
        "redis+cluster://:hunter2@127.0.0.1:7000",
        "redis+cluster://:hunter2@127.0.0.1:7000,127.0.0.1:7001?socket_timeout=0.5",
    ],
)
def test_every_redis_url_form_is_accepted_by_both_middlewares(kind: str, url: str) -> None:
    app = build(kind, "http://127.0.0.1:1", redis_url=url)
    assert "hunter2" not in repr(app)
    if kind == "wsgi":
        app.close()


def test_a_password_is_never_in_a_log_line_or_error_when_redis_is_down(
    kind: str, wechat: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    dead = free_port()
    for url in (
        f"redis://:hunter2-secret@127.0.0.1:{dead}/0",
        f"redis+sentinel://:hunter2-secret@127.0.0.1:{dead}/mymaster",
        f"redis+cluster://:hunter2-secret@127.0.0.1:{dead}",
    ):
        app = build(kind, wechat.url, redis_url=url)
        with caplog.at_level("DEBUG"), served(app) as base, phone(base) as client:
            answer = client.get("/page")
            assert answer.status_code == 503, answer.text
            assert "hunter2" not in answer.text
    assert caplog.records
    assert "hunter2" not in caplog.text
