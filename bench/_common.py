"""Shared pieces of the benchmark scripts: an HTTP/1.1 response reader, /proc readings,
statistics, tables, the machine, a redis-server of the script's own.

Not a benchmark itself. The scripts put `bench/` on `sys.path` (Python does so for the script's
own directory), so they `import _common`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET

if TYPE_CHECKING:
    import redis
    import redis.asyncio

APP_ID = DEFAULT_APP_ID
APP_SECRET = DEFAULT_APP_SECRET
SECRET_KEY = "bench-signing-key-0123456789abcdef"  # noqa: S105 - a benchmark key

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN"
)
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


# -- HTTP/1.1 over asyncio streams, for clients that must cost little CPU ----------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], bytes]:
    """One HTTP/1.1 response: status, headers (names lower-cased), body (Content-Length or
    chunked). asyncio.IncompleteReadError when the peer closed the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    fields = dict(headers)
    if "content-length" in fields:
        return status, headers, await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding", "").lower() != "chunked":
        raise ValueError(f"a response without Content-Length or chunked body: {lines[0]}")
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")  # no trailers are sent here: the final empty line
    return status, headers, bytes(body)


def request_bytes(target: str, host: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """A GET request's bytes."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat utime + stime)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int | None = None) -> int:
    """Resident memory (VmRSS) of a process, this one by default."""
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/<pid>/status")


# -- statistics and output ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, linearly interpolated."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str = "") -> None:
    """A plain aligned table (also valid Markdown), to stdout."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    if title:
        print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in text_rows:
        cells = [
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
    sys.stdout.flush()


def machine_lines() -> list[str]:
    """The machine and software the figures come from."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for name in (
        "wxauth-middleware",
        "starlette",
        "itsdangerous",
        "httpx",
        "uvicorn",
    ):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} -")
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return [
        f"machine: {os.cpu_count()} cores, {model}; load average {load}",
        f"code: {_revision()}",
        f"python: {platform.python_implementation()} {platform.python_version()} ({sys.platform})",
        "packages: " + ", ".join(versions),
    ]


def _revision() -> str:
    """The package's git commit, and whether the tree has changes on top (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None:
        return "unknown (no git)"
    try:
        head = subprocess.run(  # noqa: S603
            [git, "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "-C", str(root), "status", "--porcelain", "--", "wxauth_middleware"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (" + uncommitted changes in wxauth_middleware/" if dirty else "")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float = 15.0, alive: Callable[[], bool] | None = None
) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the server for port {port} exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# -- a redis-server of the script's own --------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 10 s to exit, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class RedisServer:
    """A redis-server of this run's own: 127.0.0.1 only, in a temp dir, no persistence."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def async_client(self) -> redis.asyncio.Redis:
        import redis.asyncio

        return redis.asyncio.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-2000:]
        except OSError:
            return ""


def start_redis(program: str, directory: Path) -> RedisServer:
    port = free_port()
    log_path = directory / "redis.log"
    # Our own fixed arguments: nothing untrusted reaches the command line.
    process = subprocess.Popen(  # noqa: S603
        [
            program,
            *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)),
            *("--save", "", "--appendonly", "no", "--logfile", str(log_path)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    return RedisServer(process, port, log_path)


def wait_for_redis(server: RedisServer, timeout: float = 10.0) -> str:
    """Wait until it answers PING; returns its version. RuntimeError if it exits or is silent."""
    import redis

    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {server.process.returncode}")
            try:
                if client.ping():
                    return str(client.info("server").get("redis_version", "?"))
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING within {timeout:g} s")
            time.sleep(0.05)  # polling: nothing to wait on before the port opens


@contextmanager
def running_redis(program: str, directory: Path) -> Iterator[tuple[RedisServer, str]]:
    """A redis-server of the script's own in `directory`, answering PING (its version given
    too), always stopped afterwards. RuntimeError, with the tail of its log, if it cannot
    start."""
    server = start_redis(program, directory)
    try:
        try:
            version = wait_for_redis(server)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{server.log_tail()}") from None
        yield server, version
    finally:
        stop_process(server.process)


# -- in-process requests ----------------------------------------------------------------------


def scope(
    user_agent: str,
    cookie: str = "",
    path: str = "/page",
    query: str = "",
    accept: str = ACCEPT,
    host: str = "127.0.0.1:8000",
) -> MutableMapping[str, Any]:
    """An ASGI scope of a browser's GET of `path` on `host`, as uvicorn makes it."""
    headers = [
        (b"host", host.encode()),
        (b"connection", b"keep-alive"),
        (b"user-agent", user_agent.encode()),
        (b"accept", accept.encode()),
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


def environ(http_scope: Mapping[str, Any]) -> dict[str, Any]:
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


async def asgi_call(
    app: Any, http_scope: Mapping[str, Any]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Calls the ASGI `app` with `http_scope`: its status, headers and last body."""
    answer: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        answer.append(message)

    await app(dict(http_scope), receive, send)
    return answer[0]["status"], answer[0].get("headers", []), answer[-1].get("body", b"")


def set_cookies(headers: list[tuple[bytes, bytes]]) -> str:
    """The Cookie header a browser sends back after these response headers."""
    pairs = [v.decode().split(";")[0] for k, v in headers if k == b"set-cookie"]
    return "; ".join(p for p in pairs if not p.endswith("="))
