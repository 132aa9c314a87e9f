"""Several Official Accounts in one application, through both adapters against the emulator:
each host served by its own account, and nothing of one account taken for another's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit
from wsgiref.validate import validator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wxauth_middleware import OfficialAccount, WeChatAuthMiddleware, get_wechat_user
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxauth_middleware.emulator.__main__ import banner, build_emulator, build_parser
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS

from .credentials_support import call
from .redis_support import RedisServer
from .support import (
    CHROME_UA,
    WECHAT_UA,
    Middleware,
    Stack,
    Switchboard,
    ThreadedWSGITransport,
    attribute,
    close,
    inner_app,
    location,
    shown,
    websocket_messages,
)

pytestmark = pytest.mark.anyio

A_ID, A_SECRET = DEFAULT_APP_ID, DEFAULT_APP_SECRET
B_ID, B_SECRET = "wx0b1c2d3e4f5a6b7c", "b5ecre7b5ecre7b5ecre7b5ecre7b5ec"
A_HOST, B_HOST, C_HOST = "a.example.com", "b.example.com", "c.example.com"
PERSONA = DEFAULT_PERSONAS[0]  # has a unionid
assert PERSONA.unionid is not None


def _user(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"openid": user.openid, "unionid": user.unionid, "app_id": user.app_id}


async def _whoami(request: Request) -> Response:
    return JSONResponse({"user": _user(get_wechat_user(request)), "path": request.url.path})


def _whoami_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = {"user": _user(get_wechat_user(environ)), "path": environ["PATH_INFO"]}
    start_response("200 OK", [("content-type", "application/json")])
    return [json.dumps(body).encode()]


def accounts(**b_options: Any) -> list[OfficialAccount]:
    return [
        OfficialAccount(A_ID, A_SECRET, hosts=[A_HOST]),
        OfficialAccount(B_ID, B_SECRET, hosts=[B_HOST], **b_options),
    ]


def site(stack: Stack, accounts: Any, **options: Any) -> Middleware:
    """The stack's middleware serving `accounts` (instead of its one account)."""
    asgi_app = Starlette(routes=[Route("/{path:path}", _whoami)])
    return stack.around(
        asgi_app, _whoami_wsgi, app_id=None, app_secret=None, accounts=accounts, **options
    )


def emulator(stack: Stack, **options: Any) -> Any:
    return stack.emulator(
        accounts=((B_ID, B_SECRET),),
        domains=(A_HOST, B_HOST, C_HOST),
        auto_approve=True,
        **options,
    )


@asynccontextmanager
async def browser(
    app: Middleware, user_agent: str = WECHAT_UA, *more_hosts: str
) -> AsyncIterator[httpx.AsyncClient]:
    """One browser (one cookie jar) visiting the hosts of the site (the three, and
    `more_hosts`), WeChat over the network."""
    transport: httpx.AsyncBaseTransport
    if isinstance(app, WeChatAuthMiddleware):
        transport = httpx.ASGITransport(app=app)
    else:
        transport = ThreadedWSGITransport(validator(app))
    mounts = {f"http://{host}": transport for host in (A_HOST, B_HOST, C_HOST, *more_hosts)}
    async with httpx.AsyncClient(
        mounts=mounts, headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"}
    ) as client:
        yield client
    await close(app)


async def log_in(client: httpx.AsyncClient, host: str) -> dict[str, Any]:
    """Visit a page of `host` in WeChat, follow the login; the user the page sees."""
    start = await client.get(f"http://{host}/page")
    assert start.status_code == 302, start.text
    authorize = await client.get(location(start))
    callback = await shown(client, location(authorize))
    assert callback.status_code == 302, callback.text
    page = await client.get(f"http://{host}{location(callback)}")
    user: dict[str, Any] = page.json()["user"]
    return user


def appid_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(location(response)).query)["appid"][0]


async def test_each_host_logs_in_with_its_own_account(stack: Stack) -> None:
    emulator(stack)
    app = site(stack, accounts(scope="snsapi_userinfo"), scope="snsapi_userinfo")
    async with browser(app) as client:
        on_a = await log_in(client, A_HOST)
        on_b = await log_in(client, B_HOST)
    assert on_a == {"openid": PERSONA.openid_for(A_ID), "unionid": PERSONA.unionid, "app_id": A_ID}
    assert on_b == {"openid": PERSONA.openid_for(B_ID), "unionid": PERSONA.unionid, "app_id": B_ID}


