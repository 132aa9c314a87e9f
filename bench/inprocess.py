"""In-process cost per request of the middleware's common paths, against a bare app and
Starlette's SessionMiddleware, and its memory over many requests.

    python bench/inprocess.py            # about 30 s
    python bench/inprocess.py --quick    # a few seconds

ASGI: `await app(scope, receive, send)` in a tight loop on one event loop, with the scope a
server builds for a phone's GET (7 headers, copied per call). WSGI: `app(environ,
start_response)` with the body iterated and closed. The session cookie comes from a real login
(the middleware's callback, its token call answered in process by `WeChatEmulator`). Rounds
of batches of about 10 ms are interleaved across the cases; overhead = median over rounds of
(case - bare app) in the same round, so drifts of a shared machine cancel out. Every case is
checked first (status, the user the app sees). The login case is a whole login per
iteration, ASGI only: the 302 to WeChat, then the callback with its login-state cookie, whose
token call goes through the middleware's own connection pool to a stub of WeChat's API on
127.0.0.1 in this process (a canned answer; its cost is in the figure). Memory: VmRSS of this
process after a tenth of `--requests` requests of every case but the login, and after
`--requests` more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
from _common import (
    ACCEPT,
    APP_ID,
    APP_SECRET,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    machine_lines,
    median,
    print_table,
    rss_kib,
)
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware, get_wechat_user
from wxauth_middleware.emulator import WeChatEmulator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

OPTIONS: dict[str, Any] = {"app_id": APP_ID, "app_secret": APP_SECRET, "secret_key": SECRET_KEY}
OPENID = "oXk3v2mQ9cJ7tR1bN8aW4eY6uZ0s"
_GRANT = json.dumps(
    {
        "access_token": "ACCESS",
        "expires_in": 7200,
        "refresh_token": "REFRESH",
        "openid": OPENID,
        "scope": "snsapi_base",
    }
).encode()
_START: Message = {"type": "http.response.start", "status": 200, "headers": []}
_BODY: Message = {"type": "http.response.body", "body": b"ok"}


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_START)
    await send(_BODY)


def bare_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("content-length", "2")])
    return [b"ok"]


def scope(user_agent: str, cookie: str = "", path: str = "/page", query: str = "") -> Scope:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"connection", b"keep-alive"),
        (b"user-agent", user_agent.encode()),
        (b"accept", ACCEPT.encode()),
        (b"accept-encoding", b"gzip, deflate"),
        (b"accept-language", b"zh-CN,zh;q=0.9"),
    ]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
    }


def environ(http_scope: Scope) -> dict[str, Any]:
    """The WSGI environ for the same request."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": http_scope["path"],
        "QUERY_STRING": http_scope["query_string"].decode(),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    for name, value in http_scope["headers"]:
        env["HTTP_" + name.decode().upper().replace("-", "_")] = value.decode()
    return env


async def asgi_call(app: ASGIApp, http_scope: Scope) -> tuple[int, list[tuple[bytes, bytes]]]:
    answer: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        answer.append(message)

    await app(dict(http_scope), receive, send)
    return answer[0]["status"], answer[0].get("headers", [])


def wsgi_call(app: WSGIApplication, env: dict[str, Any]) -> int:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    consume(app(dict(env), start_response))
    return int(statuses[0][:3])


def consume(body: Iterable[bytes]) -> None:
    """What a server does with a WSGI body: iterate it, close it."""
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def set_cookies(headers: list[tuple[bytes, bytes]]) -> str:
    pairs = [v.decode().split(";")[0] for k, v in headers if k == b"set-cookie"]
    return "; ".join(p for p in pairs if not p.endswith("="))


