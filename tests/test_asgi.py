"""What only the ASGI middleware has: WebSocket scopes, lifespan, the async HTTP client."""

from __future__ import annotations

import json

import pytest

from wxauth_middleware import WeChatAuthMiddleware

from .support import Stack, login

pytestmark = pytest.mark.anyio


# -- 9. lifespan and websockets ----------------------------------------------------------------


async def _websocket_user(middleware: object, cookie: str = "") -> object:
    """Open a WebSocket through the middleware, as a server would, and read what the app saw."""
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("localhost", 8000),
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
    }
    incoming = iter([{"type": "websocket.connect"}, {"type": "websocket.disconnect"}])
    sent: list[dict[str, object]] = []

    async def receive() -> object:
        return next(incoming)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)  # type: ignore[operator]
    assert sent[0]["type"] == "websocket.accept"
    return json.loads(str(sent[1]["text"]))["user"]


async def test_9_websocket_passes_through_with_the_session_user(asgi_stack: Stack) -> None:
    asgi_stack.emulator(auto_approve=True)
    middleware = asgi_stack.middleware()
    assert await _websocket_user(middleware) is None
    assert await _websocket_user(middleware, "wxauth_session=garbage") is None
    async with asgi_stack.phone(middleware) as client:
        await login(client)
        session = client.cookies["wxauth_session"]
    user = await _websocket_user(middleware, f"other=1; wxauth_session={session}")
    assert isinstance(user, dict)
    assert user["scope"] == "snsapi_base"


async def test_9_http_client_is_reused_and_closed_at_lifespan_shutdown(asgi_stack: Stack) -> None:
    asgi_stack.emulator(auto_approve=True)
    middleware = asgi_stack.middleware()
    assert isinstance(middleware, WeChatAuthMiddleware)
    async with asgi_stack.phone(middleware) as client:
        await login(client)
        first = middleware._client
        client.cookies.clear()
        await login(client)
        assert middleware._client is first is not None
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await middleware(lifespan, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert middleware._client is None
    assert first is not None
    assert first.is_closed


async def _http_user(middleware: object, headers: list[tuple[bytes, bytes]]) -> object:
    """An HTTP GET of /whoami through the middleware with exactly these raw headers (a server's
    scope), and the user the app saw."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "scheme": "http",
        "method": "GET",
        "path": "/whoami",
        "raw_path": b"/whoami",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost:8000"), *headers],
        "server": ("localhost", 8000),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[dict[str, object]] = []

    async def receive() -> object:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)  # type: ignore[operator]
    assert sent[0]["status"] == 200, sent
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    return json.loads(body)["user"]


@pytest.mark.parametrize("where", ["alone", "first", "last"])
async def test_a_session_in_one_of_several_cookie_headers_is_found(
    asgi_stack: Stack, where: str
) -> None:
    """HTTP/2 may send each cookie in a Cookie header of its own: all of them are read."""
    asgi_stack.emulator(auto_approve=True)
    middleware = asgi_stack.middleware()
    async with asgi_stack.phone(middleware) as client:
        await login(client)
        session = client.cookies["wxauth_session"]
    mine = (b"cookie", f"wxauth_session={session}".encode())
    others = [(b"cookie", b"a=1"), (b"user-agent", b"curl/8"), (b"cookie", b"b=2")]
    headers = {"alone": [mine], "first": [mine, *others], "last": [*others, mine]}[where]
    user = await _http_user(middleware, headers)
    assert isinstance(user, dict)
    assert user["openid"]
    assert await _http_user(middleware, others) is None
