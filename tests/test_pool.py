"""The middleware's own connection pools to WeChat (`wxauth_middleware._http.pool` for ASGI,
`wxauth_middleware._http.sync_pool` for WSGI, each test run on both), against raw HTTP/1.1
servers on 127.0.0.1 that answer exactly the bytes each test gives, over plain TCP and TLS; and
when the middlewares use them rather than httpx's client."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trustme

from wxauth_middleware import WeChatAuthMiddleware
from wxauth_middleware._http.pool import Pool
from wxauth_middleware._http.sync_pool import SyncPool

from .support import Stack, location, login

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


class Client:
    """One of the two pools, called from the test's event loop (the blocking one in a worker
    thread, as a WSGI server's thread calls it)."""

    def __init__(
        self, kind: str, url: str, size: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.pool = (Pool if kind == "async" else SyncPool)(url, size, 5.0, ssl_context)

    async def get(self, target: str, timeout: float = 5.0) -> tuple[int, str, str, bytes]:
        """A GET of `target` (path and query)."""
        request = self.pool.target.request(self.pool.target.origin + target, (), None)
        if isinstance(self.pool, Pool):
            return await self.pool.request(request, timeout)
        return await asyncio.to_thread(self.pool.request, request, timeout)

    async def close(self) -> None:
        if isinstance(self.pool, Pool):
            await self.pool.aclose()
        else:
            self.pool.close()


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_calls_share_at_most_size_connections_and_reuse_them(kind: str) -> None:
    async with serving(always(OK), delay=0.01) as (server, url):
        pool = Client(kind, url, 3)
        answers = await asyncio.gather(*(pool.get("/sns/x?a=1", 5.0) for _ in range(30)))
        again = await pool.get("/sns/x?a=2", 5.0)
        await pool.close()
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
async def test_bodies_of_every_framing_are_read_whole(reply: bytes, body: bytes, kind: str) -> None:
    async with serving(always(reply)) as (server, url):
        pool = Client(kind, url, 2)
        first = await pool.get("/a", 5.0)
        second = await pool.get("/b", 5.0)
        await pool.close()
    assert first[3] == second[3] == body
    # A connection the answer closes is not reused.
    keep = b"close" not in reply and b"HTTP/1.0" not in reply
    assert server.connections == (1 if keep else 2)


async def test_a_kept_connection_the_server_dropped_is_replaced_once(kind: str) -> None:
    # The server closes each connection right after its first answer, without saying so.
    async with serving(always(OK)) as (server, url):
        server.drop = True
        pool = Client(kind, url, 1)
        assert (await pool.get("/a", 5.0))[0] == 200
        await asyncio.sleep(0.05)
        assert (await pool.get("/b", 5.0))[0] == 200
        await pool.close()
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
async def test_malformed_answers_are_protocol_errors(reply: bytes, kind: str) -> None:
    async with serving(always(reply)) as (_, url):
        pool = Client(kind, url, 1)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await pool.get("/a", 5.0)
        await pool.close()


async def test_timeouts_name_the_phase_they_ran_out_in(kind: str) -> None:
    async with serving(lambda n: None) as (_, url):
        pool = Client(kind, url, 1)
        hanging = asyncio.ensure_future(pool.get("/a", 0.5))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):  # the only connection is taken
            await pool.get("/b", 0.1)
        with pytest.raises(httpx.ReadTimeout):
            await hanging
        # The timed-out call gave its connection's slot back.
        with pytest.raises(httpx.ReadTimeout):
            await pool.get("/c", 0.1)
        await pool.close()


async def test_a_refused_connection_is_a_connect_error(kind: str) -> None:
    async with serving(always(OK)) as (_, url):
        pass  # closed: nothing listens on the port any more
    pool = Client(kind, url, 1)
    with pytest.raises(httpx.ConnectError):
        await pool.get("/a", 5.0)
    # Its slot was given back: the next call is refused the same way, not kept waiting.
    with pytest.raises(httpx.ConnectError):
        await pool.get("/b", 0.5)


