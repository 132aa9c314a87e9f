"""Several accounts: what a request costs with 1 and with 10,000 configured Official Accounts,
and the memory each configured account holds.

    python bench/accounts.py            # about 40 s
    python bench/accounts.py --quick    # a few seconds

In process, as bench/inprocess.py measures: `await app(scope, receive, send)` (ASGI) and
`app(environ, start_response)` (WSGI) in tight loops, the request on one account's host
(`Host: t<k>.example.com`, its session cookie from a real login against `WeChatEmulator` in
process). Middlewares: the one-account shorthand (`app_id`/`app_secret`), `accounts=` with 1
account, and `accounts=` with 10,000 (the request on the middle one's host). Paths: pass-through
(a desktop browser, no cookie), logged-in (WeChat, session cookie), redirect (WeChat, no
cookie -> 302). Rounds of batches of about 10 ms interleaved across the cases; overhead =
median over rounds of (case - bare app) in the same round. A request's cost must not grow
with the number of accounts: the script exits 1 if 10,000 accounts cost more than twice one
account's overhead and 5 µs on any path (a scan of the accounts would cost hundreds of µs).

Memory: tracemalloc's count of the bytes a middleware holds after construction, with 10,000
accounts minus with 1, per account; then after one request on each of 1,000 accounts' hosts
(each account's core is made on its first request), per account served.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
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
    scope,
    set_cookies,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxauth_middleware import (
    OfficialAccount,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
    get_wechat_user,
)
from wxauth_middleware.emulator import WeChatEmulator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MANY = 10_000
SERVED = 1_000  # accounts given one request each, for the memory of a served account
_START: Message = {"type": "http.response.start", "status": 200, "headers": []}
_BODY: Message = {"type": "http.response.body", "body": b"ok"}
SEEN: list[object] = [None]  # the user the app saw on its last request


def app_id(k: int) -> str:
    return f"wx{k:016x}"


def host(k: int) -> str:
    return f"t{k}.example.com"


def accounts(n: int) -> list[OfficialAccount]:
    return [OfficialAccount(app_id(k), APP_SECRET, hosts=[host(k)]) for k in range(n)]


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    SEEN[0] = get_wechat_user(scope)
    await send(_START)
    await send(_BODY)


def bare_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    SEEN[0] = get_wechat_user(environ)
    start_response("200 OK", [("content-length", "2")])
    return [b"ok"]


async def session_cookie(options: dict[str, Any], k: int) -> str:
    """The session cookie of a real login on account k's host (the emulator in process)."""
    emulator = WeChatEmulator(app_id=app_id(k) if "accounts" in options else APP_ID)
    app = WeChatAuthMiddleware(
        bare_asgi,
        **options,
        transport=httpx.ASGITransport(app=emulator),
        api_base_url="http://wechat",
    )
    _, headers, _ = await asgi_call(app, scope(WECHAT_UA, host=host(k)))
    state = parse_qs(urlsplit(dict(headers)[b"location"].decode()).query)["state"][0]
    query = f"code={emulator.issue_code()}&state={state}"
    callback = scope(WECHAT_UA, set_cookies(headers), "/wxauth/callback", query, host=host(k))
    status, headers, _ = await asgi_call(app, callback)
    await app.aclose()
    if status != 302 or not set_cookies(headers):
        raise SystemExit(f"the login did not give a session cookie: {status} {headers}")
    return set_cookies(headers)


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
            body = app(dict(env), start_response)
            for _ in body:
                pass

    return run


