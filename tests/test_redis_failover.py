"""The session store while its Redis fails: a Sentinel failover (the primary killed mid-run)
and a Cluster node lost, with two instances of the site (the ASGI and the WSGI middleware).
While the store cannot answer, requests that need it get the clear 503 and nothing else (never
a 500, never logged in or out by mistake); service returns by itself, without a restart. The
outage windows and the 503s in them are printed (`pytest -s` shows them)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack

import pytest

from .redis_support import ClusterDeployment, Deployment, SentinelDeployment, wait_for
from .support import CHROME_UA, Middleware, Stack, Switchboard, login

pytestmark = pytest.mark.anyio

API_HEADERS = {"accept": "application/json", "sec-fetch-mode": "cors", "user-agent": CHROME_UA}
# How long the store may take to come back (a failover takes about 2 s here).
RECOVERY_TIMEOUT_S = 20.0
PROBE_INTERVAL_S = 0.05


@pytest.fixture
def stacks(wechat_server: tuple[Switchboard, str]) -> tuple[Stack, Stack]:
    """The ASGI and the WSGI middleware against one emulator: two instances of one site."""
    switchboard, url = wechat_server
    return Stack("asgi", switchboard, url), Stack("wsgi", switchboard, url)


async def sessions_across_an_outage(
    stacks: tuple[Stack, Stack],
    deployment: Deployment,
    redis_prefix: str,
    fail: Callable[[], None],
    restore: Callable[[], None] | None = None,
) -> tuple[float, Counter[int]]:
    """Log in on each instance, make the store fail (`fail()`; `restore()` two seconds
    later, once an answer showed the outage), then ask both instances who the visitor is
    until both answer again: every answer is the right user or the store's 503. Returns the
    outage window (s) and the answers' statuses in it."""
    asgi, wsgi = stacks
    asgi.emulator(auto_approve=True)
    instances: list[Middleware] = [
        stack.middleware(redis_url=deployment.url, redis_prefix=redis_prefix)
        for stack in (asgi, wsgi)
    ]
    async with AsyncExitStack() as exits:
        phones = [await exits.enter_async_context(asgi.phone(m)) for m in instances]
        openids = []
        for phone in phones:
            page = await login(phone, "/whoami")
            openids.append(page.json()["user"]["openid"])
        cookies = [dict(phone.cookies) for phone in phones]
        if isinstance(deployment, SentinelDeployment):
            with deployment.client() as client:
                # Both sessions are on the replica: what a failover can lose (the last writes
                # before it) is not this test's subject.
                assert client.execute_command("WAIT", 1, 2000) == 1
        fail()
        failed_at = time.monotonic()
        statuses: Counter[int] = Counter()
        recovered: set[int] = set()
        while len(recovered) < 2 or restore is not None:
            assert time.monotonic() - failed_at < RECOVERY_TIMEOUT_S, statuses
            # Restored after 2 s, and not before the outage was seen: under load, a cluster
            # may take longer than that to mark the lost node failed.
            if restore is not None and time.monotonic() - failed_at > 2.0 and statuses[503]:
                restore()
                restore = None
                recovered.clear()  # back when both answer after it
            for i, (phone, cookie, openid) in enumerate(zip(phones, cookies, openids, strict=True)):
                phone.cookies.clear()
                phone.cookies.update(cookie)
                answer = await phone.get("/whoami", headers=API_HEADERS)
                statuses[answer.status_code] += 1
                if answer.status_code == 503:
                    assert answer.json()["error"] == "store_unavailable", answer.text
                    assert "set-cookie" not in answer.headers
                    continue
                # Never anything else: not logged out, not someone else, not a 500.
                assert answer.status_code == 200, answer.text
                assert answer.json()["user"]["openid"] == openid
                recovered.add(i)
            await _sleep(PROBE_INTERVAL_S)
        window = time.monotonic() - failed_at
        if isinstance(deployment, ClusterDeployment):
            # The sessions' nodes may answer before every node has seen the lost one back
            # (the cluster's state spreads by gossip); a login may touch any slot.
            wait_for("the cluster's state ok", deployment.healthy, RECOVERY_TIMEOUT_S)
        # Back without a restart: logins and sessions work across both instances.
        for phone, other in ((phones[0], instances[1]), (phones[1], instances[0])):
            phone.cookies.clear()
            page = await login(phone, "/whoami")
            assert page.status_code == 200
            async with asgi.phone(other) as twin:
                twin.cookies.update(dict(phone.cookies))
                seen = await twin.get("/whoami", headers=API_HEADERS)
                assert seen.json()["user"]["openid"] == page.json()["user"]["openid"]
    for middleware in instances:
        await _close(middleware)
    return window, statuses


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


async def _close(middleware: Middleware) -> None:
    close = getattr(middleware, "aclose", None)
    if close is not None:
        await close()
    else:
        middleware.close()  # type: ignore[union-attr]


async def test_a_sentinel_failover_is_followed_without_a_restart(
    stacks: tuple[Stack, Stack], redis_sentinel: SentinelDeployment, redis_prefix: str
) -> None:
    primary = next(
        s
        for s in (redis_sentinel.primary, redis_sentinel.replica)
        if s.port == redis_sentinel.primary_port()
    )
    window, statuses = await sessions_across_an_outage(
        stacks, redis_sentinel, redis_prefix, primary.kill
    )
    assert statuses[503] > 0  # the outage was seen
    assert redis_sentinel.primary_port() != primary.port  # promoted: the replica
    print(
        f"\nSentinel failover: store back after {window:.2f} s; answers in the window: "
        f"{statuses[503]} x 503, {statuses[200]} x 200"
    )
    # The old primary comes back as a replica of the new one (the Sentinels see to it).
    primary.start()


async def test_a_lost_cluster_node_is_a_503_until_it_is_back(
    stacks: tuple[Stack, Stack], redis_cluster: ClusterDeployment, redis_prefix: str
) -> None:
    # A primary without a replica, lost for 2 s (longer than cluster-node-timeout: the
    # cluster marks it failed), then restarted with its data (the append-only file).
    node = redis_cluster.nodes[1]
    window, statuses = await sessions_across_an_outage(
        stacks, redis_cluster, redis_prefix, node.kill, node.start
    )
    assert statuses[503] > 0  # the outage was seen
    print(
        f"\nCluster node lost for 2 s: store back after {window:.2f} s; answers in the "
        f"window: {statuses[503]} x 503, {statuses[200]} x 200"
    )
