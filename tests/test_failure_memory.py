"""While WeChat fails to issue the account's credentials, the failure is remembered for a
moment (doubling while it lasts): anonymous JS-SDK requests, through both adapters against
the emulator, cannot make a call to WeChat each."""

from __future__ import annotations

import anyio
import pytest

from wxauth_middleware.wechat import kept

from .support import APP_ORIGIN, CHROME_UA, Stack

pytestmark = pytest.mark.anyio

VISITORS = 30
PATHS = {"getticket": "/cgi-bin/ticket/getticket", "stable_token": "/cgi-bin/stable_token"}


@pytest.mark.parametrize("endpoint", ["getticket", "stable_token"])
async def test_anonymous_visitors_do_not_ask_a_failing_wechat_again_and_again(
    stack: Stack, endpoint: str
) -> None:
    emulator = stack.emulator()
    emulator.inject(endpoint, times=None, errcode=-1)  # "system busy", until cleared
    app = stack.middleware(retries=2)
    page = {"url": f"{APP_ORIGIN}/page"}
    async with stack.phone(app, user_agent=CHROME_UA) as browser:
        failed = [
            (await browser.get("/wxauth/jssdk", params=page)).status_code for _ in range(VISITORS)
        ]
        during = emulator.call_count(PATHS[endpoint])
        # WeChat is back, but the failure is still remembered for a moment: no call.
        emulator.clear_faults()
        remembered = await browser.get("/wxauth/jssdk", params=page)
        assert emulator.call_count(PATHS[endpoint]) == during
        await anyio.sleep(kept.FAILURE_MEMORY + 0.2)
        recovered = await browser.get("/wxauth/jssdk", params=page)
    assert failed == [503] * VISITORS
    assert remembered.status_code == 503
    assert remembered.json()["error"] == "wechat_error"
    # One request's calls (the first and its 2 retries), not 3 per visitor (90). Should the 30
    # visits outlast the memory (a loaded machine), one more request asks: at most twice.
    assert 3 <= during <= 6, during
    assert recovered.status_code == 200, recovered.text
    assert set(recovered.json()) == {"appId", "timestamp", "nonceStr", "signature"}


def test_the_memory_doubles_while_the_failures_last_and_a_success_forgets_them() -> None:
    from wxauth_middleware.errors import WeChatAPIError

    slot = kept.Slot("jsapi_ticket", "t")
    error = WeChatAPIError(-1, "system error", endpoint="/cgi-bin/ticket/getticket")
    memories = []
    for _ in range(8):
        slot.failure(error)
        memories.append(round(slot.retry_at - slot.failed[0], 3))  # type: ignore[index]
    assert memories == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    answered = slot.remembered_failure(asked=float("inf"))
    assert isinstance(answered, WeChatAPIError)
    assert answered is not error
    assert (answered.errcode, answered.__traceback__) == (-1, None)
    slot.success(kept.Held("ticket", 0.0))
    assert slot.remembered_failure(asked=float("-inf")) is None
    slot.failure(error)
    assert slot.retry_at - slot.failed[0] == kept.FAILURE_MEMORY  # type: ignore[index]
