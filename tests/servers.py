"""Servers run as real processes: a free loopback port, a bounded wait until the server answers,
its output kept for the failure report, and a stop that always happens (terminate, wait, then
kill its whole process group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from .support import CHROME_UA

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every wait on a server process is bounded by one of these (seconds).
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


def free_port() -> int:
    """A TCP port nothing listens on right now on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def distinct_ports(count: int) -> list[int]:
    """`count` different free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def uvicorn_sites(
    app: str, ports: Sequence[int], env: Mapping[str, str], unset: Iterable[str]
) -> list[ServerProcess]:
    """Instances "site-a", "site-b"... of the ASGI `app` ("module:name") under uvicorn."""
    return [
        ServerProcess(
            f"site-{chr(ord('a') + i)}",
            python_command("-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            port=port,
            env=env,
            unset=unset,
        )
        for i, port in enumerate(ports)
    ]


def start_deployment(
    stack: ExitStack, emulator: ServerProcess, sites: Sequence[ServerProcess]
) -> None:
    """Start the emulator and the sites at once, each stopped when `stack` closes; wait until
    all of them answer."""
    for server in (emulator, *sites):
        stack.callback(server.stop)
        server.start()
    emulator.wait_ready("/", status=None)
    for site in sites:
        site.wait_ready("/whoami", status=200)


def python_command(*args: str) -> list[str]:
    """A command line run by this test run's own interpreter."""
    return [sys.executable, *args]


class ServerProcess:
    """One server command run as a child process (in a session of its own, so that it can be
    killed with its workers), its output kept in a temp file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        unset: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        removed = set(unset)
        self._env = {
            **{key: value for key, value in os.environ.items() if key not in removed},
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            # The package may not be installed: make the checkout importable in the child.
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
            **(env or {}),
        }
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            prefix=f"wxauth-{name}-", suffix=".log"
        )
        self._final_output: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Our own interpreter and fixed arguments: nothing untrusted reaches the command line.
        self._process = subprocess.Popen(  # noqa: S603
            self.argv,
            cwd=REPO_ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(
        self, path: str = "/", *, status: int | None = 200, timeout: float = READY_TIMEOUT_S
    ) -> None:
        """Poll `path` (as a desktop browser) until it answers with `status` (with None, any
        status), for `timeout` s; the test fails with the server's output otherwise."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=PROBE_TIMEOUT_S, trust_env=False) as probe:
            while True:
                if self._process.poll() is not None:
                    pytest.fail(
                        f"{self.name} exited with status {self._process.returncode} before it "
                        f"answered on {self.url}{path}\n{self.describe()}"
                    )
                try:
                    answer = probe.get(path, headers={"user-agent": CHROME_UA})
                except httpx.TransportError:
                    pass
                else:
                    if status is None or answer.status_code == status:
                        return
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{self.name} did not answer on {self.url}{path} within {timeout} s\n"
                        f"{self.describe()}"
                    )
                time.sleep(0.1)  # polling interval: nothing to wait on before the port opens

    def wait_exit(self, timeout: float = READY_TIMEOUT_S) -> int | None:
        """The exit status once the process ends within `timeout` s; None if it still runs."""
        assert self._process is not None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Terminate, wait up to 10 s, then kill the process group; the output is kept and the
        log file closed (and deleted)."""
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            self._final_output = self.output()
            self._log.close()

    def output(self) -> str:
        """What the server printed so far (all of it, once stopped)."""
        if self._final_output is not None:
            return self._final_output
        self._log.flush()
        return Path(self._log.name).read_text("utf-8", "replace")

    def describe(self) -> str:
        return (
            f"----- {self.name}: {' '.join(self.argv)} -----\n"
            f"{self.output()}\n----- end of {self.name} output -----"
        )


@contextmanager
def printed_on_failure(*servers: ServerProcess) -> Iterator[None]:
    """Print the servers' output (pytest shows it with the failure) if the block fails."""
    try:
        yield
    except BaseException:
        for server in servers:
            print(server.describe())
        raise


@contextmanager
def running_server(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    ready_path: str = "/",
    ready_status: int | None = 200,
    ready_timeout: float = READY_TIMEOUT_S,
) -> Iterator[ServerProcess]:
    """Start `argv` (listening on 127.0.0.1:`port`) with `env` added to this environment and
    `unset` removed from it; wait until `ready_path` answers `ready_status`, within
    `ready_timeout` s; yield it, print its output if the block fails, and always stop it."""
    server = ServerProcess(name, argv, port=port, env=env, unset=unset)
    try:
        server.start()
        server.wait_ready(ready_path, status=ready_status, timeout=ready_timeout)
        with printed_on_failure(server):
            yield server
    finally:
        server.stop()
