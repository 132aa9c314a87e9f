"""Security properties found by an outside review, each through both adapters (`stack`):
what a login binds to, what the middleware's cookies may cost a browser, how often one state
may call WeChat, what ends a session."""

from __future__ import annotations

from typing import Any

import pytest

from .support import Stack, approve_consent, location

pytestmark = pytest.mark.anyio


async def test_on_login_never_sees_a_snapshot_user(stack: Stack) -> None:
    seen: list[Any] = []
    stack.emulator()
    middleware = stack.middleware(scope="snsapi_userinfo", on_login=lambda u, r: seen.append(u))
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="snapshot")
        callback = await client.get(location(approved))
        assert callback.status_code == 200  # the interstitial, as before
        start = await client.get("/page")
        consent = await client.get(location(start))
        approved = await approve_consent(client, consent, persona="xiaoming")
        await client.get(location(approved))
    # The virtual identity is never handed to the hook; a real user still is.
    assert [user.is_snapshot_user for user in seen] == [False]
