"""A real Redis server for the tests: Debian's `redis-server` (installed by `.ci/run`) on a free
127.0.0.1 port, in a temporary directory, with its append-only file on so that a restart keeps
what it held. Tests that need it skip without `redis-server`, except in CI, where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from .servers import READY_TIMEOUT_S, STOP_TIMEOUT_S, free_port

REDIS_SERVER = shutil.which("redis-server")


def require_redis_server() -> str:
    """The redis-server program; skips the test without it (fails in CI)."""
    if REDIS_SERVER is None:
        message = "redis-server is not installed (apt-get install redis-server; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_SERVER


class RedisServer:
    """One redis-server process; `stop` and `start` again on the same port keep its data."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="wxauth-redis-")
        self._log = Path(self._dir.name) / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Our own fixed arguments: nothing untrusted reaches the command line.
        self._process = subprocess.Popen(  # noqa: S603
            [
                self.program,
                *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", self._dir.name),
                # No snapshots; the append-only file keeps the data across a restart.
                *("--save", "", "--appendonly", "yes", "--logfile", str(self._log)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as probe:
            while True:
                if self._process.poll() is not None:
                    pytest.fail(f"redis-server exited early:\n{self.output()}")
                try:
                    if probe.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer in {READY_TIMEOUT_S} s")
                time.sleep(0.05)  # polling interval: nothing to wait on before the port opens

    def stop(self) -> None:
        """Stop it the way an operator does (SIGTERM: the append-only file is flushed)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
        self._process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def output(self) -> str:
        return self._log.read_text("utf-8", "replace") if self._log.exists() else ""

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
