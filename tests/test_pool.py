"""The ASGI middleware's own connection pool to WeChat (`wxauth_middleware.pool`), against raw
HTTP/1.1 servers on 127.0.0.1 that answer exactly the bytes each test gives, over plain TCP and
TLS; and when the middleware uses it rather than httpx's client."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware.pool import Pool

from .support import Stack, login

pytestmark = pytest.mark.anyio

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"ok": 1 }'
# What a server answers to the n-th request on a connection (None: say nothing, hold it open).
Answer = Callable[[int], bytes | None]


class Server:
    """A raw HTTP/1.1 server: counts connections and requests, answers with `answer`."""

    def __init__(self, answer: Answer, delay: float = 0.0) -> None:
        self.answer = answer
        # Close each connection after its first answer, without saying so.
        self.drop = False
        self.delay = delay
        self.connections = 0
        self.requests: list[bytes] = []
        self.most_at_once = 0
        self._open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open += 1
        self.most_at_once = max(self.most_at_once, self._open)
        try:
            for n in range(1000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                await asyncio.sleep(self.delay)
                reply = self.answer(n)
                if reply is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply or b"HTTP/1.0" in reply[:8] or self.drop:
                    return
        finally:
            self._open -= 1
            writer.close()


@asynccontextmanager
async def serving(
    answer: Answer, delay: float = 0.0, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(answer, delay)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()


def always(reply: bytes) -> Answer:
    return lambda n: reply


async def get(pool: Pool, target: str, timeout: float) -> tuple[int, str, str, bytes]:
    """A GET of `target` (path and query) through `pool`."""
    return await pool.request(pool.target.request(pool.target.origin + target, (), None), timeout)


async def test_calls_share_at_most_size_connections_and_reuse_them() -> None:
    async with serving(always(OK), delay=0.01) as (server, url):
        pool = Pool(url, 3, 5.0, None)
        answers = await asyncio.gather(*(get(pool, "/sns/x?a=1", 5.0) for _ in range(30)))
        again = await get(pool, "/sns/x?a=2", 5.0)
        await pool.aclose()
    assert answers == [(200, "OK", "application/json", b'{"ok": 1 }')] * 30
    assert again[3] == b'{"ok": 1 }'
    assert server.connections == 3
    assert server.most_at_once == 3
    assert len(server.requests) == 31
    assert server.requests[0].startswith(b"GET /sns/x?a=1 HTTP/1.1\r\nHost: 127.0.0.1:")


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n',
            b'{"a":1}',
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", b"{}"),
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end", b"to the end"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad",
            b"bad",
        ),
    ],
)
async def test_bodies_of_every_framing_are_read_whole(reply: bytes, body: bytes) -> None:
    async with serving(always(reply)) as (server, url):
        pool = Pool(url, 2, 5.0, None)
        first = await get(pool, "/a", 5.0)
        second = await get(pool, "/b", 5.0)
        await pool.aclose()
    assert first[3] == second[3] == body
    # A connection the answer closes is not reused.
    keep = b"close" not in reply and b"HTTP/1.0" not in reply
    assert server.connections == (1 if keep else 2)


async def test_a_kept_connection_the_server_dropped_is_replaced_once() -> None:
    # The server closes each connection right after its first answer, without saying so.
    async with serving(always(OK)) as (server, url):
        server.drop = True
        pool = Pool(url, 1, 5.0, None)
        assert (await get(pool, "/a", 5.0))[0] == 200
        await asyncio.sleep(0.05)
        assert (await get(pool, "/b", 5.0))[0] == 200
        await pool.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
    ],
)
async def test_malformed_answers_are_protocol_errors(reply: bytes) -> None:
    async with serving(always(reply)) as (_, url):
        pool = Pool(url, 1, 5.0, None)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await get(pool, "/a", 5.0)
        await pool.aclose()


async def test_timeouts_name_the_phase_they_ran_out_in() -> None:
    async with serving(lambda n: None) as (_, url):
        pool = Pool(url, 1, 5.0, None)
        hanging = asyncio.ensure_future(get(pool, "/a", 0.5))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):  # the only connection is taken
            await get(pool, "/b", 0.1)
        with pytest.raises(httpx.ReadTimeout):
            await hanging
        # The timed-out call gave its connection's slot back.
        with pytest.raises(httpx.ReadTimeout):
            await get(pool, "/c", 0.1)
        await pool.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with serving(always(OK)) as (_, url):
        pass  # closed: nothing listens on the port any more
    pool = Pool(url, 1, 5.0, None)
    with pytest.raises(httpx.ConnectError):
        await get(pool, "/a", 5.0)
    assert pool._open == 0


async def test_tls_is_verified_and_connections_are_reused() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with serving(always(OK), tls=server_context) as (server, url):
        pool = Pool(url, 2, 5.0, client_context)
        answers = await asyncio.gather(*(get(pool, "/sns/x", 5.0) for _ in range(10)))
        await pool.aclose()
        untrusted = Pool(url, 1, 5.0, ssl.create_default_context())
        with pytest.raises(httpx.ConnectError):
            await get(untrusted, "/sns/x", 5.0)
    assert {a[0] for a in answers} == {200}
    assert server.connections == 2


async def test_the_middleware_pools_unless_a_transport_or_a_proxy_is_set(
    asgi_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    asgi_stack.emulator(auto_approve=True)
    for env in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(env, raising=False)
    cases: list[tuple[dict[str, object], type]] = [
        ({}, Pool),
        ({"transport": httpx.AsyncHTTPTransport()}, httpx.AsyncClient),
    ]
    for options, kind in cases:
        middleware = asgi_stack.middleware(**options)
        assert isinstance(middleware, WeChatAuthMiddleware)
        async with asgi_stack.phone(middleware) as client:
            assert (await login(client)).status_code == 200
            assert isinstance(middleware._client, kind)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    middleware = asgi_stack.middleware()
    assert isinstance(middleware, WeChatAuthMiddleware)
    middleware._http_client()
    assert isinstance(middleware._client, httpx.AsyncClient)
    await middleware.aclose()
