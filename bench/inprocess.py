"""In-process cost per request of the middleware's common paths, against a bare app, Starlette's
SessionMiddleware and a hand-written JS-SDK endpoint, and its memory over many requests.

    python bench/inprocess.py            # about 4 min
    python bench/inprocess.py --quick    # a few seconds

ASGI: `await app(scope, receive, send)` in a tight loop on one event loop, with the scope a
server builds for a phone's GET (7 headers, copied per call). WSGI: `app(environ,
start_response)` with the body iterated and closed. Session cookies come from real logins (the
middleware's callback). Times are this process's CPU time (a shared machine's other work does
not count). Rounds of batches of about 10 ms are interleaved across the cases; overhead =
median over rounds of (case - bare app) in the same round, so drifts cancel out. Every case is
checked first (status, the user the app sees, the JSON).

- Logged-in, one visitor: the same cookie on every request (the middleware remembers a
  cookie it verified). Logged-in, distinct visitors: `--visitors` (3000) phones, each with its
  own cookie, in turn: more than the middleware remembers, so every request verifies its
  cookie from scratch, as on a busy site. SessionMiddleware gets the same two cases.
- Logins: a whole login per iteration, ASGI: the 302 to WeChat, then the callback with its
  login-state cookie, whose calls go through the middleware's own connection pool to a stub of
  WeChat's API on 127.0.0.1 in this process (`_stub.py`; its cost is in the figure):
  snsapi_base makes one call (the code), snsapi_userinfo two (the code, the profile). The
  floor: the same login (snsapi_base) by the hand-written app of `logins.py` (`_apps.py`),
  against the same stub, driven the same way.
- The JS-SDK: `GET /wxauth/jssdk?url=...` (every page view of a WeChat page calls it), the
  ticket cached, against a raw ASGI app doing the same: the page URL from the query, checked
  to be on the site, a nonce, the SHA-1 of the same string with the same ticket, JSON.

Memory: VmRSS of this process after a tenth of `--requests` requests of every case but the
logins, and after `--requests` more.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import itertools
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import httpx
from _apps import floor as floor_app
from _common import (
    APP_ID,
    APP_SECRET,
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    asgi_call,
    environ,
    machine_lines,
    median,
    print_table,
    rss_kib,
    scope,
    set_cookies,
)
from _stub import TICKET, openid_of, stub_wechat
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware, get_wechat_user
from wxauth_middleware.emulator import WeChatEmulator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

OPTIONS: dict[str, Any] = {"app_id": APP_ID, "app_secret": APP_SECRET, "secret_key": SECRET_KEY}
ORIGIN = "http://127.0.0.1:8000"
PAGE_URL = ORIGIN + "/shop/item?id=12345&from=timeline"
# Codes given to the stub: unique across the run (distinct codes, distinct users).
_CODES = itertools.count()


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    # New messages each time: a middleware may add headers to them (SessionMiddleware does).
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def bare_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("content-length", "2")])
    return [b"ok"]


async def jssdk_floor(scope: Scope, receive: Receive, send: Send) -> None:
    """The JS-SDK endpoint by hand: the least that signing a page of this site costs."""
    url = dict(parse_qsl(scope["query_string"].decode("latin-1"))).get("url", "")
    page = url.partition("#")[0]
    if not page.startswith(ORIGIN + "/"):
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    nonce, timestamp = secrets.token_hex(8), int(time.time())
    signed = f"jsapi_ticket={TICKET}&noncestr={nonce}&timestamp={timestamp}&url={page}"
    signature = hashlib.sha1(signed.encode(), usedforsecurity=False).hexdigest()
    config = {"appId": APP_ID, "timestamp": timestamp, "nonceStr": nonce, "signature": signature}
    body = json.dumps(config).encode()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_call(app: WSGIApplication, env: dict[str, Any]) -> tuple[int, bytes]:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    body = app(dict(env), start_response)
    content = b"".join(body)
    consume(body)
    return int(statuses[0][:3]), content


def consume(body: Iterable[bytes]) -> None:
    """What a server does with a WSGI body: iterate it, close it."""
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


async def emulator_cookie() -> str:
    """The session cookie a phone holds after a real login (the emulator answers in process)."""
    emulator = WeChatEmulator()
    ours = WeChatAuthMiddleware(
        bare_asgi,
        **OPTIONS,
        transport=httpx.ASGITransport(app=emulator),
        api_base_url="http://127.0.0.1:8400",
    )
    return await log_in(ours, emulator.issue_code())


async def log_in(app: ASGIApp, code: str, session: str = "wxauth_session") -> str:
    """A whole login of a phone with `code` (the page's 302 to WeChat, then the callback): its
    session cookie (named `session`)."""
    _, headers, _ = await asgi_call(app, scope(WECHAT_UA))
    location = dict(headers)[b"location"].decode()
    state = parse_qs(urlsplit(location).query)["state"][0]
    query = f"code={code}&state={state}"
    callback = scope(WECHAT_UA, set_cookies(headers), "/wxauth/callback", query)
    status, headers, _ = await asgi_call(app, callback)
    cookie = set_cookies(headers)
    if status != 302 or f"{session}=" not in cookie:
        raise SystemExit(f"the login failed: {status} {headers}")
    return cookie


def login_runner(app: ASGIApp, kind: str, session: str = "wxauth_session") -> Callable[[int], Any]:
    """Whole logins of phones, each with a new code (`kind`: "base" or "info")."""

    async def run(n: int) -> None:
        for _ in range(n):
            await log_in(app, f"{kind}{next(_CODES)}", session)

    return run


async def starlette_cookie(openid: str) -> str:
    async def logs_in(scope: Scope, receive: Receive, send: Send) -> None:
        scope["session"]["user"] = {"openid": openid, "nickname": "小明"}
        await bare_asgi(scope, receive, send)

    app = SessionMiddleware(logs_in, secret_key=SECRET_KEY)
    return set_cookies((await asgi_call(app, scope(CHROME_UA)))[1])


def user_seen(http_scope: Scope) -> object:
    return get_wechat_user(http_scope) or http_scope.get("session", {}).get("user")


async def main_async(args: argparse.Namespace) -> int:
    async with stub_wechat() as api_base_url:
        return await measure(args, api_base_url)


async def measure(args: argparse.Namespace, api_base_url: str) -> int:
    logging_in = WeChatAuthMiddleware(bare_asgi, **OPTIONS, api_base_url=api_base_url)
    profiles = WeChatAuthMiddleware(
        bare_asgi, **OPTIONS, api_base_url=api_base_url, scope="snsapi_userinfo"
    )
    cookie, peer_cookie = await emulator_cookie(), await starlette_cookie(openid_of("peer"))
    codes = [f"base{next(_CODES)}" for _ in range(args.visitors)]
    cookies = [await log_in(logging_in, code) for code in codes]
    peer_cookies = [await starlette_cookie(openid_of(code)) for code in codes]
    seen: list[object] = [None]  # what the app saw on its last request

    async def probe(http_scope: Scope, receive: Receive, send: Send) -> None:
        seen[0] = user_seen(http_scope)
        await bare_asgi(http_scope, receive, send)

    def wsgi_probe(env: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen[0] = get_wechat_user(env)
        return bare_wsgi(env, start_response)

    passing, logged_in = scope(CHROME_UA), scope(WECHAT_UA, cookie)
    visitors = [scope(WECHAT_UA, c) for c in cookies]
    peers = [scope(WECHAT_UA, c) for c in peer_cookies]
    query = "url=" + quote(PAGE_URL + "#top", safe="")
    jssdk = scope(WECHAT_UA, cookie, "/wxauth/jssdk", query, "application/json")
    # name, ASGI app (or WSGI app), requests, status, whether the app sees a user
    cases: list[tuple[str, Any, list[Scope], int, bool | None]] = [
        ("ASGI bare app", bare_asgi, [logged_in], 200, None),
        ("ASGI ours: pass-through (desktop, no cookie)", probe, [passing], 200, False),
        ("ASGI ours: logged-in, one visitor", probe, [logged_in], 200, True),
        (f"ASGI ours: logged-in, {len(visitors)} visitors", probe, visitors, 200, True),
        ("ASGI ours: anonymous WeChat page -> 302", probe, [scope(WECHAT_UA)], 302, None),
        (
            "ASGI SessionMiddleware: logged-in, one",
            probe,
            [scope(WECHAT_UA, peer_cookie)],
            200,
            True,
        ),
        (f"ASGI SessionMiddleware: logged-in, {len(peers)}", probe, peers, 200, True),
        ("ASGI ours: GET /wxauth/jssdk", bare_asgi, [jssdk], 200, None),
        ("ASGI floor: the same signing", jssdk_floor, [jssdk], 200, None),
        ("WSGI bare app", bare_wsgi, [logged_in], 200, None),
        ("WSGI ours: pass-through (desktop, no cookie)", wsgi_probe, [passing], 200, False),
        ("WSGI ours: logged-in, one visitor", wsgi_probe, [logged_in], 200, True),
        (f"WSGI ours: logged-in, {len(visitors)} visitors", wsgi_probe, visitors, 200, True),
        ("WSGI ours: anonymous WeChat page -> 302", wsgi_probe, [scope(WECHAT_UA)], 302, None),
        ("WSGI ours: GET /wxauth/jssdk", bare_wsgi, [jssdk], 200, None),
    ]

    def upstream(name: str) -> dict[str, Any]:
        return {"api_base_url": api_base_url} if "jssdk" in name else {}

    runners: list[tuple[str, Callable[[int], Any]]] = []
    for name, inner, requests, status, user in cases:
        if name.startswith("ASGI"):
            app: ASGIApp
            if "ours" in name:
                app = WeChatAuthMiddleware(inner, **OPTIONS, **upstream(name))
            elif "Session" in name:
                app = SessionMiddleware(inner, secret_key=SECRET_KEY)
            else:
                app = inner
            got, _, body = await asgi_call(app, requests[-1])
            runner = asgi_runner(app, requests)
        else:
            wsgi: WSGIApplication = (
                WeChatAuthWSGIMiddleware(inner, **OPTIONS, **upstream(name))
                if "ours" in name
                else inner
            )
            envs = [environ(request) for request in requests]
            # In a thread: a first JS-SDK request fetches the ticket from the stub, which is
            # served by this thread's event loop.
            got, body = await asyncio.to_thread(wsgi_call, wsgi, envs[-1])
            runner = wsgi_runner(wsgi, envs)
        if got != status or (user is not None and bool(seen[0]) != user):
            raise SystemExit(f"{name}: status {got}, user {seen[0]}; expected {status}, {user}")
        if "jssdk" in name or "signing" in name:
            check_signature(name, json.loads(body))
        seen[0] = None
        runners.append((name, runner))
    floor_logins = login_runner(floor_app(api_base_url), "base", "s")
    for logins in (login_runner(logging_in, "base"), login_runner(profiles, "info"), floor_logins):
        await logins(2)
    # Per login, not per request; left out of the memory run (a login is remembered a while).
    timed_cases = [
        *runners[:5],
        ("ASGI ours: login, snsapi_base (1 call)", login_runner(logging_in, "base")),
        ("ASGI ours: login, snsapi_userinfo (2 calls)", login_runner(profiles, "info")),
        ("ASGI floor: login, snsapi_base (1 call)", floor_logins),
        *runners[5:],
    ]

    # The requests and cookies prepared above are the harness's, not the app's: out of the
    # collector's way (as a server that preloads its app does with gc.freeze()).
    gc.collect()
    gc.freeze()
    sizes = {name: max(20, int(0.01 / (await timed(run, 200) / 200))) for name, run in timed_cases}
    per_request: dict[str, list[float]] = {name: [] for name, _ in timed_cases}
    for r in range(args.rounds):
        n = r % len(timed_cases)
        for name, run in timed_cases[n:] + timed_cases[:n]:
            per_request[name].append(await timed(run, sizes[name]) / sizes[name] * 1e6)
    overheads: dict[str, float] = {}
    rows = []
    for name, _ in timed_cases:
        bare = per_request[name[:4] + " bare app"]
        overheads[name] = median([a - b for a, b in zip(per_request[name], bare, strict=True)])
        cost = "-" if "bare" in name else f"{overheads[name]:.2f}"
        rows.append([name, f"{median(per_request[name]):.2f}", cost])
    print_table(
        ["case", "µs/request", "overhead µs"],
        rows,
        "In process, per request (the logins: per login; medians over rounds):",
    )
    print_ratios(overheads, per_request, len(visitors))

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


def check_signature(name: str, config: dict[str, Any]) -> None:
    """The JSON is wx.config's, signed for the page (without its #fragment) with the ticket."""
    signed = (
        f"jsapi_ticket={TICKET}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}"
        f"&url={PAGE_URL}"
    )
    if config.get("signature") != hashlib.sha1(signed.encode(), usedforsecurity=False).hexdigest():
        raise SystemExit(f"{name}: not the page's signature: {config}")


def print_ratios(
    overheads: dict[str, float], per_request: dict[str, list[float]], visitors: int
) -> None:
    def cells(figures: dict[str, float], ours: str, floor: str) -> list[str]:
        """Ours, the floor's and their ratio."""
        return [
            f"{figures[ours]:.2f}",
            f"{figures[floor]:.2f}",
            f"{figures[ours] / figures[floor]:.2f}x",
        ]

    medians = {name: median(values) for name, values in per_request.items()}
    rows = [
        [
            "logged-in, one visitor: overhead, ours / SessionMiddleware",
            *cells(
                overheads,
                "ASGI ours: logged-in, one visitor",
                "ASGI SessionMiddleware: logged-in, one",
            ),
        ],
        [
            f"logged-in, {visitors} visitors: overhead, ours / SessionMiddleware",
            *cells(
                overheads,
                f"ASGI ours: logged-in, {visitors} visitors",
                f"ASGI SessionMiddleware: logged-in, {visitors}",
            ),
        ],
        [
            "GET /wxauth/jssdk: µs/request, ours / floor",
            *cells(medians, "ASGI ours: GET /wxauth/jssdk", "ASGI floor: the same signing"),
        ],
        [
            "login, snsapi_base: µs/login, ours / floor (the same stub)",
            *cells(
                medians,
                "ASGI ours: login, snsapi_base (1 call)",
                "ASGI floor: login, snsapi_base (1 call)",
            ),
        ],
    ]
    print_table(["ASGI, same run", "ours µs", "floor µs", "ratio"], rows, "Ratios:")


def asgi_runner(app: ASGIApp, requests: list[Scope]) -> Callable[[int], Any]:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    turn = itertools.cycle(requests)

    async def run(n: int) -> None:
        for _ in range(n):
            await app(dict(next(turn)), receive, send)

    return run


def wsgi_runner(app: WSGIApplication, envs: list[dict[str, Any]]) -> Callable[[int], Any]:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        return lambda data: None

    turn = itertools.cycle(envs)

    async def run(n: int) -> None:
        for _ in range(n):
            consume(app(dict(next(turn)), start_response))

    return run


async def timed(run: Callable[[int], Any], n: int) -> float:
    # CPU time of this process: on a shared machine, the time others hold the CPU is not ours.
    start = time.process_time()
    await run(n)
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--requests", type=int, default=100_000, help="per case, for memory")
    parser.add_argument(
        "--visitors", type=int, default=3000, help="distinct logged-in visitors, in turn"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 5, 2000
    print("\n".join(machine_lines()))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
