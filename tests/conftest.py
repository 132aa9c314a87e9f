from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from wxauth_middleware.emulator import WeChatEmulator

from .emulator_support import Clock
from .redis_support import (
    ClusterDeployment,
    Deployment,
    RedisServer,
    SentinelDeployment,
    require_redis_server,
)
from .servers import ServerProcess, free_port, python_command, running_server
from .support import Stack, Switchboard, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser


# The startup reachability check logs from a background thread (startup/reachability.py),
# sometimes after the test that built its middleware ended and pytest closed that test's
# log capture: logging would print "--- Logging error ---" and a traceback for each.
logging.raiseExceptions = False


@pytest.fixture
def anyio_backend() -> str:
    # The middleware is tested on asyncio, the loop every ASGI server we target runs on.
    return "asyncio"


@pytest.fixture(scope="session")
def wechat_server() -> Iterator[tuple[Switchboard, str]]:
    """One real uvicorn server on 127.0.0.1 for the session; each test plugs in its emulator."""
    switchboard = Switchboard()
    with serve(switchboard) as url:
        yield switchboard, url


@pytest.fixture(params=["asgi", "wsgi"])
def stack(request: pytest.FixtureRequest, wechat_server: tuple[Switchboard, str]) -> Stack:
    """The site behind the ASGI or the WSGI middleware: every scenario runs through both."""
    switchboard, url = wechat_server
    return Stack(request.param, switchboard, url)


@pytest.fixture
def asgi_stack(wechat_server: tuple[Switchboard, str]) -> Stack:
    switchboard, url = wechat_server
    return Stack("asgi", switchboard, url)


@pytest.fixture
def clock() -> Clock:
    """The emulator tests' clock, moved by hand."""
    return Clock()


@pytest.fixture
def emu(clock: Clock) -> WeChatEmulator:
    """An emulator with the defaults, on `clock`, for the emulator's own tests."""
    return WeChatEmulator(clock=clock)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server on 127.0.0.1 for the session (tests use prefixes of their own)."""
    server = RedisServer(require_redis_server())
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelDeployment]:
    """A primary, a replica and three Sentinels on 127.0.0.1 for the session."""
    deployment = SentinelDeployment(require_redis_server())
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterDeployment]:
    """A Redis Cluster of three primaries on 127.0.0.1 for the session."""
    deployment = ClusterDeployment(require_redis_server())
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(params=["server", "sentinel", "cluster"])
def redis_store(
    request: pytest.FixtureRequest,
) -> Deployment:
    """Each of the three deployments `redis_url` names: the store's scenarios run on all."""
    deployment: Deployment
    deployment = request.getfixturevalue(f"redis_{request.param}")
    return deployment


@pytest.fixture
def redis_prefix(redis_server: RedisServer) -> Iterator[str]:
    """A key prefix of the test's own in the shared Redis; its keys are deleted afterwards."""
    prefix = f"t{secrets.token_hex(4)}:"
    yield prefix
    with redis_server.client() as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for a module's real-browser tests."""
    from .browser_support import chromium_browser  # Playwright only where a browser is used

    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    """`python -m wxauth_middleware.demo` (uvicorn), consent page on, on a free port."""
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--port", str(port))
    with running_server("demo", argv, port=port, ready_status=None) as server:
        yield server
