"""The two commands (emulator, demo) refuse a port they cannot listen on before they print
anything else: one line on stderr naming the flag to change, exit status 2, no traceback."""

from __future__ import annotations

import socket
import subprocess

import pytest

from .servers import REPO_ROOT, STOP_TIMEOUT_S, python_command

COMMANDS = ["wxauth_middleware.emulator", "wxauth_middleware.demo"]


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        python_command("-m", module, *args),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=STOP_TIMEOUT_S * 3,
        check=False,
    )


def assert_one_line_refusal(module: str, *args: str, needles: tuple[str, ...]) -> None:
    result = run(module, *args)
    assert result.returncode == 2, result
    assert result.stdout == ""  # no banner, no "Open http://..."
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"python -m {module}: error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("module", COMMANDS)
@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_an_invalid_port_is_one_line(module: str, port: str) -> None:
    assert_one_line_refusal(module, "--port", port, needles=(f"--port {port}", "1 to 65535"))


@pytest.mark.parametrize("module", COMMANDS)
def test_a_busy_port_is_one_line_before_the_banner(module: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_refusal(
            module, "--port", str(port), needles=(f"127.0.0.1:{port}", "--port")
        )
