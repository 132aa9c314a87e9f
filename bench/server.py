"""Throughput and latency behind a real server: uvicorn (ASGI) and gunicorn (WSGI), bare app vs
wrapped app, under wrk.

    python bench/server.py            # full run, about 2 minutes
    python bench/server.py --quick    # smoke run, about 20 s

Every app is a server process on 127.0.0.1 (one uvicorn process per ASGI stack, one gunicorn
gthread worker per WSGI stack; 1 worker each), started once and always terminated at the
end. The load generator is Debian's `wrk` (installed with `apt-get install -y wrk` when
missing), one thread, a fixed number of keep-alive connections, `--latency`. All requests of
a comparison carry the same headers: a logged-in visit sends WeChat's user agent and the
`wxauth_session` cookie to the bare server too. With 2 or more CPUs the servers are pinned to
the last CPU and wrk to the first, so they do not fight over one core. Rounds are interleaved
across the cases (order rotating), and the figures are medians over rounds; the ratio is the
median of the per-round ratios wrapped/bare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _apps import ours_asgi, starlette_session_cookie
from _common import (
    CHROME_UA,
    WECHAT_UA,
    free_port,
    machine_lines,
    median,
    print_table,
    session_cookie_value,
    wait_for_port,
)

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Server:
    name: str  # e.g. "uvicorn ours"
    command: list[str]
    port: int
    process: subprocess.Popen[bytes] | None = None


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class Case:
    name: str
    server: Server
    headers: dict[str, str]
    expect_status: int
    baseline: str | None
    results: list[WrkResult] = field(default_factory=list)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing Debian's package (apt-get install -y wrk)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = shutil.which("apt-get")
    if apt is None:
        raise SystemExit("wrk is missing and there is no apt-get: install wrk and re-run")
    install = [apt, "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode != 0:  # noqa: S603
        subprocess.run([apt, "update", "-qq"], env=env, check=False)  # noqa: S603
        subprocess.run(install, env=env, check=False)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk (apt-get install -y wrk failed)")
    return found


def _pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin


def start(server: Server, log_dir: Path, cpu: int | None) -> None:
    log = open(log_dir / f"{server.name.replace(' ', '_')}.log", "wb")  # noqa: SIM115
    server.process = subprocess.Popen(  # noqa: S603
        server.command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=BENCH_DIR.parent,
        preexec_fn=_pin(cpu),
    )
    log.close()


def stop(servers: Sequence[Server]) -> None:
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        if server.process is None:
            continue
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", output, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if not percentiles or rps is None or total is None:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket:
        errors += sum(int(x) for x in socket.groups())
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(percentiles["50"]),
        p90_ms=_ms(percentiles["90"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(total.group(1)),
        errors=errors,
    )


def run_wrk(wrk: str, case: Case, duration: float, connections: int, cpu: int | None) -> WrkResult:
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    for name, value in case.headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{case.server.port}/page")
    done = subprocess.run(  # noqa: S603
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
        preexec_fn=_pin(cpu),
    )
    return parse_wrk(done.stdout)


def check(case: Case) -> None:
    """One request first: the case must take the path it claims (a logged-in visit answered
    by the app, not redirected to WeChat)."""
    url = f"http://127.0.0.1:{case.server.port}/page"
    response = httpx.get(url, headers=case.headers, follow_redirects=False, timeout=10)
    if response.status_code != case.expect_status:
        raise SystemExit(
            f"{case.name}: status {response.status_code}, expected {case.expect_status}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bare vs wrapped apps behind real servers.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 3, quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 5, quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    parser.add_argument("--only", choices=["asgi", "wsgi"], help="one server kind only")
    args = parser.parse_args(argv)
    duration = args.duration or (1.0 if args.quick else 3.0)
    rounds = args.rounds or (1 if args.quick else 5)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, wrk_cpu = (
        (cpus[-1], cpus[0]) if len(cpus) >= 2 and not args.no_pin else (None, None)
    )

    wrk = ensure_wrk()
    print("wxauth-middleware behind real servers (wrk)")
    for line in machine_lines():
        print("  " + line)
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    print(f"  {(version.stdout or version.stderr).splitlines()[0].strip()}")
    print(
        f"  wrk -t1 -c{args.connections} -d{duration:g}s --latency; rounds={rounds}; "
        f"servers on CPU {server_cpu}, wrk on CPU {wrk_cpu}"
    )

    config = ours_asgi().config
    ours_cookie = f"{config.session_cookie}={session_cookie_value(config)}"
    peer_cookie = f"session={asyncio.run(starlette_session_cookie())}"
    logged_in = {"User-Agent": WECHAT_UA, "Cookie": ours_cookie, "Accept": "text/html"}
    desktop = {"User-Agent": CHROME_UA, "Accept": "text/html"}
    peer_logged_in = {"User-Agent": WECHAT_UA, "Cookie": peer_cookie, "Accept": "text/html"}

    def uvicorn(name: str) -> Server:
        port = free_port()
        command = [sys.executable, str(BENCH_DIR / "_apps.py"), "serve", name, str(port)]
        return Server(f"uvicorn {name}", command, port)

    def gunicorn(name: str) -> Server:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(BENCH_DIR),
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
            f'_apps:wsgi_app("{name}")',
        ]
        return Server(f"gunicorn {name}", command, port)

    servers: list[Server] = []
    groups: list[tuple[str, list[Case]]] = []
    if args.only != "wsgi":
        bare, ours, session = uvicorn("bare"), uvicorn("ours"), uvicorn("session")
        servers += [bare, ours, session]
        groups.append(
            (
                "uvicorn (ASGI, asyncio + h11, 1 worker)",
                [
                    Case("bare app, logged-in headers", bare, logged_in, 200, None),
                    Case("ours: logged-in", ours, logged_in, 200, "bare app, logged-in headers"),
                    Case("bare app, desktop headers", bare, desktop, 200, None),
                    Case("ours: pass-through", ours, desktop, 200, "bare app, desktop headers"),
                    Case(
                        "starlette SessionMiddleware: logged-in",
                        session,
                        peer_logged_in,
                        200,
                        "bare app, logged-in headers",
                    ),
                ],
            )
        )
    if args.only != "asgi":
        wbare, wours = gunicorn("bare"), gunicorn("ours")
        servers += [wbare, wours]
        groups.append(
            (
                "gunicorn (WSGI, gthread worker, 4 threads, 1 worker)",
                [
                    Case("bare WSGI app, logged-in headers", wbare, logged_in, 200, None),
                    Case(
                        "ours: logged-in",
                        wours,
                        logged_in,
                        200,
                        "bare WSGI app, logged-in headers",
                    ),
                ],
            )
        )

    with tempfile.TemporaryDirectory(prefix="wxauth-bench-") as tmp:
        try:
            for server in servers:
                start(server, Path(tmp), server_cpu)
            for server in servers:
                process = server.process
                assert process is not None
                wait_for_port(server.port, alive=lambda p=process: p.poll() is None)  # type: ignore[misc]
            cases = [case for _, group in groups for case in group]
            for case in cases:
                check(case)
                run_wrk(wrk, case, min(duration, 1.0), args.connections, wrk_cpu)  # warm-up
            for r in range(rounds):
                order = cases[r % len(cases) :] + cases[: r % len(cases)]
                for case in order:
                    case.results.append(run_wrk(wrk, case, duration, args.connections, wrk_cpu))
                    print(
                        f"  round {r + 1}/{rounds} {case.server.name:<16} {case.name:<40} "
                        f"{case.results[-1].rps:>9.0f} req/s",
                        flush=True,
                    )
        finally:
            stop(servers)

    summary: list[list[object]] = []
    for title, group in groups:
        by_name = {case.name: case for case in group}
        rows = []
        for case in group:
            res = case.results
            ratio = "-"
            if case.baseline is not None:
                base = by_name[case.baseline].results
                value = median([c.rps / b.rps for c, b in zip(res, base, strict=True)])
                ratio = f"{100 * value:.1f}%"
                summary.append([f"{title.split(' ')[0]}: {case.name}", ratio])
            rows.append(
                [
                    case.name,
                    f"{median([x.rps for x in res]):.0f}",
                    f"{median([x.p50_ms for x in res]):.2f}",
                    f"{median([x.p90_ms for x in res]):.2f}",
                    f"{median([x.p99_ms for x in res]):.2f}",
                    sum(x.errors for x in res),
                    ratio,
                ]
            )
        print_table(
            ["case", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "req/s vs bare"],
            rows,
            title,
        )
    for row in summary:
        if row[0] == "uvicorn: ours: logged-in":
            value = float(str(row[1]).rstrip("%"))
            verdict = "met" if value >= 95 else "NOT met"
            print(f"\ntarget: uvicorn wrapped logged-in >= 95% of bare: {row[1]} -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
