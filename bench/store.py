"""What a stored session costs: a logged-in request with the session in Redis (`redis_url`),
against the signed-cookie session and the bare app, and Redis's round trip on its own.

    python bench/store.py            # full run, about 45 s
    python bench/store.py --quick    # smoke run, a few seconds

The script starts a `redis-server` of its own (found on PATH; exit 2 without it) on a free
127.0.0.1 port, in a temp dir, without persistence (`--save "" --appendonly no`), and always
stops it at the end. Redis is reached over loopback TCP, as a site reaches a Redis on the same
host; a Redis on another machine adds the network's round trip to every logged-in request.

Cases, for ASGI (`WeChatAuthMiddleware`, `await app(scope, receive, send)` on one event loop)
and WSGI (`WeChatAuthWSGIMiddleware`, `app(environ, start_response)`, body iterated and
closed), all a WeChat browser's page request with its session cookie:

1. the bare app, given the same headers (the baseline);
2. the signed-cookie session (default options): the session is the cookie;
3. the session in Redis (`redis_url=`): the cookie holds a signed id, the session is read
   from Redis on every request (one GET). It is created by the middleware's own code: its
   store's `save` flow, run by the middleware's own driver and Redis client;
4. the raw round trip alone: redis-py's `execute_command("GET", key)` of that session's key,
   with a client from `async_redis_client` / `redis_client` (the middleware's own options);
5. the session in Redis with the middleware's Redis client replaced by a stub that answers at
   once with the bytes Redis gave for that GET: the middleware's own work for a stored
   session, without the I/O.

Method as in inprocess.py: each case runs in batches of about `--batch-ms` milliseconds;
rounds are interleaved across the cases (the order rotates every round); the figures per case
are the median and p90 over rounds of the batch's mean time per request, and the overhead is
the median over rounds of (case - bare app) within the same round. Every case is checked first
(status code, the user the app sees, the raw GET's reply); Redis's own count of GET commands
must match the requests timed in cases 3 and 4 (case 5 makes none); and after the rounds,
`revoke()` must turn the stored-session request into a redirect to WeChat at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from _apps import ours_asgi, ours_wsgi
from _common import (
    WECHAT_UA,
    RedisServer,
    asgi_scope,
    bare_asgi_app,
    bare_wsgi_app,
    bench_user,
    machine_lines,
    median,
    percentile,
    print_table,
    running_redis,
    session_cookie_value,
    wsgi_batch,
    wsgi_environ,
    wsgi_status,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware
from wxauth_middleware.config import Config
from wxauth_middleware.cookies import Session

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from wxauth_middleware.redis_client import SyncClient

BARE = "bare app"
SIGNED = "signed-cookie session (default options)"
STORED = "session in Redis (redis_url)"
RAW = "raw redis-py GET alone (same client options)"
STUB = "session in Redis, Redis's reply stubbed (no I/O)"


@dataclass
class Case:
    name: str
    baseline: str | None  # the case whose time this one's overhead is measured against
    batch: Callable[[int], int]  # runs n requests, returns the elapsed nanoseconds
    redis_gets: int  # GET commands Redis serves per request
    results_ns: list[float] = field(default_factory=list)  # mean ns/request, one per round


# -- the Redis server --------------------------------------------------------------------------


def get_calls(server: RedisServer) -> int:
    """How many GET commands Redis has served so far (INFO commandstats)."""
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


class _StubClient:
    """Stands in for the middleware's redis-py client: answers every command at once with the
    reply Redis gave for the session's GET (a session read is one command, which the store
    driver runs with `execute_command`)."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply

    def execute_command(self, *args: object) -> bytes:
        return self._reply

    def close(self) -> None:
        return None

    def client(self) -> _StubClient:
        # The synchronous store client's made-on-first-use client (SyncClient.client).
        return self


