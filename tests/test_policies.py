"""Login policies, end to end through both adapters against the WeChat emulator: route rules,
the login/logout endpoints, the SPA 401, other browsers (pass / refuse / QR-code login),
on_login hooks, the unionid identity, the domain verification file, and what gets logged."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

from wxauth_middleware import (
    HTTPRequest,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
    WeChatUser,
    get_wechat_user,
)
from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
)
from wxauth_middleware.rules import Rule
from wxauth_middleware.user import User

from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    WECOM_UA,
    Middleware,
    Stack,
    approve_consent,
    authorize_params,
    clean_address,
    location,
    login,
    shown,
    submit_emulator_form,
)

pytestmark = pytest.mark.anyio

XIAOMING = next(p for p in DEFAULT_PERSONAS if p.key == "xiaoming")
MINI_PROGRAM_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN miniProgram"
)
JSON = {"accept": "application/json"}
UNSAFE_NEXTS = ("//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)")


# -- helpers ----------------------------------------------------------------------------------


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _params(url: str) -> dict[str, str]:
    return dict(_query(url))


def _session_cookies(response: httpx.Response) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith("wxauth_session=")]


def _qrconnect_url(stack: Stack) -> str:
    return f"{stack.wechat_url}/connect/qrconnect"


def _website_app(stack: Stack) -> dict[str, Any]:
    return {
        "website_app_id": DEFAULT_WEBSITE_APP_ID,
        "website_app_secret": DEFAULT_WEBSITE_APP_SECRET,
        "qrconnect_url": _qrconnect_url(stack),
    }


async def _scan(
    client: httpx.AsyncClient, page: httpx.Response, *, persona: str, confirm: bool = True
) -> httpx.Response:
    """Fill in the emulator's QR-code page (who scans, then confirm or cancel) and submit it."""
    assert page.status_code == 200, page.text
    button_id = "scan-confirm" if confirm else "scan-cancel"
    return await submit_emulator_form(
        client, page, button_id=button_id, persona=persona, persona_offered=True
    )


async def _finish(client: httpx.AsyncClient, start: httpx.Response) -> httpx.Response:
    """From a 302 to an auto-approving WeChat: the callback's answer, as the browser shows it."""
    return await shown(client, location(await client.get(location(start))))


def _construct(kind: str, **options: Any) -> Middleware:
    """A middleware built with the emulator's account and `options`, not served."""
    options = {
        "app_id": DEFAULT_APP_ID,
        "app_secret": DEFAULT_APP_SECRET,
        "secret_key": SECRET_KEY,
        **options,
    }
    if kind == "asgi":
        return WeChatAuthMiddleware(_identity_asgi, **options)
    return WeChatAuthWSGIMiddleware(_identity_wsgi, **options)


def _identity_body(user: User | None) -> bytes:
    payload = None
    if isinstance(user, WeChatUser):
        payload = {"identity": user.identity, "openid": user.openid, "unionid": user.unionid}
    return json.dumps({"user": payload}).encode()


async def _identity_asgi(scope: Any, receive: Any, send: Any) -> None:
    body = _identity_body(get_wechat_user(scope))
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _identity_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("content-type", "application/json")])
    return [_identity_body(get_wechat_user(environ))]


# -- 1. route rules -----------------------------------------------------------------------------