async def test_tls_is_verified_and_connections_are_reused(kind: str) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with serving(always(OK), tls=server_context) as (server, url):
        pool = Client(kind, url, 2, client_context)
        answers = await asyncio.gather(*(pool.get("/sns/x", 5.0) for _ in range(10)))
        await pool.close()
        untrusted = Client(kind, url, 1, ssl.create_default_context())
        with pytest.raises(httpx.ConnectError):
            await untrusted.get("/sns/x", 5.0)
    assert {a[0] for a in answers} == {200}
    assert server.connections == 2


async def test_the_middleware_pools_unless_a_transport_or_a_proxy_is_set(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.emulator(auto_approve=True)
    for env in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(env, raising=False)
    asgi = stack.kind == "asgi"
    cases: list[tuple[dict[str, object], type]] = [
        ({}, Pool if asgi else SyncPool),
        (
            {"transport": httpx.AsyncHTTPTransport() if asgi else httpx.HTTPTransport()},
            httpx.AsyncClient if asgi else httpx.Client,
        ),
    ]
    for options, client_type in cases:
        middleware = stack.middleware(**options)
        async with stack.phone(middleware) as client:
            assert (await login(client)).status_code == 200
            assert isinstance(middleware._client, client_type)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    middleware = stack.middleware()
    middleware._http_client()
    if isinstance(middleware, WeChatAuthMiddleware):
        assert isinstance(middleware._client, httpx.AsyncClient)
        await middleware.aclose()
    else:
        assert isinstance(middleware._client, httpx.Client)
        middleware.close()


async def test_a_waiter_cancelled_in_the_tick_a_connection_is_freed_is_cancelled() -> None:
    pool = Pool("http://127.0.0.1:9", 1, 5.0)
    deadline = asyncio.get_running_loop().time() + 5.0
    held = await pool._acquire(deadline)
    waiting = asyncio.ensure_future(pool._acquire(deadline))
    await asyncio.sleep(0)  # in line for the only connection
    waiting.cancel()
    pool._release(held)  # the same tick: the release skips the cancelled waiter
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # Nothing leaked: the slot is free for the next call.
    assert isinstance(await asyncio.wait_for(pool._acquire(deadline), 1.0), type(held))


async def test_a_waiter_past_its_deadline_leaves_the_line() -> None:
    pool = Pool("http://127.0.0.1:9", 1, 5.0)
    loop = asyncio.get_running_loop()
    held = await pool._acquire(loop.time() + 5.0)
    with pytest.raises(TimeoutError):
        await pool._acquire(loop.time() + 0.02)
    assert not pool._waiting
    # The slot goes to the next call in line, not to the one that gave up.
    after = asyncio.ensure_future(pool._acquire(loop.time() + 5.0))
    await asyncio.sleep(0)
    pool._release(held)
    assert isinstance(await asyncio.wait_for(after, 1.0), type(held))
    assert pool._open == 1
    assert not pool._waiting


async def echoing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that answers each request, after a random pause, with its own target."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(random.choice([0, 0, 0.001, 0.01, 0.05]))
            target = head.split(b" ")[1]
            length = str(len(target)).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n" + target)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_calls_cancelled_or_timed_out_at_random_never_cross_or_fail_otherwise() -> None:
    listener = await asyncio.start_server(echoing, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    pool = Pool(url, 3, 5.0)
    outcomes: dict[str, int] = {}

    async def call(n: int) -> None:
        target = f"/sns/{n}"
        request = pool.target.request(url + target, (), None)
        task = asyncio.ensure_future(pool.request(request, random.choice([0.02, 0.2, 5.0])))
        if random.random() < 0.2:
            await asyncio.sleep(random.choice([0, 0.001, 0.01]))
            task.cancel()
        try:
            answer = await task
        except asyncio.CancelledError:
            outcome = "cancelled"
        except httpx.TimeoutException:
            outcome = "timed out"
        else:
            assert answer.body == target.encode()  # its own answer, never another's
            outcome = "answered"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    random.seed(20)
    try:
        await asyncio.gather(*(call(n) for n in range(600)))
        # The pool still works, within its size.
        assert (await pool.request(pool.target.request(url + "/x", (), None), 5.0)).body == b"/x"
        assert pool._open <= 3
    finally:
        await pool.aclose()
        listener.close()
    assert set(outcomes) == {"answered", "cancelled", "timed out"}
    assert sum(outcomes.values()) == 600


async def test_a_call_handed_a_free_slot_late_times_out_as_a_pool_timeout(kind: str) -> None:
    # A TLS pool against a listener that never answers the handshake: connecting hangs.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"https://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    pool = Client(kind, url, 1)
    try:
        first = asyncio.ensure_future(pool.get("/a", 1.0))
        await asyncio.sleep(0.05)
        # Waits ~0.95 s for the slot, then has ~0.1 s to connect.
        second = asyncio.ensure_future(pool.get("/b", 1.0))
        with pytest.raises(httpx.ConnectTimeout):  # its whole time spent connecting
            await first
        with pytest.raises(httpx.PoolTimeout):
            await second
    finally:
        await pool.close()
        listener.close()


async def trickling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that answers every request a byte every 0.25 s, the body never complete in
    time (64 bytes: 16 s)."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n"
        )
        for _ in range(64):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.25)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_an_answer_trickled_a_byte_at_a_time_times_out_at_the_deadline(kind: str) -> None:
    listener = await asyncio.start_server(trickling, "127.0.0.1", 0)
    pool = Client(kind, f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", 1)
    started = time.monotonic()
    try:
        with pytest.raises(httpx.ReadTimeout):
            await pool.get("/a", 1.0)
    finally:
        await pool.close()
        listener.close()
    assert time.monotonic() - started < 2.0  # each read was bounded by what was left


async def callback_status(stack: Stack, middleware: Any) -> int:
    """The status of the callback of one login from a new phone."""
    async with stack.phone(middleware) as client:
        authorize = await client.get(location(await client.get("/page")))
        return (await client.get(location(authorize))).status_code


@pytest.mark.parametrize("transport", [False, True], ids=["own pool", "httpx transport"])
async def test_a_trickling_wechat_holds_no_callback_past_login_timeout(
    stack: Stack, transport: bool
) -> None:
    stack.emulator(auto_approve=True)
    listener = await asyncio.start_server(trickling, "127.0.0.1", 0)
    options: dict[str, object] = {
        "api_base_url": f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}",
        "http_timeout": 1.0,
        "login_timeout": 2.0,
    }
    if transport:
        sync = stack.kind == "wsgi"
        options["transport"] = httpx.HTTPTransport() if sync else httpx.AsyncHTTPTransport()
    started = time.monotonic()
    try:
        status = await callback_status(stack, stack.middleware(**options))
    finally:
        listener.close()
    assert status == 504
    assert time.monotonic() - started < 2.0 + 1.5