async def login_cookie() -> str:
    """The session cookie a phone holds after a real login (the emulator answers in process)."""
    emulator = WeChatEmulator()
    ours = WeChatAuthMiddleware(
        bare_asgi,
        **OPTIONS,
        transport=httpx.ASGITransport(app=emulator),
        api_base_url="http://127.0.0.1:8400",
    )
    status, headers = await asgi_call(ours, scope(WECHAT_UA))
    location = dict(headers)[b"location"].decode()
    state = parse_qs(urlsplit(location).query)["state"][0]
    query = f"code={emulator.issue_code()}&state={state}"
    callback = scope(WECHAT_UA, set_cookies(headers), "/wxauth/callback", query)
    status, headers = await asgi_call(ours, callback)
    if status != 302 or not set_cookies(headers):
        raise SystemExit(f"the login did not give a session cookie: {status} {headers}")
    return set_cookies(headers)


async def starlette_cookie() -> str:
    async def log_in(scope: Scope, receive: Receive, send: Send) -> None:
        scope["session"]["user"] = {"openid": "oXk3v2mQ9cJ7tR1bN8aW4eY6uZ0s", "nickname": "小明"}
        await bare_asgi(scope, receive, send)

    _, headers = await asgi_call(SessionMiddleware(log_in, secret_key=SECRET_KEY), scope(CHROME_UA))
    return set_cookies(headers)


@asynccontextmanager
async def stub_wechat() -> AsyncIterator[str]:
    """A stub of WeChat's API on 127.0.0.1 (keep-alive), its base URL: every request gets
    one token grant."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    answer += b"content-length: %d\r\n\r\n%s" % (len(_GRANT), _GRANT)
    connections: dict[asyncio.StreamWriter, asyncio.Task[Any] | None] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[writer] = asyncio.current_task()
        try:
            while await reader.readuntil(b"\r\n\r\n"):  # GETs: no body
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in connections:
            writer.close()  # the middleware's kept connections: their readers end
        await asyncio.gather(*(task for task in connections.values() if task is not None))
        await server.wait_closed()


def login_runner(app: ASGIApp) -> Callable[[int], Any]:
    """Whole logins of a phone: the page's 302 to WeChat, then the callback."""
    page = scope(WECHAT_UA)

    async def run(n: int) -> None:
        for i in range(n):
            _, headers = await asgi_call(app, page)
            location = dict(headers)[b"location"].decode()
            state = parse_qs(urlsplit(location).query)["state"][0]
            query = f"code=code{i}&state={state}"
            callback = scope(WECHAT_UA, set_cookies(headers), "/wxauth/callback", query)
            status, headers = await asgi_call(app, callback)
            if status != 302 or "wxauth_session=" not in set_cookies(headers):
                raise SystemExit(f"the login failed: {status} {headers}")

    return run


def user_seen(http_scope: Scope) -> object:
    return get_wechat_user(http_scope) or http_scope.get("session", {}).get("user")


async def main_async(args: argparse.Namespace) -> int:
    async with stub_wechat() as api_base_url:
        return await measure(args, api_base_url)