async def test_exempt_paths_are_never_redirected_and_still_see_the_user(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    rules = [Rule("/static/**", exempt=True), Rule("/healthz", exempt=True)]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        anonymous = [
            await client.get("/static/app.js"),
            await client.get("/static/css/site.css?v=3"),
            await client.get("/static/api.json", headers=JSON),
            await client.get("/healthz"),
            await client.get("/healthz", headers=JSON),
            await client.post("/healthz"),
        ]
        not_exempt = await client.get("/healthz/deeper")
        assert emulator.calls == []
        await login(client, "/page")
        logged_in = [await client.get("/static/app.js"), await client.get("/healthz")]
    for response in anonymous:
        assert response.status_code == 200, response.text
        assert response.json()["user"] is None
        assert "set-cookie" not in response.headers
    assert not_exempt.status_code == 302  # "/healthz" is an exact path, not a prefix
    for response in logged_in:
        assert response.status_code == 200
        assert response.json()["user"]["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)


@pytest.mark.parametrize("exempt_first", [True, False])
async def test_rules_are_ordered_and_the_first_match_wins(exempt_first: bool, stack: Stack) -> None:
    stack.emulator()
    exempt = Rule("/static/**", exempt=True)
    private = Rule("/static/private/**", scope="snsapi_userinfo")
    rules = [exempt, private] if exempt_first else [private, exempt]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        public = await client.get("/static/logo.png")
        secret = await client.get("/static/private/report.pdf")
    assert public.status_code == 200
    if exempt_first:
        assert secret.status_code == 200
        assert secret.json()["user"] is None
    else:
        assert secret.status_code == 302
        assert _params(location(secret))["scope"] == "snsapi_userinfo"


async def test_profile_rule_upgrades_a_base_session_once(stack: Stack) -> None:
    emulator = stack.emulator()
    rules = [Rule("/profile/**", scope="snsapi_userinfo")]
    middleware = stack.middleware(scope="snsapi_base", rules=rules)
    authorize_scopes: list[str] = []
    async with stack.phone(middleware) as client:
        start = await client.get("/")
        authorize_scopes.append(_params(location(start))["scope"])
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="xiaoming")
        home = await client.get(location(await client.get(location(approved))))
        base_user = home.json()["user"]

        upgrade = await client.get("/profile/me")
        assert upgrade.status_code == 302
        authorize_url = location(upgrade)
        assert authorize_url.startswith(stack.authorize_url + "?appid=")
        authorize_scopes.append(_params(authorize_url)["scope"])
        consent = await client.get(authorize_url)
        approved = await approve_consent(client, consent, persona="xiaoming")
        callback = await client.get(location(approved))
        assert location(callback) == "/profile/me"
        profile = await client.get("/profile/me")
        again = await client.get("/profile/me")
        home_again = await client.get("/")
    assert authorize_scopes == ["snsapi_base", "snsapi_userinfo"]
    assert base_user["scope"] == "snsapi_base"
    assert base_user["nickname"] is None
    assert profile.status_code == 200
    user = profile.json()["user"]
    assert user["nickname"] == "小明🐼"
    assert user["scope"] == "snsapi_userinfo"
    assert user["openid"] == base_user["openid"]
    assert again.status_code == 200  # asked once, not on every visit
    assert home_again.status_code == 200
    assert home_again.json()["user"] == user
    assert [c.path for c in emulator.calls] == [
        "/sns/oauth2/access_token",
        "/sns/oauth2/access_token",
        "/sns/userinfo",
    ]


async def test_refused_profile_upgrade_keeps_the_base_session_without_a_loop(
    stack: Stack,
) -> None:
    emulator = stack.emulator()
    rules = [Rule("/profile/**", scope="snsapi_userinfo")]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        home = await login(client, "/", persona="xiaoming")
        upgrade = await client.get("/profile/me?tab=1")
        consent = await client.get(location(upgrade))
        refused = await approve_consent(client, consent, persona="xiaoming", allow=False)
        callback_url = location(refused)
        assert "code=" not in callback_url
        callback = await client.get(callback_url)
        assert callback.status_code == 302
        assert location(callback) == "/profile/me?tab=1"
        profile = await client.get(location(callback))
        again = await client.get("/profile/me")
        other = await client.get("/profile/settings")
        root = await client.get("/")
    base_user = home.json()["user"]
    assert base_user["scope"] == "snsapi_base"
    for response in (profile, again, other, root):
        assert response.status_code == 200, response.text  # no second trip to WeChat
        assert response.json()["user"] == base_user
    assert [c.path for c in emulator.calls] == ["/sns/oauth2/access_token"]


async def test_after_a_refusal_only_an_explicit_login_asks_for_the_profile_again(
    stack: Stack,
) -> None:
    stack.emulator()
    rules = [Rule("/profile/**", scope="snsapi_userinfo")]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        await login(client, "/", persona="xiaoming")
        consent = await client.get(location(await client.get("/profile/me")))
        refused = await approve_consent(client, consent, persona="xiaoming", allow=False)
        await client.get(location(refused))
        assert (await client.get("/profile/me")).status_code == 200  # not asked again...
        asked = await client.get("/wxauth/login?scope=snsapi_userinfo&next=/profile/me")
        consent = await client.get(location(asked))  # ...unless the user asks for it
        approved = await approve_consent(client, consent, persona="xiaoming")
        back = await client.get(location(approved))
        profile = await client.get(location(back))
    assert dict(parse_qsl(urlsplit(location(asked)).query))["scope"] == "snsapi_userinfo"
    assert profile.json()["user"]["nickname"] == "小明🐼"


async def test_api_calls_on_a_profile_route_are_not_redirected(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    rules = [Rule("/profile/**", scope="snsapi_userinfo")]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        await login(client, "/")
        api = await client.get("/profile/api/me", headers=JSON)
        xhr = await client.get("/profile/api/me", headers={"x-requested-with": "XMLHttpRequest"})
        post = await client.post("/profile/me", data={"a": "1"})
    for response in (api, xhr, post):
        assert response.status_code == 200, response.text
        assert response.json()["user"]["scope"] == "snsapi_base"


async def test_profile_route_without_a_session_asks_for_the_profile_directly(
    stack: Stack,
) -> None:
    stack.emulator()
    rules = [Rule("/profile/**", scope="snsapi_userinfo")]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        profile = await client.get("/profile/me")
        home = await client.get("/")
        api = await client.get("/profile/api", headers=JSON)
    assert _params(location(profile))["scope"] == "snsapi_userinfo"
    assert _params(location(home))["scope"] == "snsapi_base"
    assert api.status_code == 401
    assert _params(api.json()["authorize_url"])["scope"] == "snsapi_userinfo"


# -- 2. login and logout endpoints ---------------------------------------------------------


async def test_login_endpoint_starts_a_login_and_lands_on_next(stack: Stack) -> None:
    emulator = stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/wxauth/login?next=/spa%23x")
        assert start.status_code == 302
        url = location(start)
        assert url.startswith(stack.authorize_url + "?appid=")
        assert _params(url)["scope"] == "snsapi_base"
        callback = await _finish(client, start)
        assert location(callback) == "/spa#x"
        page = await client.get(location(callback))
        assert page.json()["user"] is not None
        # Already logged in: straight to next, no trip to WeChat.
        again = await client.get("/wxauth/login?next=" + quote("/other?a=1&b=2", safe=""))
    assert again.status_code == 302
    assert location(again) == "/other?a=1&b=2"
    assert len(emulator.calls) == 1


async def test_login_endpoint_refuses_off_site_next(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        # Not logged in: every login starts, and comes back to the site root.
        # One after the other, logged out again each time: a browser keeps a bounded few
        # logins in progress.
        callbacks = []
        for n in UNSAFE_NEXTS:
            client.cookies.delete("wxauth_session")
            start = await client.get(f"/wxauth/login?next={quote(n, safe='')}")
            callbacks.append(await _finish(client, start))
        # Logged in: straight to the site root.
        direct = [await client.get(f"/wxauth/login?next={quote(n, safe='')}") for n in UNSAFE_NEXTS]
        raw = await client.get("/wxauth/login?next=//evil.com/x")
        missing = await client.get("/wxauth/login")
    for response in (*callbacks, *direct, raw, missing):
        assert response.status_code == 302
        assert location(response) == "/"


async def test_login_endpoint_takes_a_scope(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        start = await client.get("/wxauth/login?next=/me&scope=snsapi_userinfo")
        bogus = await client.get("/wxauth/login?next=/me&scope=snsapi_login")
        assert _params(location(bogus))["scope"] == "snsapi_base"
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="lily")
        callback = await client.get(location(approved))
        me = await client.get(location(callback))
    assert _params(location(start))["scope"] == "snsapi_userinfo"
    assert location(callback) == "/me"
    assert me.json()["user"]["nickname"] == "Lily 🌸 李"


async def test_login_endpoint_with_a_base_session_upgrades_to_the_profile(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        await login(client, "/", persona="xiaoming")
        upgrade = await client.get("/wxauth/login?next=/me&scope=snsapi_userinfo")
        base = await client.get("/wxauth/login?next=/me")
    assert upgrade.status_code == 302
    assert _params(location(upgrade))["scope"] == "snsapi_userinfo"
    assert location(base) == "/me"


@pytest.mark.parametrize("user_agent", [CHROME_UA, WECOM_UA])
async def test_login_endpoint_in_another_browser_says_open_in_wechat(
    user_agent: str, stack: Stack
) -> None:
    emulator = stack.emulator()
    async with stack.phone(stack.middleware(), user_agent=user_agent) as client:
        page = await client.get("/wxauth/login?next=/shop")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "location" not in page.headers
    assert "Open in WeChat" in page.text
    assert f"{APP_ORIGIN}/shop" in page.text
    assert emulator.calls == []


async def test_logout_clears_the_session(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        await login(client, "/page")
        assert "wxauth_session" in client.cookies
        out = await client.post("/wxauth/logout?next=/bye", headers={"origin": APP_ORIGIN})
        assert "wxauth_session" not in client.cookies
        page = await client.get("/page")
        api = await client.get("/api/me", headers=JSON)
    assert out.status_code == 302
    assert location(out) == "/bye"
    [cleared] = _session_cookies(out)
    assert "Max-Age=0" in cleared
    assert "Path=/" in cleared
    assert cleared.startswith(("wxauth_session=;", 'wxauth_session="";'))
    # Not logged in again behind the visitor's back: the logged-out page, and the API's 401.
    assert page.status_code == 200
    assert "已退出登录" in page.text
    assert api.status_code == 401


@pytest.mark.parametrize("scope", ["snsapi_base", "snsapi_userinfo"])
async def test_after_logout_wechat_shows_logged_out_with_one_tap_to_log_in(
    stack: Stack, scope: str
) -> None:
    stack.emulator(auto_approve=True)
    rules = [Rule("/profile/**", scope="snsapi_userinfo"), Rule("/open/**", exempt=True)]
    async with stack.phone(stack.middleware(scope=scope, rules=rules)) as client:
        await login(client, "/profile/me")
        out = await client.post("/wxauth/logout?next=/profile/me", headers={"origin": APP_ORIGIN})
        landed = await client.get(location(out))
        home = await client.get("/")
        exempt = await client.get("/open/news")
        again = re.search(r'href="([^"]+)" id="log-in-again"', landed.text)
        assert again is not None
        tapped = await client.get(again[1].replace("&amp;", "&"))
        assert location(tapped).startswith(stack.authorize_url)
        authorize = await client.get(location(tapped))
        callback = await shown(client, location(authorize))
        back = await client.get(location(callback))
        after = await client.get("/")
    for page in (landed, home):
        assert page.status_code == 200
        assert "已退出登录" in page.text
        assert stack.authorize_url not in page.text
    assert "/wxauth/login?next=%2Fprofile%2Fme" in landed.text
    assert "/wxauth/login?next=%2F" in home.text
    assert exempt.json() == {"user": None, "path": "/open/news"}
    # The tap ends the mark: logged in, and later pages log in as they always did.
    set_cookies = tapped.headers.get_list("set-cookie")
    [cleared] = [c for c in set_cookies if c.startswith("wxauth_session_out=")]
    assert "Max-Age=0" in cleared
    assert back.json()["path"] == "/profile/me"
    assert back.json()["user"]["openid"]
    assert after.json()["user"] is not None


async def test_the_logged_out_mark_leaves_other_browsers_alone(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(), user_agent=CHROME_UA) as desktop:
        desktop.cookies.set("wxauth_session_out", "1")
        page = await desktop.get("/page")
    assert page.json() == {"user": None, "path": "/page"}


async def test_logout_refuses_off_site_next(stack: Stack) -> None:
    stack.emulator()
    async with stack.phone(stack.middleware()) as client:
        post = functools.partial(client.post, headers={"origin": APP_ORIGIN})
        responses = [await post(f"/wxauth/logout?next={quote(n, safe='')}") for n in UNSAFE_NEXTS]
        responses.append(await post("/wxauth/logout?next=//evil.com"))
        responses.append(await post("/wxauth/logout"))
    for response in responses:
        assert response.status_code == 302
        assert location(response) == "/"
        assert len(_session_cookies(response)) == 1


async def test_login_and_logout_paths_can_be_disabled(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(login_path=None, logout_path=None)
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        login_page = await desktop.get("/wxauth/login?next=/x")
        logout_page = await desktop.get("/wxauth/logout")
    async with stack.phone(middleware) as phone:
        api = await phone.get("/api", headers=JSON)
        await login(phone, "/page")
        logout_app = await phone.get("/wxauth/logout?next=/bye")
        still = await phone.get("/page")
    assert login_page.json() == {"user": None, "path": "/wxauth/login"}
    assert logout_page.json() == {"user": None, "path": "/wxauth/logout"}
    assert api.status_code == 401
    assert "login_url" not in api.json()
    assert logout_app.status_code == 200
    assert logout_app.json()["path"] == "/wxauth/logout"
    assert logout_app.json()["user"] is not None
    assert _session_cookies(logout_app) == []
    assert still.json()["user"] is not None


# -- 3. the 401 JSON for single-page apps ------------------------------------------------------


async def test_401_login_url_completes_the_login_on_the_referer_page(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware()) as client:
        api = await client.get(
            "/api/me", headers={**JSON, "referer": f"{APP_ORIGIN}/spa?tab=1&q=%E4%B8%AD"}
        )
        assert api.status_code == 401
        body = api.json()
        assert body["authorize_url"].startswith(stack.authorize_url + "?appid=")
        assert body["login_url"] == "/wxauth/login?next=%2Fspa%3Ftab%3D1%26q%3D%25E4%25B8%25AD"
        start = await client.get(body["login_url"])
        callback = await _finish(client, start)
        assert location(callback) == "/spa?tab=1&q=%E4%B8%AD"
        page = await client.get(location(callback))
        api_again = await client.get("/api/me", headers=JSON)
    assert page.json()["user"] is not None
    assert api_again.status_code == 200
    assert api_again.json()["user"] == page.json()["user"]


async def test_401_login_url_on_a_profile_route_ends_with_the_profile(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    rules = [Rule("/profile/**", scope="snsapi_userinfo")]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        api = await client.get(
            "/profile/api/me", headers={**JSON, "referer": f"{APP_ORIGIN}/profile/me"}
        )
        response = await client.get(api.json()["login_url"])
        # However many trips to WeChat it takes, it ends on the page, with the profile.
        for _ in range(6):
            if response.status_code != 302:
                break
            target = location(response)
            response = await client.get(target)
    assert api.status_code == 401
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/profile/me"
    assert response.json()["user"]["scope"] == "snsapi_userinfo"


async def test_401_login_url_follows_the_login_path_option(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with stack.phone(stack.middleware(login_path="/auth/in")) as client:
        api = await client.get("/api/me", headers={**JSON, "referer": "https://evil.com/x"})
        login_url = api.json()["login_url"]
        callback = await _finish(client, await client.get(login_url))
    assert login_url == "/auth/in?next=%2F"
    assert location(callback) == "/"


# -- 4. other browsers -------------------------------------------------------------------------


@pytest.mark.parametrize("user_agent", [CHROME_UA, WECOM_UA])
async def test_other_browsers_pass_anonymously_by_default(user_agent: str, stack: Stack) -> None:
    emulator = stack.emulator()
    async with stack.phone(stack.middleware(other_browsers="pass"), user_agent=user_agent) as c:
        page = await c.get("/members/list")
        api = await c.get("/api/me", headers=JSON)
    for response in (page, api):
        assert response.status_code == 200
        assert response.json()["user"] is None
    assert emulator.calls == []


@pytest.mark.parametrize("user_agent", [CHROME_UA, WECOM_UA])
async def test_refuse_policy_answers_open_in_wechat(user_agent: str, stack: Stack) -> None:
    emulator = stack.emulator()
    middleware = stack.middleware(other_browsers="refuse")
    async with stack.phone(middleware, user_agent=user_agent) as client:
        page = await client.get("/members/list?page=2")
        api = await client.get("/api/me", headers=JSON)
        post = await client.post("/members/list", data={"x": "1"}, headers=JSON)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "location" not in page.headers
    assert "set-cookie" not in page.headers
    assert f"{APP_ORIGIN}/members/list?page=2" in page.text
    assert "<svg" in page.text
    assert api.status_code == 403
    assert api.json()["error"] == "wechat_required"
    assert api.json()["url"] == f"{APP_ORIGIN}/api/me"
    assert post.status_code == 403
    assert post.json()["error"] == "wechat_required"
    assert emulator.calls == []


async def test_refuse_policy_still_logs_wechat_in_and_honours_sessions(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers="refuse")
    async with stack.phone(middleware) as phone:
        page = await login(phone, "/members/list")
        session = phone.cookies["wxauth_session"]
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        desktop.cookies.set("wxauth_session", session)
        with_session = await desktop.get("/members/list")
    assert page.json()["user"] is not None
    assert with_session.status_code == 200
    assert with_session.json()["user"] == page.json()["user"]


async def test_a_rule_can_refuse_other_browsers_on_some_paths(stack: Stack) -> None:
    stack.emulator()
    rules = [Rule("/members/**", other_browsers="refuse")]
    middleware = stack.middleware(other_browsers="pass", rules=rules)
    async with stack.phone(middleware, user_agent=CHROME_UA) as client:
        members = await client.get("/members/home")
        members_api = await client.get("/members/api", headers=JSON)
        public = await client.get("/news/today")
    assert members.status_code == 403
    assert "<svg" in members.text
    assert members_api.status_code == 403
    assert members_api.json()["error"] == "wechat_required"
    assert public.status_code == 200
    assert public.json() == {"user": None, "path": "/news/today"}


async def test_a_rule_can_let_other_browsers_pass_on_a_refusing_site(stack: Stack) -> None:
    stack.emulator()
    rules = [Rule("/public/**", other_browsers="pass")]
    middleware = stack.middleware(other_browsers="refuse", rules=rules)
    async with stack.phone(middleware, user_agent=CHROME_UA) as client:
        public = await client.get("/public/about")
        private = await client.get("/members/home")
    assert public.status_code == 200
    assert private.status_code == 403


async def test_qrconnect_logs_a_desktop_browser_in_with_the_same_unionid(stack: Stack) -> None:
    emulator = stack.emulator()
    middleware = stack.middleware(
        other_browsers="qrconnect", scope="snsapi_userinfo", **_website_app(stack)
    )
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        start = await desktop.get("/members/home?tab=2")
        assert start.status_code == 302
        url = location(start)
        scan_page = await desktop.get(url)
        scanned = await _scan(desktop, scan_page, persona="xiaoming")
        callback = await desktop.get(location(scanned))
        assert callback.status_code == 302, callback.text
        assert location(callback) == "/members/home?tab=2"
        page = await desktop.get(location(callback))
        again = await desktop.get("/elsewhere")
    async with stack.phone(middleware) as phone:
        in_wechat = await login(phone, "/members/home", persona="xiaoming")

    params = authorize_params(url, _qrconnect_url(stack))
    assert params["appid"] == DEFAULT_WEBSITE_APP_ID
    assert params["redirect_uri"] == f"{APP_ORIGIN}/wxauth/callback"
    assert params["response_type"] == "code"
    assert params["scope"] == "snsapi_login"
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", params["state"])

    desktop_user = page.json()["user"]
    wechat_user = in_wechat.json()["user"]
    assert desktop_user["scope"] == "snsapi_login"
    assert desktop_user["nickname"] == "小明🐼"
    assert desktop_user["openid"] == XIAOMING.openid_for(DEFAULT_WEBSITE_APP_ID)
    assert again.json()["user"] == desktop_user
    assert wechat_user["scope"] == "snsapi_userinfo"
    assert wechat_user["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert desktop_user["unionid"] == wechat_user["unionid"] == XIAOMING.unionid
    assert desktop_user["openid"] != wechat_user["openid"]
    token_calls = [c for c in emulator.calls if c.path == "/sns/oauth2/access_token"]
    assert [(c.param("appid"), c.param("secret")) for c in token_calls] == [
        (DEFAULT_WEBSITE_APP_ID, DEFAULT_WEBSITE_APP_SECRET),
        (DEFAULT_APP_ID, DEFAULT_APP_SECRET),
    ]


async def test_qrconnect_api_calls_and_login_endpoint(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(other_browsers="qrconnect", **_website_app(stack))
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        api = await desktop.get("/api/me", headers={**JSON, "referer": f"{APP_ORIGIN}/dash"})
        via_login = await desktop.get(api.json()["login_url"])
    assert api.status_code == 401
    assert api.json()["authorize_url"].startswith(_qrconnect_url(stack) + "?appid=")
    assert via_login.status_code == 302
    assert location(via_login).startswith(_qrconnect_url(stack) + "?appid=")
    assert _params(location(via_login))["scope"] == "snsapi_login"


async def test_qrconnect_cancelled_scan_logs_nobody_in(stack: Stack) -> None:
    emulator = stack.emulator()
    middleware = stack.middleware(other_browsers="qrconnect", **_website_app(stack))
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        start = await desktop.get("/members/home")
        cancelled = await _scan(
            desktop, await desktop.get(location(start)), persona="lily", confirm=False
        )
        callback = await shown(desktop, location(cancelled))
    assert callback.status_code == 403
    assert "location" not in callback.headers
    assert _session_cookies(callback) == []
    assert emulator.calls == []


async def test_a_rule_can_use_qrconnect_on_some_paths(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    rules = [Rule("/members/**", other_browsers="qrconnect")]
    middleware = stack.middleware(rules=rules, **_website_app(stack))
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        public = await desktop.get("/news")
        start = await desktop.get("/members/home")
        callback = await _finish(desktop, start)
        page = await desktop.get(location(callback))
    assert public.json()["user"] is None
    assert location(start).startswith(_qrconnect_url(stack) + "?appid=")
    assert page.json()["user"]["scope"] == "snsapi_login"


async def test_rule_qrconnect_401_login_url_leads_to_the_qr_login(stack: Stack) -> None:
    """The 401 of an API call on a QR-login route offers a login_url: it must lead to the QR
    login too, not to an "open in WeChat" dead end."""
    stack.emulator(auto_approve=True)
    rules = [Rule("/members/**", other_browsers="qrconnect")]
    middleware = stack.middleware(rules=rules, **_website_app(stack))
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        api = await desktop.get(
            "/members/api/me", headers={**JSON, "referer": f"{APP_ORIGIN}/members/home"}
        )
        assert api.status_code == 401
        assert api.json()["authorize_url"].startswith(_qrconnect_url(stack) + "?appid=")
        via_login = await desktop.get(api.json()["login_url"])
    assert via_login.status_code == 302, via_login.text
    assert location(via_login).startswith(_qrconnect_url(stack) + "?appid=")


@pytest.mark.parametrize(
    "options",
    [
        {"other_browsers": "qrconnect"},
        {"other_browsers": "qrconnect", "website_app_id": DEFAULT_WEBSITE_APP_ID},
        {"other_browsers": "qrconnect", "website_app_secret": DEFAULT_WEBSITE_APP_SECRET},
        {"rules": [Rule("/members/**", other_browsers="qrconnect")]},
        {
            "other_browsers": "qrconnect",
            "website_app_id": DEFAULT_APP_ID,
            "website_app_secret": DEFAULT_WEBSITE_APP_SECRET,
        },
        {"other_browsers": "block"},
    ],
)
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_qrconnect_and_policy_configuration_errors(kind: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"website_app|other_browsers"):
        _construct(kind, **options)


@pytest.mark.parametrize("policy", ["pass", "refuse"])
async def test_a_mini_program_web_view_is_wechat(policy: str, stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(other_browsers=policy)
    async with stack.phone(middleware, user_agent=MINI_PROGRAM_UA) as client:
        start = await client.get("/page")
        assert start.status_code == 302
        assert _params(location(start))["appid"] == DEFAULT_APP_ID
        callback = await _finish(client, start)
        page = await client.get(location(callback))
    assert location(start).startswith(stack.authorize_url + "?appid=")
    assert page.json()["user"]["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)


# -- 5. snapshot users ---------------------------------------------------------------------


async def test_snapshot_user_with_unionid_identity_gets_the_interstitial(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(scope="snsapi_userinfo", identity="unionid")
    async with stack.phone(middleware) as client:
        start = await client.get("/page?x=1")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="snapshot")
        callback = await shown(client, location(approved))
    assert callback.status_code == 200, callback.text
    assert "使用完整服务" in callback.text
    assert clean_address(callback.text) == "/page?x=1"
    assert _session_cookies(callback) == []


# -- 7. hooks and identity -----------------------------------------------------------------


class HookRecorder:
    def __init__(self, verdict: object = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[WeChatUser, HTTPRequest, int]] = []
        self.verdict = verdict
        self.error = error

    def sync(self, user: WeChatUser, request: HTTPRequest) -> object:
        self.calls.append((user, request, threading.get_ident()))
        if self.error is not None:
            raise self.error
        return self.verdict

    async def async_(self, user: WeChatUser, request: HTTPRequest) -> object:
        await asyncio.sleep(0)
        return self.sync(user, request)

    def hook(self, kind: str) -> Callable[[WeChatUser, HTTPRequest], object]:
        return self.sync if kind == "sync" else self.async_


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_login_hook_is_called_once_per_login(kind: str, stack: Stack) -> None:
    stack.emulator()
    recorder = HookRecorder()
    loop_thread = threading.get_ident()
    middleware = stack.middleware(scope="snsapi_userinfo", on_login=recorder.hook(kind))
    async with stack.phone(middleware) as client:
        page = await login(client, "/page?x=1", persona="xiaoming")
        await client.get("/other")
        await client.get("/api", headers=JSON)
        assert len(recorder.calls) == 1
        client.cookies.delete("wxauth_session")
        second = await login(client, "/again", persona="lily")
    assert page.status_code == 200
    assert page.json()["user"]["nickname"] == "小明🐼"
    assert second.json()["user"]["nickname"] == "Lily 🌸 李"
    assert len(recorder.calls) == 2
    (user, request, thread), (user2, _, _) = recorder.calls
    assert isinstance(user, WeChatUser)
    assert user.openid == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert user.nickname == "小明🐼"
    assert user.scope == "snsapi_userinfo"
    assert user2.nickname == "Lily 🌸 李"
    assert isinstance(request, HTTPRequest)
    assert request.path == "/wxauth/callback"
    assert request.method == "GET"
    if stack.kind == "asgi":
        if kind == "sync":
            # A sync hook may block (a database): never on the event loop's thread.
            assert thread != loop_thread
            assert thread != threading.main_thread().ident
        else:
            assert thread == loop_thread


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_login_returning_false_vetoes_the_login(kind: str, stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    recorder = HookRecorder(verdict=False)
    middleware = stack.middleware(on_login=recorder.hook(kind))
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        callback = await _finish(client, start)
        api = await client.get("/api", headers=JSON)
    assert len(recorder.calls) == 1
    assert callback.status_code == 403
    assert callback.headers["content-type"].startswith("text/html")
    assert "location" not in callback.headers
    assert _session_cookies(callback) == []
    assert api.status_code == 401


@pytest.mark.parametrize("verdict", [True, None, "yes"])
async def test_on_login_returning_anything_but_false_accepts(verdict: object, stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(on_login=HookRecorder(verdict=verdict).sync)
    async with stack.phone(middleware) as client:
        page = await login(client, "/page")
    assert page.json()["user"] is not None


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_login_raising_gives_a_500_page_and_no_session(
    kind: str, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.emulator(auto_approve=True)
    recorder = HookRecorder(error=RuntimeError("database is down: secret-dsn-detail"))
    middleware = stack.middleware(on_login=recorder.hook(kind))
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        callback = await _finish(client, start)
        api = await client.get("/api", headers=JSON)
    assert len(recorder.calls) == 1
    assert callback.status_code == 500
    assert callback.headers["content-type"].startswith("text/html")
    assert "Traceback" not in callback.text
    assert "secret-dsn-detail" not in callback.text
    assert "RuntimeError" not in callback.text
    assert _session_cookies(callback) == []
    assert api.status_code == 401
    assert any("secret-dsn-detail" in r.getMessage() or r.exc_info for r in caplog.records)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_unionid_identity_needs_the_profile_scope(kind: str) -> None:
    with pytest.raises(ValueError, match="snsapi_userinfo"):
        _construct(kind, identity="unionid")
    with pytest.raises(ValueError, match="snsapi_userinfo"):
        _construct(kind, identity="unionid", scope="snsapi_base")
    with pytest.raises(ValueError, match="identity"):
        _construct(kind, identity="email", scope="snsapi_userinfo")
    _construct(kind, identity="unionid", scope="snsapi_userinfo")


async def test_unionid_identity(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    emulator = stack.emulator()
    recorder = HookRecorder()
    middleware = stack.around(
        _identity_asgi,
        _identity_wsgi,
        scope="snsapi_userinfo",
        identity="unionid",
        on_login=recorder.sync,
    )
    async with stack.phone(middleware) as client:
        page = await login(client, "/page", persona="xiaoming")
        client.cookies.delete("wxauth_session")
        start = await client.get("/page")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="lily")
        failed = await shown(client, location(approved))
        api = await client.get("/api", headers=JSON)
    user = page.json()["user"]
    assert user["identity"] == user["unionid"] == XIAOMING.unionid
    assert user["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert [u.identity for u, _, _ in recorder.calls] == [XIAOMING.unionid]
    assert failed.status_code == 500
    assert "微信登录无法使用" in failed.text  # the visitor's page; the owner's log:
    assert "WeChat gave no unionid" in caplog.text
    assert "Traceback" not in failed.text
    assert _session_cookies(failed) == []
    assert api.status_code == 401  # nobody is logged in
    assert len(emulator.calls) == 4  # both logins reached WeChat


async def test_openid_identity_is_the_default(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.around(_identity_asgi, _identity_wsgi, scope="snsapi_userinfo")
    async with stack.phone(middleware) as client:
        page = await login(client, "/page", persona="xiaoming")
    user = page.json()["user"]
    assert user["identity"] == user["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)


# -- 8. the domain verification file -----------------------------------------------------------


@pytest.mark.parametrize("policy", ["pass", "refuse"])
async def test_verify_file_is_served_to_every_browser(policy: str, stack: Stack) -> None:
    emulator = stack.emulator()
    middleware = stack.middleware(
        verify_files={"MP_verify_Ab12Cd34.txt": "Ab12Cd34"}, other_browsers=policy
    )
    responses: list[httpx.Response] = []
    for user_agent in (WECHAT_UA, CHROME_UA, WECOM_UA, MINI_PROGRAM_UA, ""):
        async with stack.phone(middleware, user_agent=user_agent) as client:
            responses.append(await client.get("/MP_verify_Ab12Cd34.txt"))
            responses.append(await client.get("/MP_verify_Ab12Cd34.txt", headers=JSON))
    async with stack.phone(middleware) as client:
        head = await client.head("/MP_verify_Ab12Cd34.txt")
        other = await client.get("/MP_verify_Zz99.txt")
    for response in responses:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.content == b"Ab12Cd34"
        assert "location" not in response.headers
        assert "set-cookie" not in response.headers
    assert head.status_code == 200
    assert head.content == b""
    assert other.status_code == 302  # only the configured file
    assert emulator.calls == []


@pytest.mark.parametrize(
    "verify_files",
    [
        {"verify.txt": "Ab12"},
        {"MP_verify_.txt": "Ab12"},
        {"MP_verify_Ab-12.txt": "Ab12"},
        {"MP_verify_Ab12.html": "Ab12"},
        {"/MP_verify_Ab12.txt": "Ab12"},
        {"../MP_verify_Ab12.txt": "Ab12"},
        {"MP_verify_Ab12.txt": ""},
        {"MP_verify_Ab12.txt": "x" * 257},
        {"MP_verify_Ab12.txt": 1234},
    ],
)
@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_bad_verify_files_are_refused(kind: str, verify_files: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="verify_files"):
        _construct(kind, verify_files=verify_files)


# -- 9. logging --------------------------------------------------------------------------------


class _Recorder:
    """Keeps the bodies of WeChat's answers, to know the tokens it handed out."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def tokens(self) -> set[str]:
        found: set[str] = set()
        for body in self.bodies:
            payload = json.loads(body.decode("utf-8", "replace"), strict=False)
            for key in ("access_token", "refresh_token"):
                if isinstance(payload, dict) and payload.get(key):
                    found.add(payload[key])
        return found


class _RecordingAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, recorder: _Recorder) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        self._recorder.bodies.append(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _RecordingTransport(httpx.BaseTransport):
    def __init__(self, recorder: _Recorder) -> None:
        self._inner = httpx.HTTPTransport()
        self._recorder = recorder

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = response.read()
        response.close()
        self._recorder.bodies.append(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    def close(self) -> None:
        self._inner.close()


async def test_logging_says_what_happened_and_never_a_secret(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wxauth_middleware")
    emulator = stack.emulator(auto_approve=True)
    recorder = _Recorder()
    transport: httpx.AsyncBaseTransport | httpx.BaseTransport
    if stack.kind == "asgi":
        transport = _RecordingAsyncTransport(recorder)
    else:
        transport = _RecordingTransport(recorder)
    middleware = stack.middleware(scope="snsapi_userinfo", transport=transport)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name.startswith("wxauth_middleware")]

    async with stack.phone(middleware) as client:
        caplog.clear()
        page = await login(client, "/page")
        ok_lines = lines()
        caplog.clear()
        client.cookies.delete("wxauth_session")
        start = await client.get("/page")
        authorized = await client.get(location(start))
        emulator.inject("access_token", errcode=40001)
        failed = await shown(client, location(authorized))
        failed_lines = lines()
    assert page.json()["user"] is not None
    assert failed.status_code == 500

    def only(found: list[str], words: str) -> str:
        matching = [line for line in found if words in line]
        assert len(matching) == 1, found
        return matching[0]

    start_line = only(ok_lines, "login start")
    assert "scope=snsapi_userinfo" in start_line
    ok_line = only(ok_lines, "login ok")
    assert f"openid={XIAOMING.openid_for(DEFAULT_APP_ID)}" in ok_line
    assert re.search(r"duration_ms=\d+", ok_line)
    assert not any("login failed" in line for line in ok_lines)
    only(failed_lines, "login start")
    failed_line = only(failed_lines, "login failed")
    assert "errcode=40001" in failed_line
    assert re.search(r"rid=[0-9a-f-]+", failed_line)
    assert not any("login ok" in line for line in failed_lines)

    secrets = {DEFAULT_APP_SECRET, SECRET_KEY, *recorder.tokens()}
    for call in emulator.calls:
        secrets.update(v for k, v in call.params if k in ("code", "access_token", "secret"))
    assert len(recorder.tokens()) == 2  # the access and refresh tokens of the login
    assert sum(1 for call in emulator.calls if call.param("code")) == 2
    logged = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    for line in [*logged, *ok_lines, *failed_lines]:
        for secret in secrets:
            assert secret not in line, line
