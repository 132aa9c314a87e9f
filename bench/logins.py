"""App CPU per login during a burst: the middleware against a hand-written floor, one run.

    python bench/logins.py            # 1, 50 and 200 concurrent, 3 rounds (about 2 min)
    python bench/logins.py --quick    # 1 and 10 concurrent, a few logins (seconds)
    python bench/logins.py --levels 200 --rounds 5 --latency 0.05

Processes, all on 127.0.0.1: the WeChat emulator (`python -m wxauth_middleware.emulator
--auto-approve --latency L`, default L = 50 ms on every API answer), and two apps under uvicorn
(one worker each, asyncio + h11; see bench/_apps.py): "ours", `WeChatAuthMiddleware` (scope
snsapi_base, default options) around a page, and "floor", the same login written by hand in a
few lines of ASGI with a minimal pooled HTTP/1.1 client. This process plays the phones, with
raw HTTP/1.1 on asyncio streams so that it takes little CPU from the servers.

A login, as a phone opening a pushed article does it, each on new connections with an empty
cookie jar: GET /article → 302 to the emulator's authorize → 302 to /wxauth/callback → 302
back → GET /article, which must name the user's openid. At concurrency C, C phones start
together and each does `logins per phone` logins one after another. Each round runs every
level against ours, then the floor (interleaved, so outside load hits both alike); app CPU per
login = the server process's utime + stime (/proc/<pid>/stat) over the wave / logins. Printed:
medians over rounds of ms of app CPU per login, ours / floor, the wall time of a login, and
the emulator's CPU. Exit status 1 if any login fails.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from _common import (
    WECHAT_UA,
    cpu_seconds,
    free_port,
    machine_lines,
    median,
    percentile,
    print_table,
    read_response,
    request_bytes,
    stop_process,
    wait_for_port,
)

BENCH = Path(__file__).resolve().parent
APPS = ("ours", "floor")
PHONE_HEADERS = (
    ("User-Agent", WECHAT_UA),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "zh-CN,zh;q=0.9"),
)


class LoginFailed(Exception):
    pass


class Phone:
    """One WeChat browser: its own cookie jar and keep-alive connection per host."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.streams: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def get(self, url: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        if parts.netloc not in self.streams:
            opened = await asyncio.open_connection(parts.hostname, parts.port)
            self.streams[parts.netloc] = opened
        reader, writer = self.streams[parts.netloc]
        headers = list(PHONE_HEADERS)
        if self.cookies:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(request_bytes(target, parts.netloc, headers))
        status, answer, body = await read_response(reader)
        for name, value in answer:
            if name == "set-cookie":
                pair, _, attributes = value.partition(";")
                key, _, item = pair.strip().partition("=")
                if item and "max-age=0" not in attributes.lower().replace(" ", ""):
                    self.cookies[key] = item
                else:
                    self.cookies.pop(key, None)
        return status, dict(answer), body

    def close(self) -> None:
        for _, writer in self.streams.values():
            writer.close()


async def login(app_url: str, emulator_url: str) -> float:
    """One login from a new phone; its wall time in seconds. LoginFailed if any step is off."""
    phone = Phone()
    start = time.perf_counter()
    try:
        url = f"{app_url}/article?id=7"
        expected = (302, emulator_url), (302, f"{app_url}/wxauth/callback"), (302, "/article?id=7")
        for status, prefix in expected:
            got, headers, _ = await phone.get(url)
            location = headers.get("location", "")
            if got != status or not location.startswith(prefix):
                raise LoginFailed(f"GET {url}: {got} {location!r}, expected {status} {prefix}…")
            url = location if "://" in location else app_url + location
        got, _, body = await phone.get(url)
        if got != 200 or not body.startswith(b"hello o"):
            raise LoginFailed(f"GET {url}: {got} {body[:80]!r}, expected the page, logged in")
    finally:
        phone.close()
    return time.perf_counter() - start


