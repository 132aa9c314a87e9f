"""Test helpers for WeCom (企业微信): the emulator's corp, a site of WeCom apps (and Official
Accounts) through either adapter, and one browser visiting it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.validate import validator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wxauth_middleware import WeChatAuthMiddleware, WeComApp, WeComUser, get_wechat_user
from wxauth_middleware.emulator import WeChatEmulator
from wxauth_middleware.emulator.wecom_state import (
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_CORP_SECRET,
    WeComCorp,
)

from .support import WECOM_UA, Middleware, Stack, ThreadedWSGITransport, close, location

CORP = DEFAULT_CORP_ID
AGENT, SECRET = DEFAULT_AGENT_ID, DEFAULT_CORP_SECRET
AGENT2, SECRET2 = 1000003, "S2ecretOfTheSecondApp0123456789abcdefghijk"
OA_HOST, WECOM_HOST, SHARED_HOST = "mp.example.com", "oa.example.com", "both.example.com"
HOSTS = (OA_HOST, WECOM_HOST, SHARED_HOST, "app2.example.com")


def user_of(user: Any) -> dict[str, Any] | None:
    if isinstance(user, WeComUser):
        return {
            "kind": "wecom",
            "corp_id": user.corp_id,
            "agent_id": user.agent_id,
            "userid": user.userid,
            "openid": user.openid,
            "external_userid": user.external_userid,
            "gender": user.gender,
            "mobile": user.mobile,
            "email": user.email,
            "avatar": user.avatar,
            "scope": user.scope,
            "identity": user.identity,
        }
    if user is None:
        return None
    return {"kind": "wechat", "openid": user.openid, "app_id": user.app_id}


async def _whoami(request: Request) -> Response:
    return JSONResponse({"user": user_of(get_wechat_user(request)), "path": request.url.path})


def _whoami_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = {"user": user_of(get_wechat_user(environ)), "path": environ["PATH_INFO"]}
    start_response("200 OK", [("content-type", "application/json")])
    return [json.dumps(body).encode()]


def wecom_emulator(stack: Stack, **options: Any) -> WeChatEmulator:
    """The stack's emulator playing the corp (two apps), trusting the test hosts exactly."""
    corp_options: dict[str, Any] = {
        "trusted_domains": (WECOM_HOST, SHARED_HOST, "app2.example.com"),
        **options.pop("corp", {}),
    }
    corp = WeComCorp(CORP, {AGENT: SECRET, AGENT2: SECRET2}, time.time, **corp_options)
    options.setdefault("auto_approve", True)
    return stack.emulator(wecom=corp, domains=(OA_HOST, SHARED_HOST), **options)


def wecom_app(stack: Stack, **options: Any) -> WeComApp:
    options.setdefault("hosts", [WECOM_HOST])
    return WeComApp(
        corp_id=options.pop("corp_id", CORP),
        agent_id=options.pop("agent_id", AGENT),
        secret=options.pop("secret", SECRET),
        authorize_url=f"{stack.wechat_url}/connect/oauth2/authorize",
        api_base_url=stack.wechat_url,
        sso_url=f"{stack.wechat_url}/wwlogin/sso/login",
        **options,
    )


def wecom_site(stack: Stack, accounts: list[Any], **options: Any) -> Middleware:
    asgi_app = Starlette(routes=[Route("/{path:path}", _whoami)])
    return stack.around(
        asgi_app, _whoami_wsgi, app_id=None, app_secret=None, accounts=accounts, **options
    )


@asynccontextmanager
async def visitor(app: Middleware, user_agent: str = WECOM_UA) -> AsyncIterator[httpx.AsyncClient]:
    """One browser (one cookie jar) visiting the site's hosts; WeCom over the network."""
    transport: httpx.AsyncBaseTransport
    if isinstance(app, WeChatAuthMiddleware):
        transport = httpx.ASGITransport(app=app)
    else:
        transport = ThreadedWSGITransport(validator(app))
    async with httpx.AsyncClient(
        mounts={f"http://{host}": transport for host in HOSTS},
        headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
    ) as client:
        yield client
    await close(app)


async def follow_login(
    client: httpx.AsyncClient, host: str, path: str = "/page"
) -> tuple[httpx.Response, httpx.Response]:
    """Visit `path` of `host`, follow the (auto-approved) login: the first redirect, and the
    callback's answer."""
    start = await client.get(f"http://{host}{path}")
    assert start.status_code == 302, start.text
    authorize = await client.get(location(start))
    callback = await client.get(location(authorize))
    return start, callback


async def log_in(client: httpx.AsyncClient, host: str = WECOM_HOST) -> dict[str, Any]:
    """Log in on `host`; the user its page then sees."""
    _, callback = await follow_login(client, host)
    assert callback.status_code == 302, callback.text
    page = await client.get(f"http://{host}{location(callback)}")
    user: dict[str, Any] = page.json()["user"]
    return user
