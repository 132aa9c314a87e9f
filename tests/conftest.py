from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import EmulatorServer, make_emulator, serve


@pytest.fixture
def anyio_backend() -> str:
    # The middleware is tested on asyncio, the loop every ASGI server we target runs on.
    return "asyncio"


@pytest.fixture
def emulator_server() -> Iterator[EmulatorServer]:
    """A fresh auto-approving emulator served by a real uvicorn server on 127.0.0.1."""
    emulator = make_emulator(auto_approve=True)
    with serve(emulator) as url:
        yield EmulatorServer(emulator, url)
