"""Helpers for the real-browser tests: server processes, Debian's Chromium, pages, screenshots.

Chromium is the system one (`apt-get install chromium`); Playwright's own browser download is
never used. Servers run as real processes (uvicorn, gunicorn) on free loopback ports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from playwright.sync_api import Browser, Page, Request

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN"
)
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every wait in these tests is bounded by one of these (milliseconds for Playwright).
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
PAGE_TIMEOUT_MS = 10_000


def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One server command run as a child process, its output kept in a temp file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.url = f"http://127.0.0.1:{port}"
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            prefix=f"wxauth-{name}-", suffix=".log"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603 (our own fixed command line)
            self.argv,
            cwd=REPO_ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll the server's root URL until it answers (any HTTP status), for `timeout` s."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self._process.returncode} before it "
                    f"answered on {self.url}\n{self.describe()}"
                )
            try:
                httpx.get(self.url + "/", timeout=1.0)
                return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer on {self.url} within {timeout} s\n"
                    f"{self.describe()}"
                )
            time.sleep(0.1)  # polling interval: nothing to wait on before the port opens

    def stop(self) -> None:
        """Terminate, wait up to 10 s, then kill; the log file is closed (and deleted)."""
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            self._log.close()

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text("utf-8", "replace")

    def describe(self) -> str:
        return (
            f"----- {self.name}: {' '.join(self.argv)} -----\n"
            f"{self.output()}\n----- end of {self.name} output -----"
        )


@contextmanager
def running_server(
    name: str, argv: Sequence[str], *, port: int, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Start a server process, wait until it answers, and always stop it afterwards."""
    server = ServerProcess(name, argv, port=port, env=env)
    try:
        server.start()
        server.wait_ready()
        yield server
    finally:
        server.stop()


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


@contextmanager
def printed_on_failure(*servers: ServerProcess) -> Iterator[None]:
    """Print the servers' output (pytest shows it with the failure) if the block fails."""
    try:
        yield
    except BaseException:
        for server in servers:
            print(server.describe())
        raise


def screenshot(page: Page, scenario: str, step: str) -> Path:
    """Keep a full-page PNG of a key step: test-artifacts/browser/<scenario>-<step>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{scenario}-{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Navigations:
    """Records the main frame's navigation requests (redirect hops included)."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self._page = page
        page.on("request", self._on_request)

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame == self._page.main_frame:
            self.urls.append(request.url)

    def since(self, start: int) -> list[str]:
        return self.urls[start:]


@contextmanager
def browser_page(browser: Browser, *, user_agent: str, scenario: str) -> Iterator[Page]:
    """A page in a fresh context (no cookies) with this user agent. On failure, a screenshot
    (<scenario>-failure.png) and the page's URL are kept for the report."""
    context = browser.new_context(
        user_agent=user_agent,
        locale="zh-CN",
        viewport={"width": 430, "height": 932},
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        try:
            yield page
        except BaseException:
            try:
                shot = screenshot(page, scenario, "failure")
                print(f"browser at {page.url}; screenshot: {shot}")
            except Exception as exc:  # the original failure matters more
                print(f"no failure screenshot: {exc!r}")
            raise
    finally:
        context.close()