async def test_a_session_of_one_account_is_no_session_on_another_accounts_host(
    stack: Stack,
) -> None:
    """With a cookie_domain both hosts share, the browser itself sends A's session to B."""
    wechat = emulator(stack)
    app = site(stack, accounts(), cookie_domain=".example.com")
    async with browser(app) as client:
        assert (await log_in(client, A_HOST))["app_id"] == A_ID
        assert client.cookies.get("wxauth_session", domain=".example.com")
        # On B, a WeChat page visit starts B's own login; the app is not reached.
        assert appid_of(await client.get(f"http://{B_HOST}/page")) == B_ID
        # Another browser's request with that cookie is no one's there.
        other = await client.get(f"http://{B_HOST}/page", headers={"user-agent": CHROME_UA})
        assert other.json()["user"] is None
        # An API call too: the 401 names B's login.
        api = await client.get(f"http://{B_HOST}/api", headers={"accept": "application/json"})
        assert api.status_code == 401
        assert f"appid={B_ID}" in api.json()["authorize_url"]
        # Still A's user on A.
        assert (await client.get(f"http://{A_HOST}/page")).json()["user"]["app_id"] == A_ID
    exchanged = [c.param("appid") for c in wechat.calls if c.path == "/sns/oauth2/access_token"]
    assert exchanged == [A_ID]


async def test_a_login_state_of_one_account_is_refused_on_another_accounts_callback(
    stack: Stack,
) -> None:
    wechat = emulator(stack)
    app = site(stack, accounts(), cookie_domain=".example.com")
    async with browser(app) as client:
        start = await client.get(f"http://{A_HOST}/page")
        authorize = await client.get(location(start))
        callback = urlsplit(location(authorize))
        assert callback.netloc == A_HOST
        # A's code and state (and A's login-state cookie, shared) brought to B's callback.
        elsewhere = urlunsplit(callback._replace(netloc=B_HOST))
        refused = await client.get(elsewhere)
        assert refused.status_code == 400
        assert "wxauth_session=" not in refused.headers.get("set-cookie", "")
        assert (
            await client.get(f"http://{B_HOST}/page", headers={"user-agent": CHROME_UA})
        ).json()["user"] is None
    assert wechat.call_count("/sns/oauth2/access_token") == 0


@pytest.mark.parametrize("user_agent", [WECHAT_UA, CHROME_UA])
async def test_a_host_no_account_serves_passes_through_untouched(
    stack: Stack, user_agent: str
) -> None:
    emulator(stack)
    app = site(stack, accounts(), cookie_domain=".example.com")
    async with browser(app) as client:
        await log_in(client, A_HOST)
        client.headers["user-agent"] = user_agent
        for path in ("/page", "/wxauth/callback", "/wxauth/login", "/wxauth/jssdk"):
            answer = await client.get(f"http://{C_HOST}{path}?code=x&state=y")
            assert answer.status_code == 200, path
            assert answer.json() == {"user": None, "path": path}


def test_the_accounts_credentials_are_their_own(stack: Stack) -> None:
    wechat = emulator(stack)
    follower_of_b = PERSONA.openid_for(B_ID)
    token_a = call(site(stack, accounts()), "access_token", app_id=A_ID)
    token_b = call(site(stack, accounts()), "access_token", app_id=B_ID)
    assert token_a != token_b
    app = site(stack, accounts())
    assert call(app, "follows", follower_of_b, app_id=B_ID) is True
    signed = call(site(stack, accounts()), "jssdk_config", f"http://{B_HOST}/page#x")
    assert signed["appId"] == B_ID
    assert wechat.jsapi_ticket(B_ID) is not None
    assert wechat.jsapi_ticket(A_ID) is None
    with pytest.raises(ValueError, match="app_id"):
        call(site(stack, accounts()), "access_token")
    with pytest.raises(ValueError, match="not one of the accounts"):
        call(site(stack, accounts()), "access_token", app_id="wx00000000000000ff")
    with pytest.raises(ValueError, match="no account serves"):
        call(site(stack, accounts()), "jssdk_config", f"http://{C_HOST}/page")
    asked = [c.param("appid") for c in wechat.calls if c.path == "/cgi-bin/stable_token"]
    assert sorted(asked) == sorted([A_ID, B_ID, B_ID, B_ID])  # one per middleware and account