class _AsyncStubClient:
    """The same, for the asyncio client."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply

    async def execute_command(self, *args: object) -> bytes:
        return self._reply

    async def aclose(self) -> None:
        return None


# -- ASGI --------------------------------------------------------------------------------------


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


async def _asgi_batch(app: ASGIApp, scope: dict[str, Any], n: int) -> int:
    receive, send = _receive, _discard
    start = time.perf_counter_ns()
    for _ in range(n):
        await app(scope.copy(), receive, send)
    return time.perf_counter_ns() - start


async def _asgi_status(app: ASGIApp, scope: dict[str, Any]) -> int:
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope.copy(), _receive, send)
    return statuses[0]


def _asgi_probe(seen: list[Scope]) -> ASGIApp:
    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await bare_asgi_app(scope, receive, send)

    return probe


async def _asgi_user_seen(app: ASGIApp, seen: list[Scope], scope: dict[str, Any]) -> str | None:
    """The openid the inner app is given, through a probe app wrapped the same way."""
    seen.clear()
    await _asgi_status(app, scope)
    user = seen[-1].get("wechat_user") if seen else None
    return None if user is None else str(user.openid)


@dataclass
class AsgiSetup:
    """The ASGI cases and what they hold open, on one event loop."""

    loop: asyncio.AbstractEventLoop
    cases: list[Case]
    stored: WeChatAuthMiddleware
    stored_scope: dict[str, Any]
    closers: list[Callable[[], Awaitable[None]]]


def build_asgi(loop: asyncio.AbstractEventLoop, redis_url: str) -> AsgiSetup:
    from wxauth_middleware.redis_client import async_redis_client

    run = loop.run_until_complete
    openid = bench_user().openid
    signed = ours_asgi()
    signed_scope = asgi_scope(user_agent=WECHAT_UA, cookie=_cookie(signed.config))

    stored = ours_asgi(redis_url=redis_url)
    assert stored.core.store is not None
    # The session is stored by the middleware's own code: its store's save flow, run by its
    # own driver with its own Redis client (created on this loop, as for a request).
    value = run(stored._drive(stored.core.store.save(Session(bench_user()), None)))
    stored_scope = asgi_scope(
        user_agent=WECHAT_UA, cookie=f"{stored.config.session_cookie}={value}"
    )
    key = _session_key(stored.config, stored.core.store.session_id(value))

    raw = async_redis_client(redis_url)

    async def raw_batch(n: int) -> int:
        execute = raw.execute_command
        start = time.perf_counter_ns()
        for _ in range(n):
            await execute("GET", key)
        return time.perf_counter_ns() - start

    # Checks: the status, and the user the inner app is given (a WeChat browser without a
    # session would get a 302 to WeChat instead of the 200).
    seen: list[Scope] = []
    probe_signed = ours_asgi(_asgi_probe(seen))
    probe_stored = ours_asgi(_asgi_probe(seen), redis_url=redis_url)
    checks: list[tuple[str, ASGIApp, dict[str, Any], ASGIApp | None]] = [
        (BARE, bare_asgi_app, signed_scope, None),
        (SIGNED, signed, signed_scope, probe_signed),
        (STORED, stored, stored_scope, probe_stored),
    ]
    for name, app, scope, probe in checks:
        got = run(_asgi_status(app, scope))
        if got != 200:
            raise SystemExit(f"check failed for ASGI {name!r}: status {got}, expected 200")
        if probe is not None and run(_asgi_user_seen(probe, seen, scope)) != openid:
            raise SystemExit(f"check failed for ASGI {name!r}: the app did not see the user")
    reply = run(raw.execute_command("GET", key))
    if not isinstance(reply, bytes) or openid.encode() not in reply:
        raise SystemExit(f"check failed for ASGI {RAW!r}: GET {key} gave {reply!r}")

    # The stored session without the I/O: the middleware's clients are made on first use (on
    # this loop, kept for it), then its Redis client is swapped for the stub.
    stub = ours_asgi(redis_url=redis_url)

    async def swap() -> None:
        stub._http_client()
        real, stub._store = stub._store, cast("redis.asyncio.Redis", _AsyncStubClient(reply))
        if real is not None:
            await real.aclose()

    run(swap())
    got = run(_asgi_status(stub, stored_scope))
    if got != 200:
        raise SystemExit(f"check failed for ASGI {STUB!r}: status {got}, expected 200")

    def batch_of(app: ASGIApp, scope: dict[str, Any]) -> Callable[[int], int]:
        return lambda n: run(_asgi_batch(app, scope, n))

    cases = [
        Case(BARE, None, batch_of(bare_asgi_app, signed_scope), 0),
        Case(SIGNED, BARE, batch_of(signed, signed_scope), 0),
        Case(STORED, BARE, batch_of(stored, stored_scope), 1),
        Case(RAW, None, lambda n: run(raw_batch(n)), 1),
        Case(STUB, BARE, batch_of(stub, stored_scope), 0),
    ]
    closers: list[Callable[[], Awaitable[None]]] = [
        stored.aclose,
        stub.aclose,
        probe_stored.aclose,
        raw.aclose,
        signed.aclose,
        probe_signed.aclose,
    ]
    return AsgiSetup(loop, cases, stored, stored_scope, closers)


def asgi_revocation(setup: AsgiSetup) -> str:
    """`revoke()` the user: the next request with the same cookie must be sent to WeChat."""
    run = setup.loop.run_until_complete
    ended = run(setup.stored.revoke(bench_user().identity))
    got = run(_asgi_status(setup.stored, setup.stored_scope))
    if ended != 1 or got != 302:
        raise SystemExit(f"check failed: ASGI revoke() ended {ended} session(s), then {got}")
    return f"ASGI: revoke() ended {ended} session; the same request then got {got} (to WeChat)"


# -- WSGI --------------------------------------------------------------------------------------


def _wsgi_probe(seen: list[WSGIEnvironment]) -> WSGIApplication:
    def probe(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ)
        return bare_wsgi_app(environ, start_response)

    return probe


@dataclass
class WsgiSetup:
    cases: list[Case]
    stored: WeChatAuthWSGIMiddleware
    stored_environ: WSGIEnvironment
    closers: list[Callable[[], None]]


def build_wsgi(redis_url: str) -> WsgiSetup:
    from wxauth_middleware.redis_client import redis_client

    openid = bench_user().openid
    signed = ours_wsgi()
    signed_environ = wsgi_environ(user_agent=WECHAT_UA, cookie=_cookie(signed.config))

    stored = ours_wsgi(redis_url=redis_url)
    assert stored.core.store is not None
    value = stored._drive(stored.core.store.save(Session(bench_user()), None))
    stored_environ = wsgi_environ(
        user_agent=WECHAT_UA, cookie=f"{stored.config.session_cookie}={value}"
    )
    key = _session_key(stored.config, stored.core.store.session_id(value))

    raw = redis_client(redis_url).client()

    def raw_batch(n: int) -> int:
        execute = raw.execute_command
        start = time.perf_counter_ns()
        for _ in range(n):
            execute("GET", key)  # type: ignore[no-untyped-call]
        return time.perf_counter_ns() - start

    seen: list[WSGIEnvironment] = []
    probe_signed = ours_wsgi(_wsgi_probe(seen))
    probe_stored = ours_wsgi(_wsgi_probe(seen), redis_url=redis_url)
    wsgi_checks: list[tuple[str, WSGIApplication, WSGIEnvironment, WSGIApplication | None]] = [
        (BARE, bare_wsgi_app, signed_environ, None),
        (SIGNED, signed, signed_environ, probe_signed),
        (STORED, stored, stored_environ, probe_stored),
    ]
    for name, app, environ, probe in wsgi_checks:
        got, data = wsgi_status(app, environ)
        if got != 200 or data != b"ok":
            raise SystemExit(f"check failed for WSGI {name!r}: {got} {data[:80]!r}")
        if probe is not None:
            seen.clear()
            wsgi_status(probe, environ)
            user = seen[-1].get("wechat_user") if seen else None
            if user is None or user.openid != openid:
                raise SystemExit(f"check failed for WSGI {name!r}: the app did not see the user")
    reply = raw.execute_command("GET", key)  # type: ignore[no-untyped-call]
    if not isinstance(reply, bytes) or openid.encode() not in reply:
        raise SystemExit(f"check failed for WSGI {RAW!r}: GET {key} gave {reply!r}")

    # The stored session without the I/O: the middleware's clients are made on first use,
    # then its Redis client is swapped for the stub.
    stub = ours_wsgi(redis_url=redis_url)
    stub._http_client()
    real, stub._store = stub._store, cast("SyncClient", _StubClient(reply))
    if real is not None:
        real.close()
    got, data = wsgi_status(stub, stored_environ)
    if got != 200 or data != b"ok":
        raise SystemExit(f"check failed for WSGI {STUB!r}: {got} {data[:80]!r}")

    def batch_of(app: WSGIApplication, environ: WSGIEnvironment) -> Callable[[int], int]:
        return lambda n: wsgi_batch(app, environ, n)

    cases = [
        Case(BARE, None, batch_of(bare_wsgi_app, signed_environ), 0),
        Case(SIGNED, BARE, batch_of(signed, signed_environ), 0),
        Case(STORED, BARE, batch_of(stored, stored_environ), 1),
        Case(RAW, None, raw_batch, 1),
        Case(STUB, BARE, batch_of(stub, stored_environ), 0),
    ]
    closers = [
        stored.close,
        stub.close,
        probe_stored.close,
        raw.close,
        signed.close,
        probe_signed.close,
    ]
    return WsgiSetup(cases, stored, stored_environ, closers)


def wsgi_revocation(setup: WsgiSetup) -> str:
    ended = setup.stored.revoke(bench_user().identity)
    got, _ = wsgi_status(setup.stored, setup.stored_environ)
    if ended != 1 or got != 302:
        raise SystemExit(f"check failed: WSGI revoke() ended {ended} session(s), then {got}")
    return f"WSGI: revoke() ended {ended} session; the same request then got {got} (to WeChat)"


# -- shared --------------------------------------------------------------------------------------


def _cookie(config: Config) -> str:
    return f"{config.session_cookie}={session_cookie_value(config)}"


def _session_key(config: Config, sid: str | None) -> str:
    if sid is None:
        raise SystemExit("check failed: the stored session's cookie does not verify")
    return f"{config.redis_prefix}session:{{{sid[:4]}}}{sid[4:]}"  # the store's layout


def run_rounds(cases: list[Case], rounds: int, batch_ns: int, server: RedisServer) -> None:
    """Calibrate a batch size per case, then interleaved rounds; checks that Redis served one
    GET per timed request of the cases that make one."""
    sizes: dict[str, int] = {}
    for case in cases:  # calibrate: a batch of about batch_ns
        case.batch(200)
        per_call = max(case.batch(500) / 500, 50.0)
        sizes[case.name] = max(20, int(batch_ns / per_call))
    before = get_calls(server)
    for r in range(rounds):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for case in order:
            n = sizes[case.name]
            gc.collect()
            case.results_ns.append(case.batch(n) / n)
    served = get_calls(server) - before
    expected = sum(case.redis_gets * sizes[case.name] * rounds for case in cases)
    if served != expected:
        raise SystemExit(
            f"check failed: Redis served {served} GETs during the rounds, expected {expected}"
        )
    print(f"  Redis served {served} GETs during the rounds: one per timed request, as expected")


def same_round(a: Case, b: Case) -> list[float]:
    """(a - b) per round, in microseconds."""
    return [(x - y) / 1000 for x, y in zip(a.results_ns, b.results_ns, strict=True)]


def report(title: str, cases: list[Case]) -> dict[str, float]:
    """The table; returns the figures of the summary (µs, medians over rounds; differences are
    taken within each round)."""
    by_name = {case.name: case for case in cases}
    rows = []
    for case in cases:
        values = case.results_ns
        over = (
            "-"
            if case.baseline is None
            else f"{median(same_round(case, by_name[case.baseline])):.2f}"
        )
        rows.append(
            [
                case.name,
                case.redis_gets,
                f"{median(values) / 1000:.2f}",
                f"{percentile(values, 90) / 1000:.2f}",
                over,
            ]
        )
    print_table(
        [
            "case",
            "Redis GETs",
            "µs/request (median)",
            "p90 over rounds",
            "overhead vs bare µs",
        ],
        rows,
        title,
    )
    bare, signed, stored, raw, stub = (by_name[n] for n in (BARE, SIGNED, STORED, RAW, STUB))
    return {
        "signed": median(same_round(signed, bare)),
        "stored": median(same_round(stored, bare)),
        "stored-signed": median(same_round(stored, signed)),
        "raw": median(raw.results_ns) / 1000,
        "stored-raw": median(same_round(stored, raw)),
        "stub": median(same_round(stub, bare)),
        "stored-stub": median(same_round(stored, stub)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 101, quick 7)")
    parser.add_argument("--batch-ms", type=float, help="batch length (default 12, quick 5)")
    parser.add_argument("--only", choices=["asgi", "wsgi"], help="one adapter only")
    args = parser.parse_args(argv)
    rounds = args.rounds or (7 if args.quick else 101)
    batch_ns = int((args.batch_ms or (5.0 if args.quick else 12.0)) * 1e6)

    program = shutil.which("redis-server")
    if program is None:
        print(
            "store.py: error: needs redis-server on PATH (Debian: apt-get install redis-server)",
            file=sys.stderr,
        )
        return 2
    try:
        redis_py = metadata.version("redis")
    except metadata.PackageNotFoundError:
        print("store.py: error: needs redis-py: pip install -e '.[test]'", file=sys.stderr)
        return 2

    print("wxauth-middleware: what a stored session costs (in process, Redis on loopback)")
    for line in machine_lines():
        print("  " + line)
    print(f"  rounds={rounds}, batch={batch_ns / 1e6:g} ms; figures are medians over rounds")

    results: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="wxauth-bench-store-"))
        try:
            server, version = stack.enter_context(running_redis(program, Path(tmp)))
        except RuntimeError as exc:
            print(f"cannot start redis-server: {exc}", file=sys.stderr)
            return 2
        print(
            f"  store: redis-server {version} ({program}) on 127.0.0.1:{server.port} (TCP), "
            f"--save '' --appendonly no; redis-py {redis_py}"
        )
        if args.only != "wsgi":
            results["ASGI"] = _asgi_main(server, rounds, batch_ns)
        if args.only != "asgi":
            results["WSGI"] = _wsgi_main(server, rounds, batch_ns)

    adapters = list(results)
    print_table(
        ["a logged-in request, µs (medians over rounds)", *adapters],
        [
            [label, *(f"{results[a][key]:.2f}" for a in adapters)]
            for label, key in [
                ("signed-cookie session, over the bare app", "signed"),
                ("session in Redis, over the bare app", "stored"),
                ("session in Redis minus signed-cookie session", "stored-signed"),
                ("raw redis-py GET alone (one round trip)", "raw"),
                ("session in Redis minus the raw GET", "stored-raw"),
                ("session in Redis, reply stubbed (no I/O), over the bare app", "stub"),
                ("session in Redis minus reply stubbed (the I/O in the request)", "stored-stub"),
            ]
        ],
        "Where a stored session's time goes",
    )
    return 0


def _asgi_main(server: RedisServer, rounds: int, batch_ns: int) -> dict[str, float]:
    loop = asyncio.new_event_loop()
    try:
        setup = build_asgi(loop, server.url)
        try:
            print("\nASGI:")
            run_rounds(setup.cases, rounds, batch_ns, server)
            print("  " + asgi_revocation(setup))
        finally:
            for close in setup.closers:
                loop.run_until_complete(close())
        return report("ASGI (await app(scope, receive, send))", setup.cases)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _wsgi_main(server: RedisServer, rounds: int, batch_ns: int) -> dict[str, float]:
    setup = build_wsgi(server.url)
    try:
        print("\nWSGI:")
        run_rounds(setup.cases, rounds, batch_ns, server)
        print("  " + wsgi_revocation(setup))
    finally:
        for close in setup.closers:
            close()
    return report("WSGI (app(environ, start_response), body iterated and closed)", setup.cases)


if __name__ == "__main__":
    sys.exit(main())
