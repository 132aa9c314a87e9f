"""The login, end to end through the ASGI middleware against the WeChat emulator.

Each test builds a fresh emulator and middleware. Numbers in the names refer to the points of
the HTTP behaviour the project promises (CONTRACT: pass-through, session, redirect, 401,
callback, state, errors, secrets, lifespan).
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxauth_middleware.login.spent_states import SPENT_MEMORY, SpentStates

from .support import (
    APP_ORIGIN,
    CHROME_UA,
    WECOM_UA,
    Stack,
    approve_consent,
    authorize_params,
    clean_address,
    location,
    login,
    shown,
)

pytestmark = pytest.mark.anyio
JSON = {"accept": "application/json"}


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _set_cookies(response: httpx.Response) -> list[str]:
    """The cookies a response set, the redirects that led to it included."""
    responses = (*response.history, response)
    return [cookie for r in responses for cookie in r.headers.get_list("set-cookie")]


# -- 1. other browsers pass through ------------------------------------------------------


@pytest.mark.parametrize("user_agent", [CHROME_UA, WECOM_UA, "", "curl/8.5.0"])
async def test_1_non_wechat_browser_passes_untouched(user_agent: str, stack: Stack) -> None:
    emulator = stack.emulator()
    async with stack.phone(stack.middleware(), user_agent=user_agent) as client:
        response = await client.get("/page?x=1")
    assert response.status_code == 200
    assert response.headers["x-app"] == "reached"
    assert response.json() == {"user": None, "path": "/page"}
    assert "set-cookie" not in response.headers
    assert emulator.calls == []


# -- 2, 3, 5. the whole login -------------------------------------------------------------


async def test_3_wechat_page_visit_redirects_to_the_exact_authorize_url(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware(scope="snsapi_userinfo")) as client:
        response = await client.get("/page?x=1")
    assert response.status_code == 302
    url = location(response)
    params = authorize_params(url, stack.authorize_url)
    assert params["appid"] == DEFAULT_APP_ID
    assert params["redirect_uri"] == f"{APP_ORIGIN}/wxauth/callback"
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A8000%2Fwxauth%2Fcallback&" in url
    assert params["response_type"] == "code"
    assert params["scope"] == "snsapi_userinfo"
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", params["state"])
    assert response.headers["cache-control"] == "no-store"
    assert response.headers.get("x-app") is None


async def test_3_public_url_wins_over_the_host_header(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(public_url="https://example.com")
    async with stack.phone(middleware) as client:
        response = await client.get("/page", headers={"host": "evil.com"})
    assert dict(_query(location(response)))["redirect_uri"] == "https://example.com/wxauth/callback"
    state_cookie = _set_cookies(response)[0]
    assert "Secure" in state_cookie  # the public site is https, whatever the hop to us was


async def test_3_malformed_host_header_is_refused_with_a_page(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        response = await client.get("/page", headers={"host": "evil.com/x@y"})
        as_json = await client.get(
            "/page", headers={"host": "evil.com/x@y", "accept": "application/json"}
        )
    assert response.status_code == 400
    assert "无法从这里开始微信登录" in response.text
    assert "public_url" in as_json.json()["detail"]  # the owner's hint
    assert "location" not in response.headers


async def test_5_base_login_returns_to_the_page_with_the_user(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/deep/page?tab=2&q=%E4%B8%AD")
        authorize = await client.get(location(start))
        callback_url = location(authorize)
        assert callback_url.startswith(f"{APP_ORIGIN}/wxauth/callback?code=")
        callback = await shown(client, callback_url)
        assert callback.status_code == 302
        assert location(callback) == "/deep/page?tab=2&q=%E4%B8%AD"
        page = await client.get(location(callback))
    assert page.status_code == 200
    user = page.json()["user"]
    persona = emulator.personas[0]
    assert user == {
        "openid": persona.openid_for(DEFAULT_APP_ID),
        "unionid": None,
        "nickname": None,
        "scope": "snsapi_base",
        "snapshot": False,
    }
    # Exactly one call, code -> token, with WeChat's parameters in WeChat's order.
    assert [call.path for call in emulator.calls] == ["/sns/oauth2/access_token"]
    params = emulator.calls[0].params
    assert [name for name, _ in params] == ["appid", "secret", "code", "grant_type"]
    assert dict(params)["secret"] == DEFAULT_APP_SECRET
    assert dict(params)["grant_type"] == "authorization_code"
    assert dict(params)["code"] == dict(_query(callback_url))["code"]


@pytest.mark.parametrize(
    ("persona", "nickname", "has_unionid"),
    [("xiaoming", "小明🐼", True), ("lily", "Lily 🌸 李", False), ("ctrl", "控制\x07字符", True)],
)
async def test_5_userinfo_login_carries_the_profile(
    persona: str, nickname: str, has_unionid: bool, stack: Stack
) -> None:
    emulator = stack.emulator()
    async with stack.phone(stack.middleware(scope="snsapi_userinfo")) as client:
        page = await login(client, "/page", persona=persona)
        again = await client.get("/other")
    user = page.json()["user"]
    assert user["nickname"] == nickname
    assert user["scope"] == "snsapi_userinfo"
    assert (user["unionid"] is not None) is has_unionid
    assert again.json()["user"] == user  # the session carries it to every page
    assert [call.path for call in emulator.calls] == [
        "/sns/oauth2/access_token",
        "/sns/userinfo",
    ]
    userinfo = emulator.calls[1].params
    assert [name for name, _ in userinfo] == ["access_token", "openid", "lang"]
    assert dict(userinfo)["lang"] == "zh_CN"


async def test_5_session_cookie_attributes(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/page")
        callback = await client.get(location(await client.get(location(start))))
    session = next(c for c in _set_cookies(callback) if c.startswith("wxauth_session="))
    attributes = {part.strip().split("=")[0].lower() for part in session.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in session.lower()
    assert "secure" not in attributes  # plain http here; see the https test
    assert "Max-Age=1209600" in session


async def test_5_https_requests_get_secure_cookies(stack: Stack) -> None:
    stack.emulator(auto_approve=True, domains=("example.com",))
    middleware = stack.middleware()
    async with stack.phone(middleware, origin="https://example.com") as client:
        start = await client.get("/page")
        assert all("Secure" in c for c in _set_cookies(start))
        callback = await client.get(location(await client.get(location(start))))
        assert callback.status_code == 302
        assert all("Secure" in c for c in _set_cookies(callback))
        page = await client.get(location(callback))
    assert page.json()["user"] is not None


async def test_5_https_only_marks_cookies_secure_on_http(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware(https_only=True)) as client:
        start = await client.get("/page")
    assert all("Secure" in c for c in _set_cookies(start))


async def test_2_valid_session_passes_whatever_the_user_agent(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    async with stack.phone(middleware) as client:
        await login(client)
        session = client.cookies["wxauth_session"]
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        desktop.cookies.set("wxauth_session", session)
        response = await desktop.get("/anything", headers={"accept": "application/json"})
    assert response.status_code == 200
    assert response.json()["user"]["openid"].startswith("o")
    assert "set-cookie" not in response.headers  # a valid session is never re-written


async def test_snapshot_user_gets_no_session_and_the_interstitial(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware(scope="snsapi_userinfo")) as client:
        start = await client.get("/page?x=1")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="snapshot")
        callback = await shown(client, location(approved))
        again = await client.get("/page?x=1")
    assert callback.status_code == 200
    # The page itself in the address bar: WeChat's "use full service" bar reopens it, for
    # real; no link (a snapshot page takes no taps).
    assert clean_address(callback.text) == "/page?x=1"
    assert "使用完整服务" in callback.text
    assert "<a " not in callback.text
    assert not any(c.startswith("wxauth_session=") for c in _set_cookies(callback))
    assert again.status_code == 302  # the virtual identity was never kept


async def test_snapshot_user_is_shown_to_the_app_for_that_request_only(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(scope="snsapi_userinfo", snapshot_users="app")
    async with stack.phone(middleware) as client:
        start = await client.get("/deep/page?x=1")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="snapshot")
        callback = await shown(client, location(approved))
        again = await client.get("/deep/page?x=1")
    assert callback.status_code == 200
    assert callback.json()["path"] == "/deep/page"
    assert callback.json()["user"]["snapshot"] is True
    assert not any(c.startswith("wxauth_session=") for c in _set_cookies(callback))
    assert again.status_code == 302


async def test_account_switch_replaces_the_session(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware(scope="snsapi_userinfo")) as client:
        first = await login(client, persona="xiaoming")
        client.cookies.delete("wxauth_session")
        second = await login(client, persona="lily")
    assert first.json()["user"]["nickname"] == "小明🐼"
    assert second.json()["user"]["nickname"] == "Lily 🌸 李"


async def test_two_tabs_logging_in_at_once_both_succeed(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        tab_a = await client.get("/a")
        tab_b = await client.get("/b")
        callback_a = location(await client.get(location(tab_a)))
        callback_b = location(await client.get(location(tab_b)))
        back_b = await client.get(callback_b)
        back_a = await client.get(callback_a)
    assert (location(back_a), location(back_b)) == ("/a", "/b")


async def test_replayed_callback_keeps_the_session_and_spends_no_code(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/page?x=1")
        callback_url = location(await client.get(location(start)))
        first = await shown(client, callback_url)
        session = client.cookies["wxauth_session"]
        replay = await shown(client, callback_url)  # back button / refresh
        assert replay.status_code == 302
        assert location(replay) == "/page?x=1"
        assert client.cookies["wxauth_session"] == session
        page = await client.get("/page")
    assert first.status_code == 302
    assert page.json()["user"] is not None
    assert len(emulator.calls) == 1


# -- 4. API calls get a 401, never a redirect -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {"accept": "application/json"}),
        ("GET", {"accept": "application/json, text/plain, */*"}),
        ("GET", {"x-requested-with": "XMLHttpRequest"}),
        ("GET", {"sec-fetch-mode": "cors", "sec-fetch-dest": "empty"}),
        ("GET", {"sec-fetch-dest": "image", "accept": "image/webp,*/*"}),
        ("POST", {"accept": "text/html"}),
        ("PUT", {}),
        ("DELETE", {"accept": "*/*"}),
    ],
)
async def test_4_wechat_api_calls_get_401_json(
    method: str, headers: dict[str, str], stack: Stack
) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        response = await client.request(
            method, "/api/me", headers={"referer": f"{APP_ORIGIN}/spa?tab=1", **headers}
        )
    assert response.status_code == 401
    assert "location" not in response.headers
    body = response.json()
    assert body["error"] == "login_required"
    assert body["authorize_url"].startswith(stack.authorize_url + "?appid=")
    assert body["authorize_url"].endswith("#wechat_redirect")


async def test_4_front_end_can_follow_authorize_url_back_to_its_page(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        api = await client.get(
            "/api/me",
            headers={"accept": "application/json", "referer": f"{APP_ORIGIN}/spa?tab=1"},
        )
        callback = await client.get(location(await client.get(api.json()["authorize_url"])))
    assert location(callback) == "/spa?tab=1"


async def test_4_foreign_referer_returns_to_the_site_root(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        api = await client.get(
            "/api/me", headers={"accept": "application/json", "referer": "https://evil.com/x"}
        )
        callback = await client.get(location(await client.get(api.json()["authorize_url"])))
    assert location(callback) == "/"


@pytest.mark.parametrize(
    "headers",
    [
        {"accept": "text/html,application/xhtml+xml"},
        {"accept": "*/*"},
        {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"},
        {"x-requested-with": "com.tencent.mm"},  # Android WebViews send their package
        {"accept": "text/html", "sec-fetch-dest": "iframe"},
    ],
)
async def test_3_page_navigations_are_redirected(headers: dict[str, str], stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        response = await client.get("/page", headers=headers)
        head = await client.head("/page", headers=headers)
    assert response.status_code == 302
    assert head.status_code == 302
    assert head.content == b""


# -- 6. state, and callbacks without a code ----------------------------------------------------


async def _started(client: httpx.AsyncClient) -> tuple[str, str]:
    """Start a login and let the emulator approve it: the callback URL and its state."""
    start = await client.get("/page")
    callback_url = location(await client.get(location(start)))
    return callback_url, dict(_query(callback_url))["state"]


async def _assert_not_logged_in(client: httpx.AsyncClient, response: httpx.Response) -> None:
    assert response.status_code == 400
    assert not any(c.startswith("wxauth_session=") for c in _set_cookies(response))
    assert "location" not in response.headers
    page = await client.get("/page", headers={"accept": "application/json"})
    assert page.status_code == 401


async def test_6_unknown_state_logs_nobody_in(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, state = await _started(client)
        code = dict(_query(callback_url))["code"]
        forged = f"{APP_ORIGIN}/wxauth/callback?code={code}&state=A{state[1:]}"
        await _assert_not_logged_in(client, await shown(client, forged))
        missing = f"{APP_ORIGIN}/wxauth/callback?code={code}"
        await _assert_not_logged_in(client, await shown(client, missing))
        bad = f"{APP_ORIGIN}/wxauth/callback?code={code}&state=a.b-c"
        await _assert_not_logged_in(client, await shown(client, bad))
    assert emulator.calls == []


async def test_6_state_from_another_browser_logs_nobody_in(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware()
    async with stack.phone(middleware) as victim:
        callback_url, _ = await _started(victim)
    async with stack.phone(middleware) as attacker:
        await attacker.get("/page")  # a login of its own in progress
        await _assert_not_logged_in(attacker, await shown(attacker, callback_url))
    async with stack.phone(middleware) as stranger:
        # No login-state cookie at all (a lost cookie): the login restarts, never with this
        # code, from a page that sets the cookie (see test_hardening).
        restarted = await shown(stranger, callback_url)
        assert restarted.status_code == 200
        assert not any(c.startswith("wxauth_session=") for c in _set_cookies(restarted))
        assert (
            await stranger.get("/page", headers={"accept": "application/json"})
        ).status_code == 401
    assert emulator.calls == []


async def test_6_tampered_state_cookie_logs_nobody_in(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, _ = await _started(client)
        name = "wxauth_session_login"
        value = client.cookies[name]
        client.cookies.delete(name)
        client.cookies.set(name, value[:-2] + "xx", path="/")
        await _assert_not_logged_in(client, await shown(client, callback_url))


async def test_6_expired_state_logs_nobody_in(
    monkeypatch: pytest.MonkeyPatch, stack: Stack
) -> None:

    stack.emulator(auto_approve=True, clock=time.time)
    async with stack.phone(stack.middleware(login_max_age=60)) as client:
        callback_url, _ = await _started(client)
        # The browser still sends it (its clock is not the server's): the server refuses it.
        kept = {"cookie": f"wxauth_session_login={client.cookies['wxauth_session_login']}"}
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + 61)
        client.cookies.clear()
        await _assert_not_logged_in(client, await shown(client, callback_url, headers=kept))


async def test_6_refusal_ends_on_a_page_not_in_a_loop(stack: Stack) -> None:
    emulator = stack.emulator()
    async with stack.phone(stack.middleware(scope="snsapi_userinfo")) as client:
        start = await client.get("/page")
        consent = await client.get(location(start))
        refused = await approve_consent(client, consent, persona="xiaoming", allow=False)
        callback_url = location(refused)
        assert "code=" not in callback_url
        callback = await shown(client, callback_url)
        assert callback.status_code == 403
        assert "location" not in callback.headers
        assert "declined" in callback.text
        assert 'href="/page"' in callback.text  # the way back is offered, not forced
        again = await shown(client, callback_url)  # and a reload does not loop either
    assert again.status_code == 400
    assert emulator.calls == []


async def test_6_the_callbacks_pages_are_shown_at_an_address_without_code_or_state(
    stack: Stack,
) -> None:
    from wxauth_middleware import HTTPRequest, LoginDeclined, WeChatAuthError

    seen: list[tuple[str, str, str | None, str, str]] = []

    def on_error(error: WeChatAuthError, request: HTTPRequest) -> None:
        seen.append((error.code, error.hint, error.return_to, request.path, request.target))

    stack.emulator()
    async with stack.phone(stack.middleware(on_error=on_error)) as client:
        start = await client.get("/page?x=1")
        consent = await client.get(location(start))
        refused = await approve_consent(client, consent, persona="xiaoming", allow=False)
        callback = await client.get(location(refused))
        clean = clean_address(callback.text) or ""
        reload = await client.get(clean)
        again = await client.get(clean)
        forged = await client.get(clean[:-4] + ("AAAA" if clean[-4:] != "AAAA" else "BBBB"))
        json = await client.get(location(refused), headers=JSON)  # the login is over now
    # JSON clients have no address bar: answered as they are.
    assert (json.status_code, json.json()["error"]) == (400, "invalid_state")
    assert "location" not in json.headers
    # The page is the callback's answer, with its own status; it puts an address without the
    # code and state in the address bar, which shows the same page again.
    assert callback.status_code == 403
    assert "location" not in callback.headers
    parts = urlsplit(clean)
    assert (parts.path, list(dict(_query(clean)))) == ("/wxauth/callback", ["page"])
    assert "wxauth_session_login=" in callback.headers["set-cookie"]  # the login is over
    assert 'href="/page?x=1"' in callback.text  # the way back is offered
    assert reload.status_code == 403
    assert 'href="/page?x=1"' in reload.text  # and survives in the clean address
    assert (again.status_code, again.text) == (403, reload.text)  # no loop, same page
    assert clean_address(reload.text) is None
    assert forged.status_code == 400  # a page the callback did not sign
    assert "location" not in forged.headers
    # on_error is asked for each page, with the error's code, hint and return_to: at the
    # callback, then at the clean address.
    target = urlsplit(location(refused))
    at_callback = f"{target.path}?{target.query}"
    declined = ("login_declined", LoginDeclined.hint, "/page?x=1", "/wxauth/callback")
    assert seen[:3] == [(*declined, at_callback), (*declined, clean), (*declined, clean)]
    assert [code for code, *_ in seen[3:]] == ["invalid_state", "invalid_state"]


async def test_6_a_callback_on_another_host_than_the_login_started_on_says_so(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # A site answering on www.example.com and example.com, public_url the latter: a login
    # started on www comes back to example.com, where www's login-state cookie is not.
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware(public_url="http://example.com")
    async with stack.phone(middleware) as client:
        with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
            start = await client.get("/page", headers={"host": "www.example.com"})
            back = urlsplit(location(await client.get(location(start))))
            assert back.netloc == "example.com"
            client.cookies.clear()  # the browser keeps the cookie for www.example.com
            callback_url = f"{back.path}?{back.query}"
            page = await shown(client, callback_url, headers={"host": "example.com"})
            again = await client.get(
                clean_address(page.text) or "", headers={"host": "example.com"}
            )
            json = await client.get(callback_url, headers={"host": "example.com", **JSON})
    assert page.status_code == 400
    assert clean_address(page.text) is not None  # shown at the clean address
    zh = page.text.index("微信返回到了 example.com，但登录是在本网站的另一个地址开始的")
    en = page.text.index("WeChat came back to example.com, but the login started at another")
    assert zh < en  # Chinese first
    # The host it started on is the log's (anyone can start a login with any Host header).
    assert "www.example.com" not in page.text
    assert "http://example.com" in page.text  # where to open the site
    # A reload: the same page (less the script that put its address in the address bar).
    assert (again.status_code, clean_address(again.text)) == (400, None)
    assert again.text.split("</head>")[1] == page.text.split("</head>")[1]
    assert json.status_code == 400
    assert json.json()["error"] == "host_mismatch"
    assert "set public_url" in json.json()["detail"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("started on host www.example.com" in w and "example.com" in w for w in warnings)
    assert any(
        "callback on host example.com of a login started on host www.example.com" in w
        for w in warnings
    )
    assert emulator.calls == []  # the code was never used


async def test_6_a_login_on_public_urls_own_host_keeps_a_plain_state(stack: Stack) -> None:
    # Started on public_url's host, the cookie is where WeChat comes back: nothing to say,
    # and a lost cookie there restarts the login once, as without public_url.
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(public_url="http://example.com")) as client:
        start = await client.get("/page", headers={"host": "example.com"})
        state = authorize_params(location(start), stack.authorize_url)["state"]
        back = urlsplit(location(await client.get(location(start))))
        client.cookies.clear()
        restart = await client.get(f"{back.path}?{back.query}", headers={"host": "example.com"})
    assert re.fullmatch(r"[0-9a-f]{32}", state), state
    assert restart.status_code == 200
    assert restart.headers["refresh"].startswith("0;url=" + stack.authorize_url)


# -- 7. WeChat errors, faults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        ({"errcode": 40001}, 500, "40001"),
        ({"errcode": 40013}, 500, "40013"),
        ({"errcode": -1}, 503, "errcode -1"),
        ({"errcode": 45011}, 503, "45011"),
        ({"errcode": 48001}, 500, "48001"),
        ({"http_status": 500}, 502, "could not be reached"),
        ({"body": b"<html>502 Bad Gateway</html>"}, 502, "could not be reached"),
        ({"body": b'{"access_token": "x", "openid": '}, 502, "could not be reached"),
        ({"body": b'{"access_token": 5, "openid": "o"}'}, 502, "could not be reached"),
    ],
)
async def test_7_wechat_errors_give_a_clear_page(
    fault: dict[str, object], status: int, text: str, stack: Stack
) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, _ = await _started(client)
        # Until cleared: errcode -1 is retried, and must still fail after the retries.
        emulator.inject("access_token", **fault, times=None)  # type: ignore[arg-type]
        response = await shown(client, callback_url)
        json_response = None
        if status != 502 or "errcode" not in fault:
            json_response = await shown(client, callback_url, headers=JSON)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert text in response.text or text in response.text.lower()
    assert "Traceback" not in response.text
    assert not any(c.startswith("wxauth_session=") for c in _set_cookies(response))
    if json_response is not None:
        assert json_response.status_code == status
        assert json_response.json()["error"]


async def test_7_system_busy_is_retried_and_the_login_succeeds(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=-1, times=2)
        response = await shown(client, callback_url)
    assert response.status_code == 302
    assert [c.path for c in emulator.calls] == ["/sns/oauth2/access_token"] * 3


async def test_7_retries_are_bounded(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(retries=1)) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=-1, times=None)
        response = await shown(client, callback_url)
    assert response.status_code == 503
    assert len(emulator.calls) == 2


async def test_7_a_spent_code_or_a_slow_answer_is_never_retried(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware(http_timeout=0.3, login_timeout=5)
    async with stack.phone(middleware) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", latency=1.0)
        timed_out = await shown(client, callback_url)
    assert timed_out.status_code == 504
    assert len(emulator.calls) <= 1  # the slow call may or may not have been recorded yet


async def test_7_the_login_deadline_bounds_latency_and_retries(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware(http_timeout=5, login_timeout=0.6, retries=5)
    async with stack.phone(middleware) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=-1, latency=0.25, times=None)
        response = await shown(client, callback_url)
    assert response.status_code in (503, 504)
    # 0.25 s answers with 0.2 s, 0.4 s... between them: the 0.6 s deadline leaves room for
    # two or three attempts of the six that retries=5 would allow.
    assert 1 < len(emulator.calls) <= 3


async def test_7_errcode_page_shows_wechats_rid_and_a_hint(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=40001)
        response = await shown(client, callback_url, headers={"accept": "application/json"})
    body = response.json()
    assert body["errcode"] == 40001
    assert re.fullmatch(r"[0-9a-f-]+", body["rid"])
    assert "app_secret" in body["detail"]


async def test_7_wrong_secret_is_a_configuration_error_page(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(app_secret="wrong-secret")
    async with stack.phone(middleware) as client:
        callback_url, _ = await _started(client)
        with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
            response = await shown(client, callback_url)
    # WeChat answers a wrong AppSecret with 40125 today: the page names the option to fix.
    assert response.status_code == 500
    assert "40125" in response.text
    assert "app_secret" in response.text
    assert "wrong-secret" not in response.text
    # Not a passing failure: the visitor is not told to try again, but to tell the site.
    assert "再试一次" not in response.text
    assert "请稍后再试" not in response.text
    assert "Try again" not in response.text
    assert "再试也无法登录" in response.text
    assert "告知网站管理员" in response.text
    # The log line has the page's hint: the option, and where the right value is.
    [line] = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert "errcode=40125" in line
    assert "app_secret" in line
    assert "设置与开发 → 基本配置" in line
    assert "wrong-secret" not in line


async def test_7_upstream_timeout_gives_504(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware(http_timeout=0.3)
    async with stack.phone(middleware) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", latency=3.0)
        response = await shown(client, callback_url)
    assert response.status_code == 504
    assert "too long" in response.text


async def test_7_connection_refused_gives_502(stack: Stack) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on `port` now: the real network stack refuses the connection.
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(api_base_url=f"http://127.0.0.1:{port}", http_timeout=2)
    async with stack.phone(middleware) as client:
        callback_url, _ = await _started(client)
        response = await shown(client, callback_url)
    assert response.status_code == 502
    assert "could not connect" in response.text


@pytest.mark.parametrize("errcode", [40029, 40163, 42003])
async def test_7_invalid_code_restarts_the_login_once(errcode: int, stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=errcode, times=2)
        restart = await shown(client, callback_url)
        assert restart.status_code == 302
        assert location(restart).startswith(stack.authorize_url)  # once...
        second_callback = location(await client.get(location(restart)))
        final = await shown(client, second_callback)
        assert final.status_code == 400  # ...and never again
        assert "location" not in final.headers
        # After the page, a fresh visit starts a fresh login that works.
        page = await login(client, "/page")
    assert page.json()["user"] is not None


async def test_7_restarted_login_succeeds_when_the_new_code_works(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        callback_url, _ = await _started(client)
        first = await shown(client, callback_url)
        assert first.status_code == 302
        replay_other_browser = location(first)  # not used: same browser continues
        client.cookies.delete("wxauth_session")
        emulator.inject("access_token", errcode=40163)
        restart = await shown(client, callback_url.replace("code=", "code=x"))
    assert replay_other_browser == "/page"
    # The state is done, the session gone: a stale callback is refused, not re-run.
    assert restart.status_code == 400


async def test_7_on_error_hook_renders_errors(stack: Stack) -> None:
    from wxauth_middleware import HTTPRequest, HTTPResponse, WeChatAuthError

    seen: list[WeChatAuthError] = []

    def on_error(error: WeChatAuthError, request: HTTPRequest) -> HTTPResponse:
        seen.append(error)
        return HTTPResponse(418, (("content-type", "text/plain"),), f"custom {error.code}".encode())

    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(on_error=on_error)) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=40001)
        response = await shown(client, callback_url)
    assert (response.status_code, response.text) == (418, "custom wechat_error")
    assert len(seen) == 1


async def test_7_failing_on_error_hook_falls_back_to_the_default_page(stack: Stack) -> None:
    def on_error(error: object, request: object) -> None:
        raise RuntimeError("hook bug")

    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(on_error=on_error)) as client:
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=45011)
        response = await shown(client, callback_url)
    assert response.status_code == 503


# -- 8. secrets never reach the browser ------------------------------------------------------


async def test_8_no_secret_or_token_in_responses_or_logs(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator = stack.emulator(auto_approve=True)
    middleware = stack.middleware(scope="snsapi_userinfo")
    seen: list[str] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        seen.append(str(response.headers) + response.text)

    async with stack.phone(middleware) as client:
        client.event_hooks["response"] = [record]
        page = await login(client)
        assert page.json()["user"]["nickname"] == "小明🐼"
        client.cookies.delete("wxauth_session")
        callback_url, _ = await _started(client)
        emulator.inject("access_token", errcode=40001)
        await shown(client, callback_url)
        await client.get("/api", headers={"accept": "application/json"})
    tokens = {DEFAULT_APP_SECRET, "test-signing-key"}
    for call in emulator.calls:
        tokens.update(v for k, v in call.params if k in ("access_token", "refresh_token"))
    app_responses = [text for text in seen if "wxauth" in text or "x-app" in text]
    assert app_responses
    for text in app_responses:
        for token in tokens:
            assert token not in text
    lines = [f"{r.name} {r.getMessage()}" for r in caplog.records]
    assert any("HTTP Request: GET" in line for line in lines)  # httpx did log the calls...
    assert any("errcode=40001" in line for line in lines)  # ...and we logged the failure
    for line in lines:
        for token in tokens:
            assert token not in line, line


async def test_garbage_session_cookie_is_no_session_never_an_error(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        client.cookies.set("wxauth_session", "garbage.x.y")
        wechat = await client.get("/page")
        desktop = await client.get("/page", headers={"user-agent": CHROME_UA})
    assert wechat.status_code == 302
    assert desktop.status_code == 200
    assert desktop.json()["user"] is None


# Every errcode of the protocol's table, at each of the two calls: its defined outcome.
ERRCODE_OUTCOMES = {
    -1: 503,
    40001: 500,
    40003: 502,
    40013: 500,
    40030: 400,
    41008: 400,
    42001: 400,
    42002: 400,
    45009: 503,
    45011: 503,
    48001: 500,
    50001: 403,
    99999: 502,  # one WeChat may add tomorrow
}


@pytest.mark.parametrize("endpoint", ["access_token", "userinfo"])
@pytest.mark.parametrize(("errcode", "status"), sorted(ERRCODE_OUTCOMES.items()))
async def test_7_every_errcode_has_its_outcome(
    errcode: int, status: int, endpoint: str, stack: Stack
) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(scope="snsapi_userinfo")) as client:
        callback_url, _ = await _started(client)
        emulator.inject(endpoint, errcode=errcode, times=None)
        response = await shown(client, callback_url, headers={"accept": "application/json"})
    assert response.status_code == status
    assert response.json()["errcode"] == errcode
    assert "set-cookie" not in response.headers


async def test_4_polling_while_logged_out_keeps_one_api_state_cookie(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        for _ in range(30):  # a front end polling an API while nobody is logged in
            api = await client.get("/api/me", headers={"accept": "application/json"})
            assert api.status_code == 401
        state_cookies = [c for c in client.cookies.jar if c.name.startswith("wxauth_session_")]
        # The latest 401's authorize_url still completes the login.
        callback = await client.get(location(await client.get(api.json()["authorize_url"])))
        page = await client.get(location(callback))
    assert [c.name for c in state_cookies] == ["wxauth_session_login"]
    assert len(state_cookies[0].value or "") < 400  # one login: the API call's latest
    assert page.json()["user"] is not None


def test_spent_states_are_claimed_once_remembered_a_while_and_bounded() -> None:
    now = [1000]
    spent = SpentStates(600, lambda: now[0])
    assert spent.claim("a")
    assert not spent.claim("a")
    spent.release("a")
    assert spent.claim("a")  # released (the exchange failed): it may be tried again
    now[0] += 601
    assert spent.claim("a")  # forgotten after its life
    for i in range(SPENT_MEMORY + 10):
        assert spent.claim(f"s{i}")
    assert len(spent._until) <= SPENT_MEMORY
    assert spent.claim("s0")  # the oldest went first
    assert not spent.claim(f"s{SPENT_MEMORY + 9}")  # the newest is remembered


async def test_redirects_carry_no_body(stack: Stack) -> None:
    # The browser follows the Location; a body would be a second write to the socket on most
    # servers (their headers', then its own) for nothing. Both adapters, a login's 302.
    stack.emulator()
    async with stack.phone(stack.middleware()) as phone:
        page = await phone.get("/page")
        assert page.status_code == 302
        assert page.headers["location"].startswith(stack.authorize_url)
        assert page.content == b""
        assert page.headers["content-length"] == "0"
        assert page.headers["cache-control"] == "no-store"
