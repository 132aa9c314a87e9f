"""The platform's deployment as real processes, for the end-to-end tests: the emulator
playing the platform (pushing to instance A) and two instances of `tests.platform_site`
sharing one Redis."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from .platform_support import AES_KEY, COMPONENT_APPID, COMPONENT_SECRET, EVENTS_PATH, TOKEN
from .redis_support import RedisServer
from .servers import (
    ServerProcess,
    distinct_ports,
    printed_on_failure,
    python_command,
    start_deployment,
    uvicorn_sites,
)

INHERITED_UNSET = tuple(
    name
    for name in os.environ
    if name.startswith(("WXAUTH_", "PLATFORM_SITE_"))
    or name.lower() in ("http_proxy", "https_proxy", "all_proxy")
)


@contextmanager
def platform_deployment(
    redis_server: RedisServer, *, auto_approve: bool
) -> Iterator[tuple[ServerProcess, ...]]:
    """(emulator, site A, site B), started and always stopped; the admin's authorization comes
    back to B. With `auto_approve`, WeChat's pages approve at once."""
    emulator_port, port_a, port_b = distinct_ports(3)
    wechat = f"http://127.0.0.1:{emulator_port}"
    prefix = f"wxauth-platform-{secrets.token_hex(4)}:"
    emulator = ServerProcess(
        "emulator",
        python_command(
            "-m",
            "wxauth_middleware.emulator",
            "--port",
            str(emulator_port),
            "--platform",
            f"{COMPONENT_APPID}:{COMPONENT_SECRET}:{TOKEN}:{AES_KEY}",
            "--platform-events-url",
            f"http://127.0.0.1:{port_a}{EVENTS_PATH}",
        ),
        port=emulator_port,
        unset=INHERITED_UNSET,
    )
    if auto_approve:
        emulator.argv.append("--auto-approve")
    env = {
        "PLATFORM_SITE_WECHAT_URL": wechat,
        "PLATFORM_SITE_REDIS_URL": redis_server.url,
        "PLATFORM_SITE_REDIS_PREFIX": prefix,
        "PLATFORM_SITE_ADMIN_RETURN": f"http://127.0.0.1:{port_b}/admin/authorized",
    }
    sites = uvicorn_sites("tests.platform_site:app", (port_a, port_b), env, INHERITED_UNSET)
    with ExitStack() as stack:
        # The emulator first: its first push is tried again until instance A answers.
        start_deployment(stack, emulator, sites)
        with printed_on_failure(emulator, *sites):
            yield (emulator, *sites)
        for server in (emulator, *sites):
            assert "Traceback" not in server.output(), server.describe()
        with redis_server.client() as client:
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
