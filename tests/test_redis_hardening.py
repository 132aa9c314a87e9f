"""The session store under attack and misconfiguration (issue 20): a burst of requests
during a short stall of a real redis-server waits for the store instead of failing at once,
and no `redis_url` that is refused shows any part of its password in the error."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from wxauth_middleware import ConfigurationError, WeChatAuthMiddleware, WeChatAuthWSGIMiddleware

from .redis_support import RedisServer, require_redis_server
from .support import CHROME_UA, Stack, inner_app, login, middleware_options

pytestmark = pytest.mark.anyio

# More requests than redis-py's asyncio pool holds connections (100): the excess used to get
# 503 at once.
BURST = 400
STALL_S = 0.5


async def test_a_burst_during_a_short_redis_stall_waits_for_the_store(
    stack: Stack, redis_prefix: str
) -> None:
    # A server of the test's own: it is stopped for a moment.
    server = RedisServer(require_redis_server())
    server.start()
    try:
        stack.emulator(auto_approve=True)
        # The store's timeout, which a command waits for a connection up to: ample for a
        # loaded test machine (the stall itself is far shorter).
        url = server.url + "?socket_timeout=5"
        middleware = stack.middleware(redis_url=url, redis_prefix=redis_prefix)
        async with stack.phone(middleware) as phone:
            page = await login(phone, "/whoami")
            openid = page.json()["user"]["openid"]
            # One logged-in user replays their cookie, many times at once (any browser).
            phone.headers["user-agent"] = CHROME_UA
            statuses: Counter[int] = Counter()
            users: Counter[str | None] = Counter()

            async def visit() -> None:
                answer = await phone.get("/whoami")
                statuses[answer.status_code] += 1
                if answer.status_code == 200:
                    users[(answer.json()["user"] or {}).get("openid")] += 1

            async with anyio.create_task_group() as group:
                with server.stalled():
                    for _ in range(BURST):
                        group.start_soon(visit)
                    # Far shorter than the store's timeout: every request can wait.
                    await anyio.sleep(STALL_S)
    finally:
        server.close()
    assert statuses == {200: BURST}, statuses
    assert users == {openid: BURST}


# Passwords as people paste them, not percent-encoded: '/', '?', '#' end the host part.
_PASSWORD = "Zq7/Xk?Wm#Pv"
_LEAKS = ("Zq7", "Xk", "Wm", "Pv")
_URLS = [
    # A password holding '/', '?' or '#' (with and without a user name), every form.
    *(
        f"{scheme}://{user}:Zq7{mark}Xk9Pv@{rest}"
        for scheme, rest in (
            ("redis", "127.0.0.1:6379/0"),
            ("rediss", "127.0.0.1:6379/0"),
            ("unix", "/run/redis.sock"),
            ("redis+sentinel", "127.0.0.1:26379/primary"),
            ("redis+cluster", "127.0.0.1:7000"),
        )
        for mark in "/?#"
        for user in ("", "default")
    ),
    # The whole password at once.
    f"redis://:{_PASSWORD}@127.0.0.1:6379/0",
    # A typo in the scheme: nothing past it may show.
    *(
        f"{scheme}{typo}:Zq7Xk9Pv@127.0.0.1:6379/0"
        for scheme in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
        for typo in (":/", ":", "//", ":///")
    ),
]


@pytest.mark.parametrize("url", _URLS)
@pytest.mark.parametrize("kind", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
def test_a_refused_redis_url_shows_no_part_of_its_password(url: str, kind: type) -> None:
    with pytest.raises(ConfigurationError, match="redis_url") as refused:
        kind(inner_app(), **middleware_options("http://127.0.0.1:1", redis_url=url))
    message = str(refused.value)
    assert not any(part in message for part in _LEAKS), message
    # It still says what to do.
    assert "percent-encode" in message or "e.g. 'redis://127.0.0.1:6379/0'" in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis:/:Zq7Xk9Pv@127.0.0.1:6379/0", "'redis:/'"),
        ("http://127.0.0.1:6379", "'http://'"),
        ("127.0.0.1:6379", "that value"),
    ],
)
def test_a_redis_url_of_another_scheme_says_how_it_starts(url: str, shown: str) -> None:
    with pytest.raises(ConfigurationError, match="must be a redis://") as refused:
        WeChatAuthMiddleware(inner_app(), **middleware_options("http://127.0.0.1:1", redis_url=url))
    assert shown in str(refused.value)