async def test_the_jssdk_endpoint_signs_with_the_account_of_the_requests_host(
    stack: Stack,
) -> None:
    emulator(stack)
    async with browser(site(stack, accounts()), CHROME_UA) as client:
        for host, app_id in ((A_HOST, A_ID), (B_HOST, B_ID)):
            answer = await client.get(f"http://{host}/wxauth/jssdk?url=http://{host}/p")
            assert answer.status_code == 200, answer.text
            assert answer.json()["appId"] == app_id
        # A page of A is not B's to sign (without public_url: the request's own origin).
        off_site = await client.get(f"http://{B_HOST}/wxauth/jssdk?url=http://{A_HOST}/p")
        assert off_site.status_code == 400


def test_with_redis_the_keys_of_each_account_are_its_own(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    wechat = emulator(stack)
    options = {"redis_url": redis_server.url, "redis_prefix": redis_prefix}

    async def visit() -> None:
        app = site(stack, accounts(), cookie_domain=".example.com", **options)
        async with browser(app) as client:
            await log_in(client, A_HOST)
            # The stored session's id, signed for A, is nothing on B.
            assert appid_of(await client.get(f"http://{B_HOST}/page")) == B_ID
            await log_in(client, B_HOST)

    anyio.run(visit)
    redis = redis_server.client()
    assert redis.keys(f"{redis_prefix}{A_ID}:session:*")
    assert redis.keys(f"{redis_prefix}{B_ID}:session:*")
    assert not redis.keys(f"{redis_prefix}session:*")
    # Tokens and tickets under each AppID, shared by a second instance: no second call.
    for app_id in (A_ID, B_ID):
        first = call(site(stack, accounts(), **options), "access_token", app_id=app_id)
        again = call(site(stack, accounts(), **options), "access_token", app_id=app_id)
        assert first == again
        assert redis.get(f"{redis_prefix}account:{{{app_id}}}:token")
    signed = call(site(stack, accounts(), **options), "jssdk_config", f"http://{B_HOST}/")
    assert signed["appId"] == B_ID
    assert redis.get(f"{redis_prefix}account:{{{B_ID}}}:ticket")
    assert not redis.get(f"{redis_prefix}account:{{{A_ID}}}:ticket")
    asked = [c.param("appid") for c in wechat.calls if c.path == "/cgi-bin/stable_token"]
    assert sorted(asked) == sorted([A_ID, B_ID])


def test_one_listed_account_without_hosts_serves_every_host(stack: Stack) -> None:
    emulator(stack)

    async def visit() -> None:
        async with browser(site(stack, [OfficialAccount(B_ID, B_SECRET)])) as client:
            assert (await log_in(client, C_HOST))["app_id"] == B_ID

    anyio.run(visit)
    assert call(site(stack, [OfficialAccount(B_ID, B_SECRET)]), "access_token")


def test_the_emulator_registers_more_accounts_from_its_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["--account", f"{B_ID}:{B_SECRET}"])
    wechat = build_emulator(args)
    assert wechat.official_app_ids == (A_ID, B_ID)
    assert B_ID in banner(wechat, "127.0.0.1", 8400, A_SECRET)
    assert B_SECRET not in repr(wechat)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--account", B_ID])
    assert "APPID:SECRET" in capsys.readouterr().err
    with pytest.raises(ValueError, match="twice"):
        build_emulator(build_parser().parse_args(["--account", f"{A_ID}:{B_SECRET}"]))


def test_an_openid_is_known_to_its_own_accounts_token_only(stack: Stack) -> None:
    wechat = emulator(stack)
    with httpx.Client(base_url=stack.wechat_url, trust_env=False) as http:

        def token(app_id: str, secret: str) -> str:
            body = {"grant_type": "client_credential", "appid": app_id, "secret": secret}
            answer: str = http.post("/cgi-bin/stable_token", json=body).json()["access_token"]
            return answer

        def info(access_token: str, openid: str) -> dict[str, Any]:
            query = {"access_token": access_token, "openid": openid}
            answer: dict[str, Any] = http.get("/cgi-bin/user/info", params=query).json()
            return answer

        token_a, token_b = token(A_ID, A_SECRET), token(B_ID, B_SECRET)
        assert info(token_b, PERSONA.openid_for(B_ID))["subscribe"] == 1
        assert info(token_b, PERSONA.openid_for(A_ID))["errcode"] == 40003
        assert info(token_a, PERSONA.openid_for(B_ID))["errcode"] == 40003
        wrong = {"grant_type": "client_credential", "appid": B_ID, "secret": A_SECRET}
        assert http.post("/cgi-bin/stable_token", json=wrong).json()["errcode"] == 40125
    index = httpx.get(f"{stack.wechat_url}/", trust_env=False)
    assert f'<code class="more-appid">{B_ID}</code>' in index.text
    assert wechat.issue_code(app_id=B_ID)
    with pytest.raises(ValueError, match="not one of"):
        wechat.issue_code(app_id="wx00000000000000ff")


