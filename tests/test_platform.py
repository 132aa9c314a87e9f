"""Third-party platforms (第三方平台) through both adapters, against the emulator over real
HTTP: the ticket's push, the configuration story (no ticket yet, revoked), the admin's
authorization, a user's login on the account's behalf, the authorizer's token and JS-SDK."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import pytest

from wxauth_middleware import OfficialAccount, Platform, WeChatAuthMiddleware
from wxauth_middleware.emulator import DEFAULT_APP_ID, platform_api
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS

from .platform_support import (
    ADMIN_RETURN,
    COMPONENT_APPID,
    EVENTS_PATH,
    PLATFORM,
    call,
    consent,
    platform_emulator,
    platform_middleware,
    push,
    signed_push,
    ticket_xml,
)
from .redis_support import RedisServer
from .support import Middleware, Stack, approve_consent, close, lifespan, location, login
from .support import serve as serve_site

pytestmark = pytest.mark.anyio
OPENID = DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)
JSON = {"accept": "application/json"}


async def _authorize_admin(stack: Stack, middleware: object, client: object) -> str:
    """The admin's authorization, as the application and the admin's browser do it."""
    url = await call(middleware, "platform_authorize_url", ADMIN_RETURN)  # type: ignore[arg-type]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{stack.wechat_url}/cgi-bin/componentloginpage"
    )
    query = dict(parse_qsl(parts.query))
    assert query["component_appid"] == COMPONENT_APPID
    assert query["redirect_uri"] == ADMIN_RETURN
    assert query["auth_type"] == "1"
    assert query["pre_auth_code"]
    page = await client.get(url)  # type: ignore[attr-defined]
    assert page.status_code == 200
    assert COMPONENT_APPID in page.text
    back = await consent(client, page, DEFAULT_APP_ID)  # type: ignore[arg-type]
    returned = urlsplit(location(back))
    assert returned.netloc == "localhost:8000"
    auth_code = dict(parse_qsl(returned.query))["auth_code"]
    app_id: str = await call(middleware, "platform_authorized", auth_code)  # type: ignore[arg-type]
    return app_id


async def _callback(phone: httpx.AsyncClient) -> httpx.Response:
    """A login that fails at the callback: its page."""
    start = await phone.get("/page")
    consent_page = await phone.get(location(start))
    back = await approve_consent(phone, consent_page, persona="xiaoming")
    return await phone.get(location(back))


async def test_before_the_first_ticket_a_clear_503(stack: Stack) -> None:
    platform_emulator(stack)
    middleware = platform_middleware(stack)
    async with stack.phone(middleware) as phone:
        page = await phone.get("/page")
        assert page.status_code == 503
        assert "还没有收到微信推送的票据" in page.text
        assert "component_verify_ticket" in page.text
        api = await phone.get("/api/me", headers=JSON)
        assert api.status_code == 503
        assert api.json()["error"] == "platform_not_ready"
        # A login started on purpose (login_path) says the same.
        assert (await phone.get("/wxauth/login?next=/page")).status_code == 503
        # The admin's authorization cannot start either: it says why.
        with pytest.raises(Exception, match="verify ticket"):
            await call(middleware, "platform_authorize_url", ADMIN_RETURN)


async def test_the_whole_story(stack: Stack) -> None:
    emulator = platform_emulator(stack)
    middleware = platform_middleware(stack)
    async with stack.phone(middleware) as phone:
        pushed = await push(phone, emulator, "component_verify_ticket")
        assert (pushed.status_code, pushed.text) == (200, "success")
        # The admin authorizes the platform; the account's refresh token is kept.
        assert await _authorize_admin(stack, middleware, phone) == DEFAULT_APP_ID
        # A user logs in on the account's behalf: component_appid in the link, the
        # component code exchange, the user's openid of that account.
        start = await phone.get("/page")
        link = urlsplit(location(start))
        names = [name for name, _ in parse_qsl(link.query)]
        assert names == [
            "appid",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "component_appid",
        ]
        assert link.fragment == "wechat_redirect"
        assert dict(parse_qsl(link.query))["component_appid"] == COMPONENT_APPID
        page = await login(phone, "/page", persona="xiaoming")
        assert page.status_code == 200
        assert page.json()["user"]["openid"] == OPENID
        exchange = [c for c in emulator.calls if c.path == "/sns/oauth2/component/access_token"]
        assert len(exchange) == 1
        assert [name for name, _ in exchange[0].params] == [
            "appid",
            "code",
            "grant_type",
            "component_appid",
            "component_access_token",
        ]
        assert emulator.call_count("/cgi-bin/component/api_component_token") == 1
        # The account's server token and JS-SDK, on its behalf.
        token = await call(middleware, "access_token", app_id=DEFAULT_APP_ID)
        assert token
        config = await phone.get("/wxauth/jssdk", params={"url": "http://localhost:8000/p"})
        assert config.status_code == 200, config.text
        assert config.json()["appId"] == DEFAULT_APP_ID
        assert emulator.call_count("/cgi-bin/component/api_authorizer_token") == 1
        assert emulator.call_count("/cgi-bin/stable_token") == 0
        # The account revokes its authorization: its logins stop with a clear page.
        platform = emulator.platform
        assert platform is not None
        platform.revoke(DEFAULT_APP_ID)
        revoked = await push(phone, emulator, "unauthorized", AuthorizerAppid=DEFAULT_APP_ID)
        assert revoked.text == "success"
        phone.cookies.clear()
        stopped = await phone.get("/page")
        assert stopped.status_code == 403
        assert "该公众号已取消" in stopped.text
        # Authorizing again lets them log in again.
        assert await _authorize_admin(stack, middleware, phone) == DEFAULT_APP_ID
        again = await login(phone, "/page", persona="xiaoming")
        assert again.json()["user"]["openid"] == OPENID


async def test_an_authorized_event_keeps_the_refresh_token(stack: Stack) -> None:
    """The `authorized` push alone (the admin never came back to redirect_uri) is enough."""
    emulator = platform_emulator(stack, auto_approve=True)
    middleware = platform_middleware(stack)
    platform = emulator.platform
    assert platform is not None
    async with stack.phone(middleware) as phone:
        await push(phone, emulator, "component_verify_ticket")
        code = platform.authorize(DEFAULT_APP_ID)
        event = await push(
            phone,
            emulator,
            "authorized",
            AuthorizerAppid=DEFAULT_APP_ID,
            AuthorizationCode=code,
            AuthorizationCodeExpiredTime="3600",
        )
        assert event.text == "success"
        assert await call(middleware, "access_token", app_id=DEFAULT_APP_ID)


async def test_the_refresh_token_is_replaced_when_wechat_sends_a_new_one(stack: Stack) -> None:
    emulator = platform_emulator(stack)
    middleware = platform_middleware(stack)
    async with stack.phone(middleware) as phone:
        await push(phone, emulator, "component_verify_ticket")
        await _authorize_admin(stack, middleware, phone)
        token = await call(middleware, "access_token", app_id=DEFAULT_APP_ID)
        # WeChat rotates the refresh token at each refresh and honours only the newest two:
        # three refreshes in a row succeed only if each new one was kept.
        for _ in range(3):
            emulator.invalidate_account_tokens(DEFAULT_APP_ID)
            token = await call(middleware, "access_token", token, app_id=DEFAULT_APP_ID)
        assert emulator.call_count("/cgi-bin/component/api_authorizer_token") == 4
        platform = emulator.platform
        assert platform is not None
        assert len(platform.authorizers[DEFAULT_APP_ID].refresh_tokens) == 2


async def test_wechat_refusing_the_ticket_is_the_503_too(stack: Stack) -> None:
    emulator = platform_emulator(stack, authorized=True)
    middleware = platform_middleware(stack)
    async with stack.phone(middleware) as phone:
        # A ticket the emulator never issued (another platform's, or an old one): 61006.
        query, body = signed_push(str(int(time.time())), "n1", ticket_xml("ticket@@@unknown"))
        assert (await phone.post(f"{EVENTS_PATH}?{query}", content=body)).text == "success"
        page = await _callback(phone)  # the start needs only the ticket's presence
        assert page.status_code == 503
        assert "还没有收到微信推送的票据" in page.text
        assert emulator.call_count("/sns/oauth2/component/access_token") == 0


@pytest.mark.parametrize("errcode", [61004, 45009])
async def test_wechat_errors_of_the_component_token_are_clear_pages(
    stack: Stack, errcode: int
) -> None:
    emulator = platform_emulator(stack, authorized=True)
    middleware = platform_middleware(stack)
    async with stack.phone(middleware) as phone:
        await push(phone, emulator, "component_verify_ticket")
        emulator.inject("api_component_token", errcode=errcode)
        page = await _callback(phone)
        assert page.status_code in (500, 502, 503)
        assert str(errcode) in page.text
        assert "Traceback" not in page.text


async def test_a_component_token_wechat_calls_stale_is_replaced_once(stack: Stack) -> None:
    emulator = platform_emulator(stack)
    middleware = platform_middleware(stack)
    platform = emulator.platform
    assert platform is not None
    async with stack.phone(middleware) as phone:
        await push(phone, emulator, "component_verify_ticket")
        await _authorize_admin(stack, middleware, phone)
        platform.invalidate_tokens()  # WeChat forgot it: 40001 on its next use
        page = await login(phone, "/page", persona="xiaoming")
        assert page.json()["user"]["openid"] == OPENID
        assert emulator.call_count("/cgi-bin/component/api_component_token") == 2


async def test_pushes_that_cannot_be_trusted_change_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    platform_emulator(stack)
    middleware = platform_middleware(stack)
    now = str(int(time.time()))
    secret_ticket = "ticket@@@do-not-log-me"
    inner = ticket_xml(secret_ticket)
    forged = signed_push(now, "n1", inner, token="AnotherToken")
    other_key = signed_push(now, "n2", inner, aes_key="A" * 43)
    other_platform = signed_push(now, "n3", inner, receive_id="wx0000000000000000")
    stale = signed_push(str(int(time.time()) - 3600), "n4", inner)
    good = signed_push(now, "n5", inner)
    caplog.set_level(logging.INFO, logger="wxauth_middleware")
    async with stack.phone(middleware) as phone:
        for (query, body), status in [
            (forged, 403),
            (other_key, 400),
            (other_platform, 400),
            (stale, 403),
            (("timestamp=1&nonce=2&msg_signature=3&encrypt_type=aes", b"<xml><A>"), 400),
            (("timestamp=1&nonce=2&msg_signature=3&encrypt_type=raw", good[1]), 400),
            ((good[0], b'<!DOCTYPE x [<!ENTITY e "e">]><xml><Encrypt>&e;</Encrypt></xml>'), 400),
        ]:
            refused = await phone.post(f"{EVENTS_PATH}?{query}", content=body)
            assert refused.status_code == status, (query, refused.text)
            assert (await phone.get("/page")).status_code == 503  # still no ticket
        assert (await phone.get(EVENTS_PATH)).status_code == 405
        accepted = await phone.post(f"{EVENTS_PATH}?{good[0]}", content=good[1])
        assert accepted.text == "success"
        replayed = await phone.post(f"{EVENTS_PATH}?{good[0]}", content=good[1])
        assert replayed.status_code == 409
        assert (await phone.get("/page")).status_code == 302  # the ticket is there now
    logged = caplog.text
    assert "push refused" in logged
    assert secret_ticket not in logged
    assert good[1].decode() not in logged


async def test_instances_sharing_redis_share_the_ticket_and_the_tokens(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    """What one instance was pushed and authorized serves another, and one started later (a
    restart): the ticket, the component token (one call for all), the refresh token."""
    emulator = platform_emulator(stack)
    shared = {"redis_url": redis_server.url, "redis_prefix": redis_prefix}
    first = platform_middleware(stack, **shared)
    async with stack.phone(first) as phone:
        await push(phone, emulator, "component_verify_ticket")
        assert await _authorize_admin(stack, first, phone) == DEFAULT_APP_ID
    later = [platform_middleware(stack, **shared) for _ in range(2)]
    async with stack.phone(later[0]) as phone:
        page = await login(phone, "/page", persona="xiaoming")
        assert page.json()["user"]["openid"] == OPENID
        tokens: list[str] = []

        async def token(middleware: Middleware) -> None:
            tokens.append(await call(middleware, "access_token", app_id=DEFAULT_APP_ID))

        async with anyio.create_task_group() as burst:
            for i in range(8):
                burst.start_soon(token, later[i % 2])
        await close(later[1])
    assert len(tokens) == 8
    assert len(set(tokens)) == 1
    assert emulator.call_count("/cgi-bin/component/api_component_token") == 1
    assert emulator.call_count("/cgi-bin/component/api_authorizer_token") == 1
    keys = f"{redis_prefix}platform:{{{COMPONENT_APPID}}}:"
    with redis_server.client() as client:
        assert 0 < client.ttl(keys + "ticket") <= 12 * 3600
        # The refresh token is kept for good, and it is WeChat's newest.
        refresh = client.get(keys + f"authorizer:{DEFAULT_APP_ID}:refresh")
        assert client.ttl(keys + f"authorizer:{DEFAULT_APP_ID}:refresh") == -1
    platform = emulator.platform
    assert platform is not None
    assert refresh is not None
    assert refresh.decode() == platform.authorizers[DEFAULT_APP_ID].refresh_tokens[-1]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"component_appid": "wx123"}, "is not an AppID"),
        ({"component_appsecret": ""}, "component_appsecret is required"),
        ({"token": "a b"}, "message token"),
        ({"encoding_aes_key": "short"}, "43 characters"),
        ({"encoding_aes_key": "=" * 43}, "43 characters"),
    ],
)
def test_a_platform_says_what_is_wrong(fields: dict[str, str], message: str) -> None:
    values = {
        "component_appid": COMPONENT_APPID,
        "component_appsecret": "s",
        "token": "tok",
        "encoding_aes_key": "a" * 43,
        **fields,
    }
    with pytest.raises(ValueError, match=message):
        Platform(**values)


def test_one_platform_with_two_sets_of_credentials_is_refused() -> None:
    other = Platform(COMPONENT_APPID, "another-secret", "tok", "b" * 43)
    accounts = [
        OfficialAccount(app_id=DEFAULT_APP_ID, platform=PLATFORM, hosts=["a.example.com"]),
        OfficialAccount(app_id="wx" + "1" * 16, platform=other, hosts=["b.example.com"]),
    ]
    with pytest.raises(ValueError, match="different credentials"):
        WeChatAuthMiddleware(None, secret_key="k" * 32, accounts=accounts)  # type: ignore[arg-type]


async def test_the_applications_calls_say_what_is_wrong(stack: Stack) -> None:
    platform_emulator(stack)
    middleware = platform_middleware(stack)
    async with stack.phone(middleware):
        with pytest.raises(ValueError, match="absolute http"):
            await call(middleware, "platform_authorize_url", "/relative")
        with pytest.raises(ValueError, match="auth_code"):
            await call(middleware, "platform_authorized", "")
        with pytest.raises(ValueError, match="not the platform of any account"):
            await call(middleware, "platform_authorized", "x", component_appid="wx" + "2" * 16)
    plain = stack.middleware()
    async with stack.phone(plain):
        with pytest.raises(ValueError, match="no account has a platform"):
            await call(plain, "platform_authorize_url", ADMIN_RETURN)


async def test_an_accounts_callable_answering_a_platforms_account_is_a_failure(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    platform_emulator(stack)
    account = OfficialAccount(app_id=DEFAULT_APP_ID, platform=PLATFORM)
    middleware = stack.middleware(app_id=None, app_secret=None, accounts=lambda host: account)
    async with stack.phone(middleware) as phone:
        page = await phone.get("/page")
        assert page.status_code == 503
    assert "list the accounts of a platform" in caplog.text


async def test_a_users_kept_token_is_renewed_on_the_accounts_behalf(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    emulator = platform_emulator(stack, authorized=True, auto_approve=True)
    middleware = platform_middleware(
        stack, redis_url=redis_server.url, redis_prefix=redis_prefix, keep_tokens=True
    )
    async with stack.phone(middleware) as phone:
        await push(phone, emulator, "component_verify_ticket")
        assert (await login(phone, "/page")).json()["user"]["openid"] == OPENID
    token = await call(middleware, "user_access_token", OPENID, app_id=DEFAULT_APP_ID)
    # Make the kept token look expired: the renewal goes through the component API.
    with redis_server.client() as client:
        (key,) = [k for k in client.scan_iter(match=f"{redis_prefix}*token:*{OPENID}")]
        record = json.loads(client.get(key) or b"null")
        record[4] -= 7200
        client.set(key, json.dumps(record), keepttl=True)
    renewed = await call(middleware, "user_access_token", OPENID, app_id=DEFAULT_APP_ID)
    assert renewed != token
    assert emulator.call_count("/sns/oauth2/component/refresh_token") == 1
    assert emulator.call_count("/sns/oauth2/refresh_token") == 0


async def test_a_login_on_behalf_with_the_profile_scope(stack: Stack) -> None:
    emulator = platform_emulator(stack, authorized=True)
    middleware = platform_middleware(stack, scope="snsapi_userinfo")
    async with stack.phone(middleware) as phone:
        await push(phone, emulator, "component_verify_ticket")
        page = await login(phone, "/page", persona="xiaoming")
        user = page.json()["user"]
        assert user["openid"] == OPENID
        assert user["nickname"] == DEFAULT_PERSONAS[0].nickname
        assert emulator.call_count("/sns/userinfo") == 1


async def test_the_emulator_pushes_at_start_and_every_interval(
    asgi_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator as a server runs it (its lifespan), pushing over HTTP to a real server of
    the site; the 10 minutes made short."""
    monkeypatch.setattr(platform_api, "PUSH_INTERVAL", 0.2)
    middleware = platform_middleware(asgi_stack)
    with serve_site(middleware) as site:
        emulator = platform_emulator(asgi_stack, platform_events_url=f"{site}{EVENTS_PATH}")
        platform = emulator.platform
        assert platform is not None
        async with lifespan(emulator):
            for _ in range(400):  # 20 s at most
                if len(platform.pushes) >= 3:
                    break
                await anyio.sleep(0.05)
        assert platform.pushes[:3] == [("component_verify_ticket", 200)] * 3
