"""A redis-server of the demo's own, for the relay demo when no ``--redis-url`` is given: on a
free 127.0.0.1 port, in a temporary directory, nothing saved to disk, stopped when the demo
stops (and with it: it runs in the demo's process group)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["REDIS_INSTALL_HINT", "PrivateRedis", "redis_server_program"]

#: How to get redis-server, for the error that says it is missing.
REDIS_INSTALL_HINT = (
    "install redis-server (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install "
    "redis; macOS: brew install redis) and the demo starts a private one, or give "
    "--redis-url redis://HOST:PORT/DB"
)
# How long a fresh redis-server may take to answer PING, and the attempts on a port that
# another program took between our probe and its start.
_READY_TIMEOUT_S = 10.0
_ATTEMPTS = 3


def redis_server_program() -> str | None:
    """The redis-server program on PATH, or None."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """One redis-server process of the demo's: `start` returns its URL, `stop` ends it."""

    def __init__(self, program: str) -> None:
        self._program = program
        self._dir = tempfile.TemporaryDirectory(prefix="wxauth-demo-redis-")
        self._process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None

    def start(self) -> str:
        """Start it on a free port and wait until it answers; its URL. RuntimeError, with
        redis-server's own last words, if it does not come up."""
        log = Path(self._dir.name) / "redis.log"
        for _ in range(_ATTEMPTS):
            port = _free_port()
            # Our own fixed arguments: nothing untrusted reaches the command line.
            self._process = subprocess.Popen(  # noqa: S603
                [
                    self._program,
                    *("--bind", "127.0.0.1", "--port", str(port), "--dir", self._dir.name),
                    *("--save", "", "--appendonly", "no", "--logfile", str(log)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + _READY_TIMEOUT_S
            while self._process.poll() is None and time.monotonic() < deadline:
                if _answers_ping(port):
                    self.url = f"redis://127.0.0.1:{port}/0"
                    return self.url
                time.sleep(0.05)  # nothing to wait on before its port opens
            self.stop()
        output = log.read_text("utf-8", "replace") if log.exists() else ""
        last_words = output.strip().splitlines()[-3:]
        raise RuntimeError(
            f"the demo's private redis-server ({self._program}) did not start: "
            + (" / ".join(last_words) or "no output")
        )

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s); its directory is deleted."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()
