"""Pages anyone can mint on the site's own domain render no text of their choosing (issue 20,
F7): with public_url set, a login started with one Host header and brought back with another
makes a host-mismatch page, whose clean address (`callback_path?page=...`, signed, valid a
day, no cookie needed) a visitor may be sent to. Through both adapters, against the
emulator."""

from __future__ import annotations

import pytest

from .support import Stack, clean_address, location, shown

pytestmark = pytest.mark.anyio

STARTED = "wx-login-verify.example-evil.com"
RETURNED = "account-recovery.example-evil.com"


async def test_a_minted_host_mismatch_page_names_no_host_of_the_minters(stack: Stack) -> None:
    stack.emulator(auto_approve=True)
    middleware = stack.middleware(public_url="http://example.com")
    async with stack.phone(middleware) as minter:
        start = await minter.get("/page", headers={"host": STARTED})
        back = location(await minter.get(location(start))).partition("example.com")[2]
        minter.cookies.clear()
        in_place = await shown(minter, back, headers={"host": RETURNED})
        minted = clean_address(in_place.text)
        assert minted is not None
        # The link the minter sends around, opened on the site's own domain.
        sent = await minter.get(minted, headers={"host": "example.com"})
        json = await minter.get(minted, headers={"host": "example.com", "accept": "*/*"})
    # Where the minter stands: the host their own request named, never the one the state
    # carries from the start.
    assert in_place.status_code == 400
    assert STARTED not in in_place.text
    # What a visitor of the link sees: the site's hosts only.
    assert sent.status_code == 400
    assert "example-evil" not in sent.text
    assert "微信返回到了 example.com" in sent.text
    assert "Open the site at http://example.com" in sent.text
    assert "example-evil" not in minted
    assert "example-evil" not in json.text