@pytest.mark.parametrize("redis", [False, True])
async def test_a_scan_ticket_of_one_account_is_nothing_on_another_accounts_host(
    stack: Stack, redis: bool, request: pytest.FixtureRequest
) -> None:
    emulator(stack)
    options: dict[str, Any] = {"other_browsers": "scan"}
    if redis:
        server: RedisServer = request.getfixturevalue("redis_server")
        options |= {
            "redis_url": server.url,
            "redis_prefix": request.getfixturevalue("redis_prefix"),
        }
    app = site(stack, accounts(), **options)
    async with browser(app, CHROME_UA) as desktop, browser(app) as phone:
        page = await desktop.get(f"http://{A_HOST}/page")
        assert page.status_code == 200
        scan_url = urlsplit(attribute(page, "data-scan-url"))
        assert scan_url.netloc == A_HOST
        # A's ticket opened on B's host, by a phone logged in to B: no confirmation to make.
        await log_in(phone, B_HOST)
        elsewhere = await phone.get(urlunsplit(scan_url._replace(netloc=B_HOST)))
        assert elsewhere.status_code == 410, elsewhere.text  # no such ticket there
        assert '<form method="post">' not in elsewhere.text
        # On its own host it is a ticket (the phone logs in to A first).
        own = await phone.get(urlunsplit(scan_url))
        assert own.status_code == 302
        assert appid_of(own) == A_ID


async def test_a_websocket_is_served_by_its_hosts_account(
    wechat_server: tuple[Switchboard, str],
) -> None:
    stack = Stack("asgi", *wechat_server)
    emulator(stack)
    async with browser(site(stack, accounts())) as client:
        openid = (await log_in(client, A_HOST))["openid"]
        cookie = f"wxauth_session={client.cookies['wxauth_session']}"
    app = stack.around(inner_app(), None, app_id=None, app_secret=None, accounts=accounts())

    async def user_on(host: str) -> Any:
        sent = await websocket_messages(app, "/ws", cookie, host=host)
        assert sent[0]["type"] == "websocket.accept", sent
        return json.loads(sent[1]["text"])["user"]

    assert (await user_on(A_HOST))["openid"] == openid
    assert await user_on(B_HOST) is None
    assert await user_on(C_HOST) is None


def test_the_one_account_shorthand_takes_its_own_app_id_or_none(stack: Stack) -> None:
    emulator(stack)
    assert call(stack.middleware(), "access_token", app_id=A_ID)
    with pytest.raises(ValueError, match="is not this middleware's"):
        call(stack.middleware(), "access_token", app_id=B_ID)
    shown = repr(site(stack, accounts()))
    assert "OfficialAccount" not in shown  # a list of thousands stays out of reprs
    assert B_SECRET not in shown


async def test_an_accounts_overrides_are_its_own(stack: Stack) -> None:
    emulator(stack)
    overrides = {"public_url": f"https://{B_HOST}", "scope": "snsapi_userinfo"}
    async with browser(site(stack, accounts(**overrides))) as client:
        on_a = parse_qs(urlsplit(location(await client.get(f"http://{A_HOST}/p"))).query)
        on_b = parse_qs(urlsplit(location(await client.get(f"http://{B_HOST}/p"))).query)
    assert on_a["redirect_uri"] == [f"http://{A_HOST}/wxauth/callback"]
    assert on_a["scope"] == ["snsapi_base"]
    assert on_b["redirect_uri"] == [f"https://{B_HOST}/wxauth/callback"]
    assert on_b["scope"] == ["snsapi_userinfo"]