async def measure(args: argparse.Namespace, api_base_url: str) -> int:
    cookie, peer_cookie = await login_cookie(), await starlette_cookie()
    seen: list[object] = [None]  # what the app saw on its last request

    async def probe(http_scope: Scope, receive: Receive, send: Send) -> None:
        seen[0] = user_seen(http_scope)
        await bare_asgi(http_scope, receive, send)

    def wsgi_probe(env: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen[0] = get_wechat_user(env)
        return bare_wsgi(env, start_response)

    passing, logged_in = scope(CHROME_UA), scope(WECHAT_UA, cookie)
    # name, ASGI app (or WSGI app), request, status, whether the app sees a user
    cases: list[tuple[str, Any, Scope, int, bool | None]] = [
        ("ASGI bare app", bare_asgi, logged_in, 200, None),
        ("ASGI ours: pass-through (desktop, no cookie)", probe, passing, 200, False),
        ("ASGI ours: logged-in (WeChat, session cookie)", probe, logged_in, 200, True),
        ("ASGI ours: anonymous WeChat page -> 302", probe, scope(WECHAT_UA), 302, None),
        ("ASGI SessionMiddleware: logged-in", probe, scope(WECHAT_UA, peer_cookie), 200, True),
        ("WSGI bare app", bare_wsgi, logged_in, 200, None),
        ("WSGI ours: pass-through (desktop, no cookie)", wsgi_probe, passing, 200, False),
        ("WSGI ours: logged-in (WeChat, session cookie)", wsgi_probe, logged_in, 200, True),
        ("WSGI ours: anonymous WeChat page -> 302", wsgi_probe, scope(WECHAT_UA), 302, None),
    ]
    runners: list[tuple[str, Callable[[int], Any]]] = []
    for name, inner, request, status, user in cases:
        if name.startswith("ASGI"):
            app: ASGIApp
            if "ours" in name:
                app = WeChatAuthMiddleware(inner, **OPTIONS)
            elif "Session" in name:
                app = SessionMiddleware(inner, secret_key=SECRET_KEY)
            else:
                app = inner
            got = (await asgi_call(app, request))[0]
            runner = asgi_runner(app, request)
        else:
            wsgi: WSGIApplication = (
                WeChatAuthWSGIMiddleware(inner, **OPTIONS) if "ours" in name else inner
            )
            env = environ(request)
            got = wsgi_call(wsgi, env)
            runner = wsgi_runner(wsgi, env)
        if got != status or (user is not None and bool(seen[0]) != user):
            raise SystemExit(f"{name}: status {got}, user {seen[0]}; expected {status}, {user}")
        seen[0] = None
        runners.append((name, runner))
    logging_in = WeChatAuthMiddleware(bare_asgi, **OPTIONS, api_base_url=api_base_url)
    await login_runner(logging_in)(2)
    # Per login, not per request; left out of the memory run (a login is remembered a while).
    timed_cases = [*runners[:4], ("ASGI ours: login, stub WeChat", login_runner(logging_in))]
    timed_cases += runners[4:]

    sizes = {name: max(20, int(0.01 / (await timed(run, 200) / 200))) for name, run in timed_cases}
    per_request: dict[str, list[float]] = {name: [] for name, _ in timed_cases}
    for r in range(args.rounds):
        n = r % len(timed_cases)
        for name, run in timed_cases[n:] + timed_cases[:n]:
            per_request[name].append(await timed(run, sizes[name]) / sizes[name] * 1e6)
    rows = []
    for name, _ in timed_cases:
        bare = per_request[name[:4] + " bare app"]
        overhead = median([a - b for a, b in zip(per_request[name], bare, strict=True)])
        rows.append(
            [name, f"{median(per_request[name]):.2f}", "-" if "bare" in name else f"{overhead:.2f}"]
        )
    print_table(
        ["case", "µs/request", "overhead µs"],
        rows,
        "In process, per request (the login: per login; medians over rounds):",
    )

    for _, run in runners:  # caches fill up first (the verified-cookie cache, user agents)
        await timed(run, args.requests // 10)
    before = rss_kib()
    for _, run in runners:
        await timed(run, args.requests)
    print(
        f"\nVmRSS: {before} KiB, after {args.requests} more requests of each case: "
        f"{rss_kib()} KiB ({rss_kib() - before:+d} KiB)"
    )
    return 0


def asgi_runner(app: ASGIApp, http_scope: Scope) -> Callable[[int], Any]:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    async def run(n: int) -> None:
        for _ in range(n):
            await app(dict(http_scope), receive, send)

    return run


def wsgi_runner(app: WSGIApplication, env: dict[str, Any]) -> Callable[[int], Any]:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        return lambda data: None

    async def run(n: int) -> None:
        for _ in range(n):
            consume(app(dict(env), start_response))

    return run


async def timed(run: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    await run(n)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--requests", type=int, default=100_000, help="per case, for memory")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 5, 2000
    print("\n".join(machine_lines()))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
