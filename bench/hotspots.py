"""Where the middleware's time goes, per request: a profile of its hot paths and the cost of
each step timed on its own.

    python bench/hotspots.py                  # cProfile + step timings, about 1 minute
    python bench/hotspots.py --quick          # smoke run, a few seconds
    python bench/hotspots.py --pyinstrument   # also pyinstrument's flat view (pip install
                                              # pyinstrument; it is not a project dependency)

1. cProfile over N requests of each path (ASGI: logged-in, pass-through, anonymous WeChat
   redirect), the functions with the most own time ("tottime") and their share of the path's
   total. cProfile adds a fixed cost per call, so many small calls look bigger than they are:
   read the shares together with (2).
2. Step timings without a profiler: each piece of the per-request work called alone in a loop
   (median of rounds, ns per call), against the whole middleware call. Steps that are private
   helpers of the package are looked up by name and shown as "n/a" when a later version no
   longer has them, so this script keeps working after the code is reorganised.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import itertools
import pstats
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from _apps import ours_asgi
from _common import (
    CHROME_UA,
    WECHAT_UA,
    asgi_scope,
    bare_asgi_app,
    bench_user,
    machine_lines,
    median,
    print_table,
    session_cookie_value,
)
from starlette.types import ASGIApp, Message

PACKAGE_DIR = "wxauth_middleware"


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


async def _loop(app: ASGIApp, scope: dict[str, Any], n: int) -> None:
    for _ in range(n):
        await app(scope.copy(), _receive, _discard)


def _drive(app: ASGIApp, scope: dict[str, Any], n: int) -> None:
    """Call the app n times without an event loop: nothing on these paths suspends, so each
    call's coroutine finishes at its first step (keeps asyncio's frames out of a sampler)."""
    for _ in range(n):
        coro = cast(Coroutine[Any, Any, None], app(scope.copy(), _receive, _discard))
        try:
            coro.send(None)
        except StopIteration:
            continue
        coro.close()
        raise RuntimeError("the app suspended: this path is not synchronous")


def _paths() -> dict[str, dict[str, Any]]:
    config = ours_asgi().config
    cookie = f"{config.session_cookie}={session_cookie_value(config)}"
    return {
        "logged-in": asgi_scope(user_agent=WECHAT_UA, cookie=cookie),
        "pass-through": asgi_scope(user_agent=CHROME_UA),
        "anonymous WeChat -> 302": asgi_scope(user_agent=WECHAT_UA),
    }


def _short(filename: str, line: int, name: str) -> str:
    if PACKAGE_DIR in filename:
        filename = filename[filename.rindex(PACKAGE_DIR) :]
    elif "site-packages/" in filename:
        filename = filename[filename.rindex("site-packages/") + len("site-packages/") :]
    elif "/lib/python" in filename:
        filename = "stdlib/" + filename.rsplit("/", 1)[-1]
    if filename == "~":
        return name  # a built-in
    return f"{filename}:{line}({name})"


def profile_paths(n: int, top: int) -> None:
    app = ours_asgi()
    for label, scope in _paths().items():
        asyncio.run(_loop(app, scope, 200))  # warm the caches, as a running server has
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(_loop(app, scope, n))
        profiler.disable()
        stats = pstats.Stats(profiler)
        entries = stats.stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in entries.values())
        rows = []
        ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
        for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in ranked[:top]:
            rows.append(
                [
                    _short(filename, line, name),
                    f"{calls / n:.1f}",
                    f"{100 * tottime / total:.1f}%",
                    f"{100 * cumtime / total:.1f}%",
                ]
            )
        print_table(
            ["function (own time, cProfile)", "calls/request", "own share", "cumulative share"],
            rows,
            f"cProfile, ASGI {label}: {n} requests, top {top} by own time",
        )
        own = [
            (key, value)
            for key, value in entries.items()
            if PACKAGE_DIR in key[0] and "/bench/" not in key[0]
        ]
        own.sort(key=lambda item: item[1][3], reverse=True)
        print_table(
            ["middleware function", "cumulative share", "own share"],
            [
                [
                    _short(*key),
                    f"{100 * value[3] / total:.1f}%",
                    f"{100 * value[2] / total:.1f}%",
                ]
                for key, value in own[:12]
            ],
            f"the package's own functions on that path (ASGI {label}), by cumulative time",
        )


def pyinstrument_paths(n: int) -> None:
    try:
        from pyinstrument import Profiler  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("\npyinstrument is not installed (pip install pyinstrument); skipped")
        return
    app = ours_asgi()
    for label, scope in _paths().items():
        if label.startswith("anonymous"):
            continue
        _drive(app, scope, 200)
        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        _drive(app, scope, n)
        profiler.stop()
        text = profiler.output_text(flat=True, show_all=True, time="percent_of_total")
        lines = [line for line in text.splitlines() if line.strip() and "[self]" not in line]
        print(f"\npyinstrument (sampling, self time, flat), ASGI {label}: {n} requests")
        for line in lines[:22]:
            print("  " + line)


# -- step timings ---------------------------------------------------------------------------


def _attr(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _time_step(step: Callable[[], object], rounds: int, n: int) -> float:
    values = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(n):
            step()
        values.append((time.perf_counter_ns() - start) / n)
    return median(values)


def _time_async(app: ASGIApp, scope: dict[str, Any], rounds: int, n: int) -> float:
    values = []

    async def run() -> None:
        for _ in range(rounds):
            start = time.perf_counter_ns()
            await _loop(app, scope, n)
            values.append((time.perf_counter_ns() - start) / n)

    asyncio.run(run())
    return median(values)


def _steps() -> list[tuple[str, Callable[[], Callable[[], object]]]]:
    """(label, factory of the step): a factory raises if this version has no such piece."""
    app = ours_asgi()
    core = app.core
    config = app.config
    value = session_cookie_value(config)
    cookie_header = f"{config.session_cookie}={value}"
    logged_scope = asgi_scope(user_agent=WECHAT_UA, cookie=cookie_header)
    pass_scope = asgi_scope(user_agent=CHROME_UA)

    def request_of(scope: dict[str, Any]) -> Callable[[], object]:
        build = _attr("wxauth_middleware.asgi._request")
        return lambda: build(scope)

    def headers_of() -> Callable[[], object]:
        headers = _attr("wxauth_middleware.asgi._headers")
        raw = logged_scope["headers"]
        return lambda: headers(raw)

    def cookies() -> Callable[[], object]:
        from starlette.requests import cookie_parser

        return lambda: cookie_parser(cookie_header)

    def codec_decode() -> Callable[[], object]:
        codec = core._sessions
        return lambda: codec.decode(value)

    def codec_decode_new() -> Callable[[], object]:
        # 5000 different valid cookies in turn: more than any cache of verified cookies holds.
        from dataclasses import replace

        from wxauth_middleware.cookies import Session, SessionCodec

        encoder = SessionCodec(config.secret_keys, config.max_age, config.identity)
        user = bench_user()
        values = [
            encoder.encode(Session(replace(user, openid=f"{user.openid[:20]}{i:08d}")))
            for i in range(5000)
        ]
        codec = core._sessions
        cycle = itertools.cycle(values)
        return lambda: codec.decode(next(cycle))

    def itsdangerous_loads() -> Callable[[], object]:
        serializer = core._sessions._serializer
        max_age = config.max_age
        return lambda: serializer.loads(value, max_age=max_age)

    def itsdangerous_unsign() -> Callable[[], object]:
        serializer = core._sessions._serializer
        signer = next(iter(serializer.iter_unsigners()))
        max_age = config.max_age
        return lambda: signer.unsign(value, max_age=max_age)

    def payload_decode() -> Callable[[], object]:
        serializer = core._sessions._serializer
        payload = value.rsplit(".", 2)[0]
        return lambda: serializer.load_payload(payload.encode())

    def from_payload() -> Callable[[], object]:
        build = _attr("wxauth_middleware.cookies._session_from_payload")
        payload = core._sessions._serializer.loads(value)
        return lambda: build(payload, config.identity)

    def classify() -> Callable[[], object]:
        classify_ua = _attr("wxauth_middleware.useragent.classify_user_agent")
        return lambda: classify_ua(WECHAT_UA)

    def handle_of(scope: dict[str, Any]) -> Callable[[], object]:
        request = _attr("wxauth_middleware.asgi._request")(scope)
        return lambda: core.handle(request)

    return [
        ("asgi._headers(scope['headers']) (7 headers)", headers_of),
        (
            "asgi._request(scope) logged-in (headers + HTTPRequest)",
            lambda: request_of(logged_scope),
        ),
        ("asgi._request(scope) pass-through", lambda: request_of(pass_scope)),
        ("starlette cookie_parser(cookie header)", cookies),
        ("useragent.classify_user_agent (cached)", classify),
        ("SessionCodec.decode, the same cookie (as a logged-in user)", codec_decode),
        ("SessionCodec.decode, a different cookie each call", codec_decode_new),
        ("  itsdangerous URLSafeTimedSerializer.loads", itsdangerous_loads),
        ("    TimestampSigner.unsign (signer, key derivation, HMAC)", itsdangerous_unsign),
        ("    load_payload (base64 + zlib + json)", payload_decode),
        ("  _session_from_payload (checks + WeChatUser)", from_payload),
        ("LoginCore.handle(request) logged-in", lambda: handle_of(logged_scope)),
        ("LoginCore.handle(request) pass-through", lambda: handle_of(pass_scope)),
    ]


def step_timings(rounds: int, n: int) -> None:
    app = ours_asgi()
    config = app.config
    cookie = f"{config.session_cookie}={session_cookie_value(config)}"
    bare = _time_async(bare_asgi_app, asgi_scope(user_agent=CHROME_UA), rounds, n)
    rows: list[list[object]] = [["bare ASGI app (baseline)", f"{bare / 1000:.2f}"]]
    for label, scope in (
        ("middleware call, logged-in", asgi_scope(user_agent=WECHAT_UA, cookie=cookie)),
        ("middleware call, pass-through", asgi_scope(user_agent=CHROME_UA)),
    ):
        whole = _time_async(app, scope, rounds, n)
        rows.append([f"{label} (overhead)", f"{(whole - bare) / 1000:.2f}"])
    for label, factory in _steps():
        try:
            step = factory()
            step()
        except (AttributeError, ImportError, TypeError, ValueError, StopIteration) as exc:
            rows.append([label, f"n/a ({type(exc).__name__})"])
            continue
        rows.append([label, f"{_time_step(step, rounds, n) / 1000:.2f}"])
    print_table(["step (each timed alone)", "µs/call (median)"], rows, "Step timings")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile the middleware's per-request paths.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--pyinstrument", action="store_true", help="also a pyinstrument view")
    parser.add_argument("--top", type=int, default=15, help="functions listed per path")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else 20_000
    rounds, per_round = (5, 500) if args.quick else (21, 3_000)
    print("wxauth-middleware hot spots")
    for line in machine_lines():
        print("  " + line)
    profile_paths(n, args.top)
    if args.pyinstrument:
        pyinstrument_paths(n * 2)
    step_timings(rounds, per_round)
    return 0


if __name__ == "__main__":
    sys.exit(main())
