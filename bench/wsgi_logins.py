"""App CPU per WSGI login during a burst: the WSGI middleware against a urllib3 floor, one run.

    python bench/wsgi_logins.py            # 8 and 50 concurrent, both scopes, 3 rounds (~3 min)
    python bench/wsgi_logins.py --quick    # 8 concurrent, both scopes, a few logins (seconds)
    python bench/wsgi_logins.py --levels 50 --rounds 5 --latency 0.05

Processes, all on 127.0.0.1: the WeChat emulator (`python -m wxauth_middleware.emulator
--auto-approve --latency L`, default L = 50 ms on every API answer) and, per scope
(snsapi_base: one call to WeChat per login; snsapi_userinfo: two), two apps under gunicorn
(gthread, one worker x 8 threads; see bench/_wsgi_apps.py): "ours", `WeChatAuthWSGIMiddleware`
(default options but the scope) around a page, and "floor", the same login written by hand in
WSGI calling WeChat through urllib3's connection pool. This process plays the phones exactly as
bench/logins.py does (new connections, empty cookie jar, page → authorize → callback → page).
Each round runs every scope and level against ours, then the floor; app CPU per login = the
gunicorn worker's utime + stime over the wave / logins. Printed: medians over rounds of ms of
app CPU per login, ours / floor, login wall time. Exit status 1 if any login fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import cpu_seconds, free_port, machine_lines, median, print_table, stop_process
from logins import Wave, arguments, start, start_emulator, summary, wave

BENCH = Path(__file__).resolve().parent
APPS = ("ours", "floor")
SCOPES = ("snsapi_base", "snsapi_userinfo")


def worker_pid(master: int) -> int:
    """gunicorn's one worker process (the master's child), whose CPU the logins cost."""
    for _ in range(100):
        with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as children:
            pids = children.read().split()
        if pids:
            return int(pids[0])
        cpu_seconds(master)  # still starting: the master is alive (raises if not)
        asyncio.run(asyncio.sleep(0.05))
    raise RuntimeError("gunicorn started no worker")


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__).parse_args(argv)
    levels = args.levels or ([8] if args.quick else [8, 50])
    logins, rounds = (16, 1) if args.quick else (args.logins, args.rounds)

    print("\n".join(machine_lines()))
    print(
        f"emulator latency {args.latency * 1000:g} ms; {logins} logins per wave; "
        f"{rounds} rounds; gunicorn gthread, 1 worker x 8 threads"
    )
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="wxauth-wsgi-logins-") as tmp:
        try:
            emulator, emulator_url = start_emulator(args.latency, tmp)
            processes.append(emulator)
            urls: dict[tuple[str, str], str] = {}
            pids: dict[tuple[str, str], int] = {}
            for scope in SCOPES:
                for name in APPS:
                    port = free_port()
                    factory = f"_wsgi_apps:app({name!r}, {emulator_url!r}, {scope!r})"
                    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1"]
                    command += ["--threads", "8", "-b", f"127.0.0.1:{port}"]
                    command += ["--chdir", str(BENCH), "--log-level", "warning", factory]
                    log = Path(tmp) / f"{name}-{scope}.log"
                    processes.append(start(command, port, log))
                    urls[name, scope] = f"http://127.0.0.1:{port}"
                    pids[name, scope] = worker_pid(processes[-1].pid)
            return asyncio.run(run(levels, logins, rounds, urls, pids, emulator.pid, emulator_url))
        finally:
            for process in processes:
                stop_process(process)


async def run(
    levels: list[int],
    logins: int,
    rounds: int,
    urls: dict[tuple[str, str], str],
    pids: dict[tuple[str, str], int],
    emulator_pid: int,
    emulator_url: str,
) -> int:
    for key, url in urls.items():  # warm-up: imports, first connections, caches
        warm = await wave(url, emulator_url, 4, 2, (pids[key], emulator_pid))
        if warm.failures:
            print(f"{key}: the warm-up failed: {warm.failures[0]}")
            return 1
    waves: dict[tuple[str, str, int], list[Wave]] = {
        (n, s, c): [] for n in APPS for s in SCOPES for c in levels
    }
    for _ in range(rounds):
        for scope in SCOPES:
            for concurrent in levels:
                for name in APPS:
                    each = max(1, logins // concurrent)
                    pair = (pids[name, scope], emulator_pid)
                    result = await wave(urls[name, scope], emulator_url, concurrent, each, pair)
                    waves[name, scope, concurrent].append(result)
    rows = []
    failures = 0
    for scope in SCOPES:
        for concurrent in levels:
            ours, floor = waves["ours", scope, concurrent], waves["floor", scope, concurrent]
            ratios = [o.cpu_ms / f.cpu_ms for o, f in zip(ours, floor, strict=True) if f.cpu_ms]
            cells: list[object] = [scope, concurrent]
            for name in APPS:
                label = f"{name}, {scope}, {concurrent} concurrent"
                more, failed = summary(waves[name, scope, concurrent], label)
                cells += more
                failures += failed
            cells.append(f"{median(ratios):.2f}" if ratios else "-")
            rows.append(cells)
    print_table(
        [
            "scope",
            "concurrent",
            "ours: app CPU ms/login",
            "ours: login p50 / p99 ms",
            "floor (urllib3): app CPU ms/login",
            "floor: login p50 / p99 ms",
            "ours / floor CPU",
        ],
        rows,
        "WSGI app CPU per login (medians over rounds; gunicorn gthread, 1 worker x 8 threads):",
    )
    if failures:
        print(f"{failures} logins failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