async def timed(run: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    await run(n)
    return time.perf_counter() - start


def configurations() -> dict[str, tuple[dict[str, Any], int]]:
    """Each middleware configuration, and the account whose host the requests are on."""
    return {
        "app_id": ({"app_id": APP_ID, "app_secret": APP_SECRET, "secret_key": SECRET_KEY}, 0),
        "1 account": ({"accounts": accounts(1), "secret_key": SECRET_KEY}, 0),
        f"{MANY:,} accounts": ({"accounts": accounts(MANY), "secret_key": SECRET_KEY}, MANY // 2),
    }


async def measure_requests(rounds: int) -> dict[tuple[str, str, str], float]:
    cases: list[tuple[tuple[str, str, str], Callable[[int], Any]]] = []
    for kind in ("ASGI", "WSGI"):
        bare = bare_asgi if kind == "ASGI" else bare_wsgi
        request = scope(CHROME_UA, host=host(0))
        cases.append(((kind, "bare app", "-"), runner(kind, bare, request, 200, False)))
    for config, (options, k) in configurations().items():
        cookie = await session_cookie(options, k)
        paths = {
            "pass-through": (scope(CHROME_UA, host=host(k)), 200, False),
            "logged-in": (scope(WECHAT_UA, cookie, host=host(k)), 200, True),
            "redirect": (scope(WECHAT_UA, host=host(k)), 302, None),
        }
        for kind in ("ASGI", "WSGI"):
            if kind == "ASGI":
                app: Any = WeChatAuthMiddleware(bare_asgi, **options)
            else:
                app = WeChatAuthWSGIMiddleware(bare_wsgi, **options)
            for path, (request, status, user) in paths.items():
                cases.append(((kind, path, config), runner(kind, app, request, status, user)))
    for _, run in cases:  # checked, and warm (the accounts' cores made, the caches filled)
        await run(1)
    sizes = {key: max(20, int(0.01 / (await timed(run, 200) / 200))) for key, run in cases}
    per_request: dict[tuple[str, str, str], list[float]] = {key: [] for key, _ in cases}
    for r in range(rounds):
        n = r % len(cases)
        for key, run in cases[n:] + cases[:n]:
            per_request[key].append(await timed(run, sizes[key]) / sizes[key] * 1e6)
    overhead = {}
    for key, values in per_request.items():
        floor = per_request[(key[0], "bare app", "-")]
        overhead[key] = median([a - b for a, b in zip(values, floor, strict=True)])
    return overhead


def runner(kind: str, app: Any, request: Scope, status: int, user: bool | None) -> Any:
    """A runner of `request`, its first answer checked (status, whether the app saw a user)."""
    inner = asgi_runner(app, request) if kind == "ASGI" else wsgi_runner(app, environ(request))
    checked = [False]

    async def run(n: int) -> None:
        if not checked[0]:
            got = await asgi_call(app, request) if kind == "ASGI" else None
            got_status = got[0] if got is not None else wsgi_status(app, environ(request))
            if got_status != status or (user is not None and bool(SEEN[0]) != user):
                raise SystemExit(
                    f"{kind} {request['headers'][0]}: status {got_status}, user {SEEN[0]}"
                )
            checked[0] = True
        await inner(n)

    return run


def wsgi_status(app: WSGIApplication, env: dict[str, Any]) -> int:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    for _ in app(dict(env), start_response):
        pass
    return int(statuses[0][:3])


async def measure_memory() -> tuple[float, float, float]:
    """Bytes held per configured account, per account served once, and the seconds that
    building the middleware of MANY accounts takes."""
    gc.collect()
    tracemalloc.start()
    one = WeChatAuthMiddleware(bare_asgi, accounts=accounts(1), secret_key=SECRET_KEY)
    gc.collect()
    with_one = tracemalloc.get_traced_memory()[0]
    del one
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    many = WeChatAuthMiddleware(bare_asgi, accounts=accounts(MANY), secret_key=SECRET_KEY)
    gc.collect()
    configured = (tracemalloc.get_traced_memory()[0] - base - (with_one - base)) / (MANY - 1)
    before = tracemalloc.get_traced_memory()[0]
    for k in range(SERVED):
        await asgi_call(many, scope(CHROME_UA, host=host(k)))
    gc.collect()
    served = (tracemalloc.get_traced_memory()[0] - before) / SERVED
    tracemalloc.stop()
    del many
    many_accounts = accounts(MANY)
    started = time.perf_counter()  # without tracemalloc, which slows allocations
    WeChatAuthMiddleware(bare_asgi, accounts=many_accounts, secret_key=SECRET_KEY)
    return configured, served, time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> int:
    overhead = await measure_requests(args.rounds)
    rows = []
    failed = []
    for kind in ("ASGI", "WSGI"):
        for path in ("pass-through", "logged-in", "redirect"):
            shorthand = overhead[(kind, path, "app_id")]
            one = overhead[(kind, path, "1 account")]
            many = overhead[(kind, path, f"{MANY:,} accounts")]
            ratio = many / one if one > 0 else float("inf")
            rows.append(
                [f"{kind} {path}", f"{shorthand:.2f}", f"{one:.2f}", f"{many:.2f}", f"{ratio:.2f}"]
            )
            if many > 2 * one + 5:  # noise aside: a scan of the accounts costs far more
                failed.append(
                    f"{kind} {path}: {many:.2f} µs with {MANY:,} accounts, {one:.2f} with 1"
                )
    print_table(
        ["path", "app_id µs", "1 account µs", f"{MANY:,} accounts µs", "ratio"],
        rows,
        "Overhead per request over a bare app (medians over rounds):",
    )
    configured, served, built = await measure_memory()
    print(
        f"\nMemory: {configured / 1024:.2f} KiB per configured account (its configuration, "
        f"host entry); {served / 1024:.1f} KiB more per account once served (its core, made "
        f"on its first request). Building a middleware of {MANY:,} accounts: {built:.2f} s."
    )
    for failure in failed:
        print(f"FAILED: a request's cost grows with the accounts: {failure}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=101)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 5
    print("\n".join(machine_lines()))
    # The middleware's warning that it is not talking to WeChat itself: expected here.
    logging.getLogger("wxauth_middleware").setLevel(logging.ERROR)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
