"""Many concurrent WeChat logins against the emulator with an upstream latency L.

    python bench/logins.py            # full run (L = 50 ms; 1, 50 and 200 concurrent), ~1 min
    python bench/logins.py --quick    # smoke run, ~15 s

Three processes on 127.0.0.1: the WeChat emulator CLI (`python -m wxauth_middleware.emulator
--auto-approve --latency L`, uvicorn, access log on), the app (a minimal ASGI app behind
`WeChatAuthMiddleware`, scope snsapi_userinfo, pointed at the emulator; uvicorn, 1 worker),
and this driver. Each "phone" is its own `httpx.AsyncClient` (its own cookies and
connections, WeChat's user agent) and does the whole login by hand: the page (302 to WeChat)
-> the emulator's authorize (302 back, auto-approved) -> the callback (the middleware calls
/sns/oauth2/access_token then /sns/userinfo, each delayed L) -> the page again, which must
answer 200 (a phone that is not logged in would be sent to WeChat again). All phones of a
wave start together. The floor is 2·L: the two sequential WeChat calls.

The full run does this twice: with the middleware as shipped (its own httpx.AsyncClient and
its default pool size) and with `max_connections=200` (enough connections for 200 logins at
once), to show what the pool size changes. `--max-connections N`, `--pool MAX KEEPALIVE` (an
httpx transport with those limits) and `--bounded N` (a transport that lets N calls into
httpx's pool at a time, see `_apps.BoundedTransport`) try other variants.

Reported per concurrency level, median over rounds (levels interleaved in every round):
login time percentiles (whole login, seen by the phone), the callback request alone, the
middleware's own upstream time (its "login ok ... duration_ms" log line), and connection
reuse: the emulator's access log gives the client port of every /sns/ call, so the distinct
ports are the TCP connections the middleware used, and the ports never seen in earlier waves
the connections it opened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _apps import ours_asgi
from _common import (
    WECHAT_UA,
    free_port,
    machine_lines,
    median,
    percentile,
    print_table,
    wait_for_port,
)

BENCH_DIR = Path(__file__).resolve().parent
_ACCESS = re.compile(r"127\.0\.0\.1:(\d+) - \"GET (/[^ ?\"]*)")
_LOGIN_OK = re.compile(r"wxauth login ok .*duration_ms=(\d+)")


@dataclass
class Wave:
    concurrency: int
    total_ms: list[float] = field(default_factory=list)
    callback_ms: list[float] = field(default_factory=list)
    upstream_ms: list[float] = field(default_factory=list)
    failures: int = 0
    api_calls: int = 0
    connections_used: int = 0
    connections_opened: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the wave


@dataclass
class LogTail:
    path: Path
    offset: int = 0

    def new_lines(self) -> list[str]:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        # Only whole lines; a partial last line is read next time.
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode("utf-8", "replace").splitlines()


async def phone_login(
    app_url: str, context: ssl.SSLContext, start: asyncio.Event, wave: Wave
) -> None:
    async with httpx.AsyncClient(
        headers={"user-agent": WECHAT_UA, "accept": "text/html,*/*;q=0.8"},
        verify=context,
        timeout=30,
    ) as phone:
        await start.wait()
        began = time.perf_counter()
        try:
            page = await phone.get(f"{app_url}/page")
            if page.status_code != 302:
                raise RuntimeError(f"page: {page.status_code}")
            authorize = await phone.get(page.headers["location"])
            if authorize.status_code != 302:
                raise RuntimeError(f"authorize: {authorize.status_code}")
            callback_began = time.perf_counter()
            callback = await phone.get(authorize.headers["location"])
            callback_ended = time.perf_counter()
            if callback.status_code != 302:
                raise RuntimeError(f"callback: {callback.status_code} {callback.text[:200]}")
            back = await phone.get(f"{app_url}{callback.headers['location']}")
            if back.status_code != 200:
                raise RuntimeError(f"page after login: {back.status_code}")
        except (httpx.HTTPError, RuntimeError, KeyError) as exc:
            wave.failures += 1
            if wave.failures <= 3:
                print(f"  login failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        ended = time.perf_counter()
        wave.total_ms.append((ended - began) * 1000)
        wave.callback_ms.append((callback_ended - callback_began) * 1000)


async def run_wave(app_url: str, concurrency: int, sequential: int) -> Wave:
    """`concurrency` phones at once; at concurrency 1, `sequential` logins one after another."""
    wave = Wave(concurrency)
    context = ssl.create_default_context()  # one for all phones (all plain http anyway)
    repeats = sequential if concurrency == 1 else 1
    for _ in range(repeats):
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(phone_login(app_url, context, start, wave))
            for _ in range(concurrency)
        ]
        await asyncio.sleep(0.05)  # every client built and waiting
        start.set()
        await asyncio.gather(*tasks)
    return wave


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) used so far by each process, and by this driver."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["driver"] = usage.ru_utime + usage.ru_stime
    return out


def account(wave: Wave, emulator_log: LogTail, app_log: LogTail, seen_ports: set[str]) -> None:
    time.sleep(0.3)  # let the servers write their log lines
    ports = []
    for line in emulator_log.new_lines():
        match = _ACCESS.search(line)
        if match and match.group(2).startswith("/sns/"):
            ports.append(match.group(1))
    wave.api_calls = len(ports)
    used = set(ports)
    wave.connections_used = len(used)
    wave.connections_opened = len(used - seen_ports)
    seen_ports.update(used)
    for line in app_log.new_lines():
        match = _LOGIN_OK.search(line)
        if match:
            wave.upstream_ms.append(float(match.group(1)))


@dataclass
class Config:
    label: str
    app_args: list[str]  # extra arguments of `_apps.py serve` (the middleware's variant)
    results: dict[int, list[Wave]] = field(default_factory=dict)


def run_config(
    config: Config,
    levels: list[int],
    rounds: int,
    sequential: int,
    latency: float,
    profile: Path | None = None,
) -> None:
    """Start the emulator and the app, run the waves (levels interleaved), stop them."""
    emulator_port, app_port = free_port(), free_port()
    wechat_url = f"http://127.0.0.1:{emulator_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    app_command = [
        sys.executable,
        *profiler,
        str(BENCH_DIR / "_apps.py"),
        "serve",
        "ours",
        str(app_port),
        "--wechat-url",
        wechat_url,
        "--log-logins",
    ]
    app_command += config.app_args
    commands = {
        "emulator": [
            sys.executable,
            "-m",
            "wxauth_middleware.emulator",
            "--auto-approve",
            "--latency",
            f"{latency:g}",
            "--port",
            str(emulator_port),
        ],
        "app": app_command,
    }
    config.results = {level: [] for level in levels}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="wxauth-logins-") as tmp:
        logs = {name: Path(tmp) / f"{name}.log" for name in commands}
        try:
            for name, command in commands.items():
                with open(logs[name], "wb") as log:
                    processes[name] = subprocess.Popen(  # noqa: S603
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=BENCH_DIR.parent,
                    )
            for port, process in zip((emulator_port, app_port), processes.values(), strict=True):
                wait_for_port(port, alive=lambda p=process: p.poll() is None)  # type: ignore[misc]
            pids = {name: process.pid for name, process in processes.items()}
            emulator_log, app_log = LogTail(logs["emulator"]), LogTail(logs["app"])
            asyncio.run(run_wave(app_url, 1, 2))  # warm-up
            account(Wave(0), emulator_log, app_log, set())
            seen_ports: set[str] = set()
            for r in range(rounds):
                for level in levels:
                    before = cpu_seconds(pids)
                    wave = asyncio.run(run_wave(app_url, level, sequential))
                    after = cpu_seconds(pids)
                    wave.cpu_s = {name: after[name] - before[name] for name in after}
                    account(wave, emulator_log, app_log, seen_ports)
                    config.results[level].append(wave)
                    print(
                        f"  round {r + 1}/{rounds} concurrency {level:>4}: "
                        f"p50 {percentile(wave.total_ms, 50):7.1f} ms  "
                        f"p99 {percentile(wave.total_ms, 99):7.1f} ms  "
                        f"failures {wave.failures}  "
                        f"connections used {wave.connections_used}, "
                        f"opened {wave.connections_opened} for {wave.api_calls} API calls",
                        flush=True,
                    )
        finally:
            for process in processes.values():
                if process.poll() is None:
                    # SIGINT: uvicorn shuts down cleanly, so a profiler writes its file.
                    process.send_signal(signal.SIGINT)
            for process in processes.values():
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def report(config: Config, floor: float) -> None:
    results = config.results

    def med(level: int, values: str, q: float) -> float:
        return median([percentile(getattr(w, values), q) for w in results[level]])

    def cpu_ms(level: int, process: str) -> str:
        per_login = [
            1000 * w.cpu_s.get(process, 0.0) / max(1, len(w.total_ms)) for w in results[level]
        ]
        return f"{median(per_login):.1f}"

    rows = []
    for level, waves in results.items():
        rows.append(
            [
                level,
                sum(len(w.total_ms) for w in waves),
                sum(w.failures for w in waves),
                f"{med(level, 'total_ms', 50):.1f}",
                f"{med(level, 'total_ms', 90):.1f}",
                f"{med(level, 'total_ms', 99):.1f}",
                f"{med(level, 'callback_ms', 99):.1f}",
                f"{med(level, 'upstream_ms', 50):.0f}",
                f"{med(level, 'upstream_ms', 99):.0f}",
                f"{median([w.connections_used for w in waves]):.0f}",
                f"{median([w.connections_opened for w in waves]):.0f}",
                f"{median([w.api_calls for w in waves]):.0f}",
                cpu_ms(level, "app"),
                cpu_ms(level, "emulator"),
                cpu_ms(level, "driver"),
            ]
        )
    print_table(
        [
            "concurrent",
            "logins",
            "failed",
            "login p50 ms",
            "p90",
            "p99",
            "callback p99",
            "upstream p50",
            "upstream p99",
            "conns used",
            "conns opened",
            "API calls",
            "app CPU ms/login",
            "emulator CPU",
            "phones CPU",
        ],
        rows,
        f"{config.label}: login times (medians over rounds of each wave's percentiles); "
        f"floor 2L = {floor:g} ms",
    )


_GROUPS = (
    ("wxauth_middleware/", "wxauth_middleware (the package)"),
    ("itsdangerous/", "itsdangerous"),
    ("uvicorn/", "uvicorn + h11 (server)"),
    ("h11/", "uvicorn + h11 (server)"),
    ("httpx/", "httpx + httpcore (client)"),
    ("httpcore/", "httpx + httpcore (client)"),
    ("anyio/", "anyio"),
    ("starlette/", "starlette"),
    ("asyncio/", "asyncio"),
    ("/bench/", "bench app"),
)


def app_profile_breakdown(path: Path, logins: int) -> None:
    """Where the app process's time went (own time, by package), idle waiting excluded."""
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    calls: dict[str, list[tuple[float, str]]] = {}
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        if name in ("<method 'poll' of 'select.epoll' objects>",):
            continue  # the event loop waiting for I/O: idle, not work
        if "importlib" in filename or name == "<built-in method builtins.exec>":
            continue  # start-up
        group = "other (stdlib, built-ins: sockets, json, hashing...)"
        for needle, label in _GROUPS:
            if needle in filename:
                group = label
                break
        totals[group] = totals.get(group, 0.0) + tottime
        where = "/".join(filename.split("/")[-2:]) + f":{line}({name})"
        if filename == "~":
            where = name
        calls.setdefault(group, []).append((tottime, where))
    busy = sum(totals.values())
    rows = []
    for group, seconds in sorted(totals.items(), key=lambda item: item[1], reverse=True):
        top = max(calls[group])[1] if calls[group] else ""
        rows.append(
            [group, f"{100 * seconds / busy:.1f}%", f"{1000 * seconds / logins:.2f}", top[:70]]
        )
    print_table(
        ["app process: own time by package", "share", "ms/login (profiled)", "largest function"],
        rows,
        f"cProfile of the app process over {logins} logins (start-up and idle waits excluded; "
        "the profiler inflates small calls)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concurrent logins against the emulator.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--latency", type=float, default=0.05, help="L, seconds (default 0.05)")
    parser.add_argument(
        "--levels", type=int, nargs="+", help="concurrency levels (default 1 50 200; quick 1 200)"
    )
    parser.add_argument("--rounds", type=int, help="rounds per level (default 3, quick 1)")
    parser.add_argument(
        "--max-connections",
        type=int,
        action="append",
        metavar="N",
        help="also run with the middleware's max_connections=N (repeatable; the full run "
        "adds 200, enough connections for 200 logins at once, unless a variant is given)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        nargs=2,
        action="append",
        metavar=("MAX", "KEEPALIVE"),
        help="also run with transport=httpx.AsyncHTTPTransport(limits=...) (repeatable)",
    )
    parser.add_argument(
        "--bounded",
        type=int,
        action="append",
        metavar="N",
        help="also run with a transport letting at most N calls into httpx's pool at once, "
        "through an asyncio.Semaphore (repeatable)",
    )
    parser.add_argument(
        "--profile-app",
        action="store_true",
        help="run the shipped app under cProfile (one config) and print where its time goes",
    )
    args = parser.parse_args(argv)
    levels = args.levels or ([1, 200] if args.quick else [1, 50, 200])
    rounds = args.rounds or (1 if args.quick else 3)
    sequential = 5 if args.quick else 10
    latency_ms = args.latency * 1000
    floor = 2 * latency_ms
    target = floor + 20
    shipped_max = getattr(ours_asgi().config, "max_connections", None)
    max_connections: list[int] = args.max_connections or []
    pools: list[list[int]] = args.pool or []
    if not (args.max_connections or args.pool or args.bounded or args.quick):
        if shipped_max is not None:
            max_connections = [200]
        else:
            pools = [[200, 200]]
    shipped = (
        f"as shipped (its own httpx client, max_connections={shipped_max})"
        if shipped_max is not None
        else "as shipped (its own httpx client, httpx's default limits 100/20)"
    )
    configs = [Config(shipped, [])]
    configs += [
        Config(f"max_connections={n}", ["--max-connections", str(n)]) for n in max_connections
    ]
    configs += [
        Config(f"transport with Limits({m}, {k})", ["--pool", str(m), str(k)]) for m, k in pools
    ]
    configs += [
        Config(f"semaphore-bounded transport of {n}", ["--bounded", str(n)])
        for n in args.bounded or []
    ]

    print("wxauth-middleware concurrent logins against the emulator")
    for line in machine_lines():
        print("  " + line)
    print(
        f"  L={latency_ms:g} ms per WeChat API call; floor 2L={floor:g} ms; levels={levels}; "
        f"rounds={rounds}; concurrency 1 = {sequential} sequential logins"
    )
    if args.profile_app:
        configs = configs[:1]
        with tempfile.TemporaryDirectory(prefix="wxauth-profile-") as tmp:
            path = Path(tmp) / "app.prof"
            print(f"\n{configs[0].label}, the app under cProfile")
            run_config(configs[0], levels, rounds, sequential, args.latency, profile=path)
            logins = sum(len(w.total_ms) for waves in configs[0].results.values() for w in waves)
            app_profile_breakdown(path, logins + 2)  # + the warm-up logins
    else:
        for config in configs:
            print(f"\n{config.label}")
            run_config(config, levels, rounds, sequential, args.latency)
    for config in configs:
        report(config, floor)
    top = max(levels)
    for config in configs:
        p99 = median([percentile(w.total_ms, 99) for w in config.results[top]])
        verdict = "met" if p99 <= target else "NOT met"
        print(
            f"\ntarget ({config.label}): login p99 at {top} concurrent <= 2L + 20 ms = "
            f"{target:g} ms: {p99:.1f} ms -> {verdict}"
        )
    print(
        "\nconnections: 'used' = distinct TCP connections the middleware's WeChat calls came on "
        "in a wave; 'opened' = those not seen in an earlier wave (new TCP connections). "
        "CPU: per successful login, user + system, of the app process, the emulator process, "
        "and this driver (the phones)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
