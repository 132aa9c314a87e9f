from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # The middleware is tested on asyncio, the loop every ASGI server we target runs on.
    return "asyncio"