@dataclass
class Wave:
    cpu_ms: float = 0.0  # app CPU per login
    emulator_ms: float = 0.0
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def wave(
    app_url: str, emulator_url: str, phones: int, each: int, pids: tuple[int, int]
) -> Wave:
    result = Wave()

    async def phone() -> None:
        for _ in range(each):
            try:
                result.seconds.append(await login(app_url, emulator_url))
            except (LoginFailed, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.failures.append(f"{type(exc).__name__}: {exc}")

    app_cpu, emulator_cpu = cpu_seconds(pids[0]), cpu_seconds(pids[1])
    await asyncio.gather(*(phone() for _ in range(phones)))
    logins = phones * each
    result.cpu_ms = (cpu_seconds(pids[0]) - app_cpu) * 1000 / logins
    result.emulator_ms = (cpu_seconds(pids[1]) - emulator_cpu) * 1000 / logins
    return result


def start(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # Our own fixed arguments: nothing untrusted reaches the command line.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
    except RuntimeError:
        stop_process(process)
        raise RuntimeError(
            f"{' '.join(command)} did not start:\n{log.read_text()[-2000:]}"
        ) from None
    return process


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options of the login benches (this one and wsgi_logins.py)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--levels", type=int, nargs="+", help="concurrent phones per wave")
    parser.add_argument(
        "--logins", type=int, default=200, help="logins per wave (at least one per phone)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05, help="emulator API latency, s")
    return parser


def start_emulator(latency: float, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    """The emulator CLI (auto-approving, `latency` s on every API answer) and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "wxauth_middleware.emulator", "--port", str(port)]
    command += ["--auto-approve", "--latency", str(latency)]
    return start(command, port, Path(tmp) / "emulator.log"), f"http://127.0.0.1:{port}"


def summary(waves: list[Wave], label: str) -> tuple[list[object], int]:
    """Table cells for `waves` of one app and level (median app CPU per login, login wall
    time p50 / p99) and how many logins failed, the first few printed."""
    seconds = [s for w in waves for s in w.seconds]
    failed = [f for w in waves for f in w.failures]
    for failure in failed[:3]:
        print(f"{label}: {failure}")
    wall = (
        f"{percentile(seconds, 50) * 1000:.0f} / {percentile(seconds, 99) * 1000:.0f}"
        if seconds
        else "-"
    )
    return [f"{median([w.cpu_ms for w in waves]):.2f}", wall], len(failed)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__)
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="serve both apps with uvloop and httptools (pip install uvloop httptools)",
    )
    args = parser.parse_args(argv)
    levels = args.levels or ([1, 10] if args.quick else [1, 50, 200])
    logins, rounds = (10, 1) if args.quick else (args.logins, args.rounds)

    print("\n".join(machine_lines()))
    server = "uvloop + httptools" if args.uvloop else "asyncio + h11"
    print(
        f"emulator latency {args.latency * 1000:g} ms; {logins} logins per wave; "
        f"{rounds} rounds; {server}"
    )
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="wxauth-logins-") as tmp:
        try:
            emulator, emulator_url = start_emulator(args.latency, tmp)
            processes.append(emulator)
            urls: dict[str, str] = {}
            pids: dict[str, int] = {}
            for name in APPS:
                port = free_port()
                command = [sys.executable, str(BENCH / "_apps.py"), name, str(port), emulator_url]
                command += ["uvloop"] if args.uvloop else []
                processes.append(start(command, port, Path(tmp) / f"{name}.log"))
                urls[name], pids[name] = f"http://127.0.0.1:{port}", processes[-1].pid
            return asyncio.run(
                run(args, levels, logins, rounds, urls, pids, emulator.pid, emulator_url)
            )
        finally:
            for process in processes:
                stop_process(process)


async def run(
    args: argparse.Namespace,
    levels: list[int],
    logins: int,
    rounds: int,
    urls: dict[str, str],
    pids: dict[str, int],
    emulator_pid: int,
    emulator_url: str,
) -> int:
    for name in APPS:  # warm-up: imports, first connections, caches
        warm = await wave(urls[name], emulator_url, 5, 2, (pids[name], emulator_pid))
        if warm.failures:
            print(f"{name}: the warm-up failed: {warm.failures[0]}")
            return 1
    waves: dict[tuple[str, int], list[Wave]] = {(n, c): [] for n in APPS for c in levels}
    for _ in range(rounds):
        for concurrent in levels:
            for name in APPS:
                each = max(1, logins // concurrent)
                waves[name, concurrent].append(
                    await wave(
                        urls[name], emulator_url, concurrent, each, (pids[name], emulator_pid)
                    )
                )
    rows = []
    failures = 0
    for concurrent in levels:
        ours, floor = waves["ours", concurrent], waves["floor", concurrent]
        ratio = median([o.cpu_ms / f.cpu_ms for o, f in zip(ours, floor, strict=True) if f.cpu_ms])
        cells: list[object] = [concurrent]
        for name in APPS:
            more, failed = summary(waves[name, concurrent], f"{name}, {concurrent} concurrent")
            cells += more
            failures += failed
        cells += [f"{ratio:.2f}", f"{median([w.emulator_ms for w in ours + floor]):.2f}"]
        rows.append(cells)
    print_table(
        [
            "concurrent",
            "ours: app CPU ms/login",
            "ours: login p50 / p99 ms",
            "floor: app CPU ms/login",
            "floor: login p50 / p99 ms",
            "ours / floor CPU",
            "emulator CPU ms/login",
        ],
        rows,
        "App CPU per login (medians over rounds; one uvicorn worker each):",
    )
    if failures:
        print(f"{failures} logins failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
