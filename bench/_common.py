"""Shared pieces of the benchmark scripts: requests, cookies, statistics, tables, machine.

Not a benchmark itself. The scripts put `bench/` on `sys.path` (Python does so for the script's
own directory), so they `import _common`.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from wxauth_middleware import WeChatUser
from wxauth_middleware.config import Config
from wxauth_middleware.cookies import LoginState, LoginStateCodec, Session, SessionCodec
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "APP_ID",
    "APP_SECRET",
    "CHROME_UA",
    "HOST",
    "SECRET_KEY",
    "WECHAT_UA",
    "asgi_scope",
    "bare_asgi_app",
    "bare_wsgi_app",
    "bench_user",
    "free_port",
    "machine_lines",
    "median",
    "percentile",
    "print_table",
    "replay_cookie_header",
    "session_cookie_value",
    "starlette_session_user",
    "wait_for_port",
    "wsgi_environ",
]

APP_ID = DEFAULT_APP_ID
APP_SECRET = DEFAULT_APP_SECRET
SECRET_KEY = "bench-signing-key-0123456789abcdef"  # noqa: S105 - a benchmark key
HOST = "127.0.0.1:8000"

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


def bench_user() -> WeChatUser:
    """A user as an snsapi_userinfo login gives it (the emulator's first persona's shape)."""
    return WeChatUser(
        openid="oXk3v2mQ9cJ7tR1bN8aW4eY6uZ0s",
        unionid="oU7r2LpQ5nV9xK1cM3bT8wE4yA6d",
        nickname="小明🐼",
        headimgurl="https://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLx2S1bV7pWc9hN4kR6mZ3yF8dE0aJ/132",
        sex=0,
        province="",
        city="",
        country="",
        privilege=(),
        scope="snsapi_userinfo",
    )


def starlette_session_user() -> dict[str, Any]:
    """The same identity fields, as a peer would keep them in a dict-shaped session."""
    user = bench_user()
    return {
        "openid": user.openid,
        "unionid": user.unionid,
        "nickname": user.nickname,
        "headimgurl": user.headimgurl,
        "sex": user.sex,
        "province": user.province,
        "city": user.city,
        "country": user.country,
        "privilege": list(user.privilege),
        "scope": user.scope,
    }


def session_cookie_value(config: Config) -> str:
    """A valid `wxauth_session` cookie value for `bench_user()`, signed with `config`'s key."""
    codec = SessionCodec(config.secret_keys, config.max_age, config.identity)
    return codec.encode(Session(bench_user()))


def replay_cookie_header(config: Config, state: str, return_to: str = "/page") -> str:
    """The cookies a browser sends when it replays a completed callback (back button):
    its session and the login-state cookie marked done."""
    logins = LoginStateCodec(config.secret_keys, config.login_max_age)
    done = logins.encode(LoginState(state, return_to, config.scope, 0, True))
    session = session_cookie_value(config)
    return f"{config.session_cookie}={session}; {config.state_cookie_prefix}{state}={done}"


def _browser_headers(user_agent: str, cookie: str | None) -> list[tuple[str, str]]:
    headers = [
        ("host", HOST),
        ("connection", "keep-alive"),
        ("user-agent", user_agent),
        ("accept", ACCEPT),
        ("accept-encoding", "gzip, deflate"),
        ("accept-language", "zh-CN,zh;q=0.9,en;q=0.8"),
    ]
    if cookie:
        headers.append(("cookie", cookie))
    return headers


def asgi_scope(
    path: str = "/page", *, user_agent: str, cookie: str | None = None, query: str = ""
) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it for a browser's GET (realistic header set)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "headers": [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in _browser_headers(user_agent, cookie)
        ],
        "state": {},
    }


def wsgi_environ(
    path: str = "/page", *, user_agent: str, cookie: str | None = None, query: str = ""
) -> WSGIEnvironment:
    """A WSGI environ as gunicorn builds it for a browser's GET (PEP 3333 latin-1 strings)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in _browser_headers(user_agent, cookie):
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = value
    return environ


# -- trivial servers' sides -------------------------------------------------------------------

_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"2")],
}
_BODY: Message = {"type": "http.response.body", "body": b"ok", "more_body": False}


async def bare_asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The bare ASGI app: 200 "ok", nothing else (lifespan scopes: nothing at all)."""
    if scope["type"] != "http":
        return
    await send(_START)
    await send(_BODY)


def bare_wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The bare WSGI app: 200 "ok", nothing else."""
    start_response(
        "200 OK", [("content-type", "text/plain; charset=utf-8"), ("content-length", "2")]
    )
    return [b"ok"]


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
        "flask",
        "gunicorn",
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


# -- WSGI: calling an app as a server does -----------------------------------------------------


def _write(data: bytes) -> None:
    return None


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
    return _write


def wsgi_batch(app: WSGIApplication, environ: WSGIEnvironment, n: int) -> int:
    start_response = _start_response
    start = time.perf_counter_ns()
    for _ in range(n):
        body = app(environ.copy(), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return time.perf_counter_ns() - start


def wsgi_status(app: WSGIApplication, environ: WSGIEnvironment) -> tuple[int, bytes]:
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return _write

    body = app(environ.copy(), start_response)
    data = b"".join(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return int(statuses[0].split()[0]), data


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
