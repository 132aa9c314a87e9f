"""Bad options stop the app at startup in the README's Starlette and FastAPI setups.

Both frameworks build their middleware on the first ASGI call, the server's lifespan
startup; uvicorn's default lifespan="auto" takes an exception there for "lifespan
unsupported" and goes on serving a 500 to every request. The README's quickstart is run as
is, with a wrong AppID, under a real uvicorn: it must exit, saying why.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware

from wxauth_middleware import ConfigurationError, WeChatAuthMiddleware

from .servers import ServerProcess, free_port, python_command

README = Path(__file__).resolve().parent.parent / "README.md"
BAD_APP_ID = "wx12345"


def quickstart(framework: str) -> str:
    """The README's first Python block under `### <framework>`."""
    text = README.read_text("utf-8")
    section = text.split(f"\n### {framework}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("framework", ["Starlette", "FastAPI"])
def test_the_quickstart_with_a_bad_option_exits_at_startup(framework: str, tmp_path: Path) -> None:
    source, replaced = re.subn(r'app_id="[^"]*"', f'app_id="{BAD_APP_ID}"', quickstart(framework))
    assert replaced == 1
    (tmp_path / "quickstart_app.py").write_text(source, "utf-8")
    port = free_port()
    argv = python_command(
        "-m", "uvicorn", "--app-dir", str(tmp_path), "--port", str(port), "quickstart_app:app"
    )
    server = ServerProcess(f"{framework} quickstart", argv, port=port)
    try:
        server.start()
        status = server.wait_exit()
    finally:
        server.stop()
    output = server.output()
    assert status not in (None, 0), output
    assert f"app_id '{BAD_APP_ID}' is not an AppID" in output
    assert "Application startup failed" in output
    assert "lifespan' protocol appears unsupported" not in output


def _build(**options: Any) -> Starlette:
    return Starlette(middleware=[Middleware(WeChatAuthMiddleware, **options)])


@pytest.mark.anyio
async def test_a_missing_option_fails_the_lifespan_startup() -> None:
    app = _build(app_id="wx8e6a2d5c0b1f4a37", secret_key="a-long-enough-signing-key-0123456789")
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(ConfigurationError, match="app_secret is required"):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == [
        {
            "type": "lifespan.startup.failed",
            "message": "app_secret is required: pass app_secret=... or set WXAUTH_APP_SECRET.",
        }
    ]


@pytest.mark.anyio
async def test_without_a_lifespan_a_request_raises_the_error() -> None:
    app = _build(app_id=BAD_APP_ID, app_secret="s", secret_key="a-long-enough-key-0123456789")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        with pytest.raises(ConfigurationError, match="not an AppID"):
            await client.get("/")


def test_constructed_directly_the_middleware_raises_at_once() -> None:
    with pytest.raises(ConfigurationError, match="not an AppID"):
        WeChatAuthMiddleware(Starlette(), app_id=BAD_APP_ID, app_secret="s", secret_key="k" * 20)
