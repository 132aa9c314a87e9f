"""What the middleware says in the log as it starts, and never refuses to start for: an
emulator or a Redis that does not answer, an emulator that is still not there when the first
visitor is about to be sent to it, and a proxy that rewrites the Host header."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware

from .servers import free_port
from .support import (
    SECRET_KEY,
    WECHAT_UA,
    Middleware,
    Stack,
    Switchboard,
    ThreadedWSGITransport,
    inner_app,
    inner_wsgi_app,
    location,
    middleware_options,
)

pytestmark = pytest.mark.anyio
WECHAT = "https://open.weixin.qq.com/connect/oauth2/authorize"


def _messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


def _joined(middleware: Middleware) -> None:
    for thread in middleware.reachability.threads:
        thread.join(timeout=15)
        assert not thread.is_alive()


async def test_an_emulator_and_a_redis_that_do_not_answer_are_said_at_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator, redis = f"http://127.0.0.1:{free_port()}", free_port()
    options = middleware_options(
        emulator, redis_url=f"redis://:hunter2-password@127.0.0.1:{redis}/0"
    )
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        # Both start: nothing refused.
        started: list[Middleware] = [
            WeChatAuthMiddleware(inner_app(), **options),
            WeChatAuthWSGIMiddleware(inner_wsgi_app, **options),
        ]
        for middleware in started:
            _joined(middleware)
    said = _messages(caplog, "nothing answers at")
    assert len(said) == 2
    assert all(f"nothing answers at {emulator}" in line for line in said)
    assert all("python -m wxauth_middleware.emulator" in line for line in said)
    store = _messages(caplog, "session store does not answer")
    assert len(store) == 2
    assert all(f"127.0.0.1:{redis} (redis_url)" in line for line in store)
    assert "hunter2" not in caplog.text


async def test_what_answers_is_not_mentioned(
    wechat_server: tuple[Switchboard, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = wechat_server
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        middleware = WeChatAuthMiddleware(inner_app(), **middleware_options(url))
        _joined(middleware)
    assert _messages(caplog, "answer") == []


async def test_the_first_login_says_the_emulator_is_not_there(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    gone = Stack(stack.kind, stack.switchboard, f"http://127.0.0.1:{free_port()}")
    middleware = gone.middleware()
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        async with gone.phone(middleware) as phone:
            start = await phone.get("/page")
            again = await phone.get("/other")
        middleware.reachability.threads[-1].join(timeout=15)
    assert location(start).startswith(gone.authorize_url)
    assert location(again).startswith(gone.authorize_url)
    [said] = _messages(caplog, "a login is starting")  # once, not per visitor
    assert f"nothing answers at {gone.wechat_url} (authorize_url)" in said
    assert "python -m wxauth_middleware.emulator" in said


def _behind_proxy(kind: str, **options: Any) -> Middleware:
    settings = {
        "app_id": "wx1234567890abcdef",
        "app_secret": "s" * 32,
        "secret_key": SECRET_KEY,
        "authorize_url": WECHAT,
        **options,
    }
    if kind == "asgi":
        return WeChatAuthMiddleware(inner_app(), **settings)
    return WeChatAuthWSGIMiddleware(inner_wsgi_app, **settings)


async def _visit(middleware: Middleware, host: str) -> httpx.Response:
    """A WeChat page visit whose Host header is `host` (as a proxy in front passes it on)."""
    headers = {"user-agent": WECHAT_UA, "accept": "text/html"}
    transport: httpx.AsyncBaseTransport = (
        ThreadedWSGITransport(middleware)
        if isinstance(middleware, WeChatAuthWSGIMiddleware)
        else httpx.ASGITransport(app=middleware)
    )
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        return await client.get("/page", headers=headers)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "app:8000", "10.0.0.5"])
async def test_a_host_rewritten_by_a_proxy_is_said_without_public_url(
    kind: str, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = _behind_proxy(kind)
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        first = await _visit(middleware, host)
        await _visit(middleware, host)
    assert first.status_code == 302
    [said] = _messages(caplog, "built from the request's Host")  # once per host
    assert f"redirect_uri http://{host}/wxauth/callback" in said
    assert "10003" in said
    assert "set public_url" in said


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "app:8000"])
async def test_with_public_url_a_rewritten_host_is_no_false_alarm(
    kind: str, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = _behind_proxy(kind, public_url="https://www.example.com")
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        answer = await _visit(middleware, host)
    assert answer.status_code == 302
    assert "redirect_uri=https%3A%2F%2Fwww.example.com%2Fwxauth%2Fcallback" in location(answer)
    assert caplog.records == []


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
async def test_a_login_started_on_another_public_host_is_still_said(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    middleware = _behind_proxy(kind, public_url="https://example.com")
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        await _visit(middleware, "www.example.com")
    assert _messages(caplog, "login started on host www.example.com")