async def test_a_hanging_wechat_times_every_login_of_a_burst_out_as_504(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    async with serving(lambda n: None) as (_, url):
        middleware = stack.middleware(api_base_url=url, max_connections=2, http_timeout=0.5)
        statuses = await asyncio.gather(*(callback_status(stack, middleware) for _ in range(12)))
    assert statuses == [504] * 12


async def test_an_upper_case_https_api_base_url_speaks_tls(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    received: list[bytes] = []

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.close()

    listener = await asyncio.start_server(plain, "127.0.0.1", 0)
    base = f"HTTPS://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        middleware = stack.middleware(api_base_url=base)
        assert middleware.config.api_base_url == "https" + base[5:]
        status = await callback_status(stack, middleware)
    finally:
        listener.close()
    assert status == 502  # the plain listener is no TLS server
    # Connections that sent nothing are the startup's reachability check (a bare TCP connect).
    sent = [data for data in received if data]
    assert sent
    # A TLS handshake record each time: the request (with the AppSecret) never went in clear.
    assert all(data.startswith(b"\x16\x03") for data in sent)
    assert not any(b"secret" in data for data in sent)


async def test_bytes_sent_after_an_answer_are_never_read_as_the_next_one(kind: str) -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers the first request, then sends a second answer nobody asked for.
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(OK)
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ncrossed")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(chatty, "127.0.0.1", 0)
    pool = Client(kind, f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", 1)
    try:
        assert (await pool.get("/a"))[3] == b'{"ok": 1 }'
        await asyncio.sleep(0.2)
        assert (await pool.get("/b"))[3] == b'{"ok": 1 }'
    finally:
        await pool.close()
        listener.close()
