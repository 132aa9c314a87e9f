"""The demo's scan login (`/desktop`), on one computer: a desktop window, and a private window
(a cookie jar of its own) that browses as WeChat and plays the phone."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from wxauth_middleware.demo import AS_WECHAT_COOKIE, create_demo_app

from .test_demo import CHROME_UA, ORIGIN, PAGE, XIAOMING, approve, parse

pytestmark = pytest.mark.anyio


def _attribute(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]+)"', html)
    assert match is not None, name
    return unescape(match[1])


async def test_desktop_logs_in_by_scanning_from_a_private_window() -> None:
    transport = httpx.ASGITransport(app=create_demo_app(public_url=ORIGIN))
    headers = {"user-agent": CHROME_UA}
    async with (
        httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers=headers) as desktop,
        httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers=headers) as phone,
    ):
        qr_page = await desktop.get("/desktop", headers=PAGE)
        assert qr_page.status_code == 200
        phone_url = _attribute(qr_page.text, "data-scan-url")
        status_url = _attribute(qr_page.text, "data-status-url")
        # The address is shown too, for a "phone" that cannot scan: here, the private window.
        assert parse(qr_page.text).text_by_id["scan-url"] == phone_url
        # In the desktop's own window (not WeChat), the phone URL asks for WeChat.
        assert (await desktop.get(phone_url, headers=PAGE)).status_code == 403

        switched = await phone.post("/_demo/as-wechat", data={"as_wechat": "on", "next": "/"})
        assert switched.status_code == 303
        login = await phone.get(phone_url, headers=PAGE)
        assert login.status_code == 302
        allowed = await approve(phone, login.headers["location"], "xiaoming")
        back = await phone.get(allowed.headers["location"], headers=PAGE)
        assert back.status_code == 302
        assert back.headers["location"] == phone_url.removeprefix(ORIGIN)
        confirmation = await phone.get(phone_url, headers=PAGE)
        assert confirmation.status_code == 200
        _, fields = parse(confirmation.text).forms[0]
        csrf = next(f["value"] for f in fields if f.get("name") == "csrf")

        # The phone's session stays in its own window: the desktop is not logged in yet.
        assert "wxauth_session" in phone.cookies
        assert "wxauth_session" not in desktop.cookies
        assert (await desktop.get(status_url)).json() == {"status": "scanned"}

        decided = await phone.post(
            phone_url, data={"csrf": csrf, "decision": "confirm"}, headers={"origin": ORIGIN}
        )
        assert decided.status_code == 200
        status = (await desktop.get(status_url)).json()
        assert status["status"] == "confirmed"
        done = await desktop.get(status["next"], headers=PAGE)
        assert done.status_code == 302
        assert done.headers["location"] == "/desktop"
        page = await desktop.get("/desktop", headers=PAGE)
        assert page.status_code == 200
        assert parse(page.text).text_by_id["desktop-user"] == XIAOMING
        assert AS_WECHAT_COOKIE not in desktop.cookies
