"""Resident memory across many requests: it must stay flat, not grow with the request count.

    python bench/memory.py            # full: 10^5 requests per case, sampled every 10^4 (~2 min)
    python bench/memory.py --quick    # smoke: 10^4 requests per case, every 10^3 (~15 s)

Each case runs in a fresh Python process (so one case's memory does not hide in another's),
drives the middleware in-process in a tight loop (ASGI on one event loop, and WSGI), and reads
VmRSS from /proc/self/status after every sample interval. Cases: pass-through (desktop
browser, no cookie), logged-in (WeChat, session cookie), anonymous WeChat visit (302 to
WeChat, a new state and state cookie every time), callback replay (a completed login's
callback again: 302 back to the page), and pass-through with a different user agent on every
request, and logged-in with a different valid session cookie on every request (caches of user
agents or of verified cookies must stay bounded). The verdict: flat when RSS grows by less
than 1 MiB from the first sample (after the first interval: caches and allocator arenas warm)
to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from _apps import ours_asgi, ours_wsgi
from _common import (
    CHROME_UA,
    WECHAT_UA,
    asgi_scope,
    bench_user,
    machine_lines,
    print_table,
    replay_cookie_header,
    session_cookie_value,
    wsgi_environ,
)
from starlette.types import Message

from wxauth_middleware.cookies import Session, SessionCodec

REPLAY_STATE = "fedcba9876543210fedcba9876543210"
CASES = [
    "asgi pass-through",
    "asgi logged-in",
    "asgi anonymous WeChat -> 302",
    "asgi callback replay -> 302",
    "asgi pass-through, a new user agent per request",
    "asgi logged-in, a new session cookie per request",
    "wsgi pass-through",
    "wsgi logged-in",
    "wsgi anonymous WeChat -> 302",
    "wsgi callback replay -> 302",
]
FLAT_KIB = 1024


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _request(case: str, cookie: str, replay: str) -> tuple[str, str, str | None, str]:
    """(path, user agent, cookie, query) of a case."""
    if "logged-in" in case:
        return "/page", WECHAT_UA, cookie, ""
    if "anonymous" in case:
        return "/page", WECHAT_UA, None, ""
    if "replay" in case:
        return "/wxauth/callback", WECHAT_UA, replay, f"code=spentcode&state={REPLAY_STATE}"
    return "/page", CHROME_UA, None, ""


def child(case: str, total: int, every: int) -> None:
    """Run one case in this process; print one JSON line: the RSS samples in KiB."""
    samples: list[int] = []
    statuses: dict[int, int] = {}
    vary_ua = "new user agent" in case
    vary_cookie = "new session cookie" in case
    if case.startswith("asgi"):
        app = ours_asgi()
        config = app.config
        path, ua, cookie_value, query = _request(
            case,
            f"{config.session_cookie}={session_cookie_value(config)}",
            replay_cookie_header(config, REPLAY_STATE),
        )
        template = asgi_scope(path, user_agent=ua, cookie=cookie_value, query=query)
        headers = template["headers"]

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        encoder = SessionCodec(config.secret_keys, config.max_age, config.identity)
        user = bench_user()

        async def run() -> None:
            for i in range(1, total + 1):
                scope = template.copy()
                if vary_ua:
                    agent = f"{CHROME_UA} bench/{i}".encode()
                    scope["headers"] = [(k, agent if k == b"user-agent" else v) for k, v in headers]
                elif vary_cookie:
                    fresh = Session(replace(user, openid=f"{user.openid[:18]}{i:010d}"))
                    value = f"{config.session_cookie}={encoder.encode(fresh)}".encode()
                    scope["headers"] = [(k, value if k == b"cookie" else v) for k, v in headers]
                await app(scope, receive, send)
                if i % every == 0:
                    samples.append(rss_kib())

        asyncio.run(run())
    else:
        wsgi = ours_wsgi()
        config = wsgi.config
        path, ua, cookie_value, query = _request(
            case,
            f"{config.session_cookie}={session_cookie_value(config)}",
            replay_cookie_header(config, REPLAY_STATE),
        )
        environ = wsgi_environ(path, user_agent=ua, cookie=cookie_value, query=query)

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[..., Any]:
            code = int(status.split()[0])
            statuses[code] = statuses.get(code, 0) + 1
            return lambda data: None

        for i in range(1, total + 1):
            body = wsgi(environ.copy(), start_response)
            for _chunk in body:
                pass
            if i % every == 0:
                samples.append(rss_kib())
    print(json.dumps({"case": case, "samples": samples, "statuses": statuses}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Resident memory across many requests.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--requests", type=int, help="requests per case (default 100000)")
    parser.add_argument("--every", type=int, help="sample interval (default requests / 10)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    total = args.requests or (10_000 if args.quick else 100_000)
    every = args.every or total // 10
    if args.child:
        child(args.child, total, every)
        return 0

    print("wxauth-middleware resident memory (VmRSS) across requests")
    for line in machine_lines():
        print("  " + line)
    print(f"  {total} requests per case, sampled every {every}; one process per case")
    results = []
    for case in CASES:
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603
            [
                sys.executable,
                str(Path(__file__).resolve()),
                *("--child", case, "--requests", str(total), "--every", str(every)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"case {case!r} failed")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["seconds"] = time.perf_counter() - started
        results.append(result)
        print(f"  {case}: {result['seconds']:.1f} s, statuses {result['statuses']}", flush=True)

    columns = [f"{every * (i + 1):,}" for i in range(len(results[0]["samples"]))]
    rows = []
    for result in results:
        samples = result["samples"]
        growth = samples[-1] - samples[0]
        rows.append(
            [
                result["case"],
                *[f"{s / 1024:.2f}" for s in samples],
                f"{growth:+d}",
                "flat" if growth < FLAT_KIB else "GROWS",
            ]
        )
    print_table(
        ["case (RSS MiB after N requests)", *columns, "growth KiB", "verdict"],
        rows,
        "Resident memory",
    )
    flat = all(r["samples"][-1] - r["samples"][0] < FLAT_KIB for r in results)
    print(
        f"\ntarget: memory flat across {total:,} requests (growth < {FLAT_KIB} KiB after the "
        f"first sample, every case): {'met' if flat else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
