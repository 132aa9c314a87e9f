"""A third-party platform end to end, every part a real process: the emulator playing the
platform (--platform, --platform-events-url, --auto-approve) pushes its encrypted events over
HTTP to one instance of the site; a second instance shares its Redis. The ticket pushed at
the emulator's start serves both; the admin's authorization started on one completes on the
other; a user logs in on the account's behalf; a revocation pushed to one stops the other's
logins."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from wxauth_middleware.emulator import DEFAULT_APP_ID
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS

from .platform_processes import platform_deployment
from .redis_support import RedisServer
from .servers import (
    ServerProcess,
)
from .support import CHROME_UA, WECHAT_UA, location

OPENID = DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)


def _client() -> httpx.Client:
    return httpx.Client(
        headers={"user-agent": WECHAT_UA, "accept": "text/html"},
        trust_env=False,
        follow_redirects=False,
        timeout=10,
    )


def eventually(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def deployment(redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ...]]:
    with platform_deployment(redis_server, auto_approve=True) as servers:
        yield servers


def test_pushes_over_http_to_two_instances_sharing_redis(
    deployment: tuple[ServerProcess, ...],
) -> None:
    emulator, site_a, site_b = deployment
    with _client() as phone:
        # The ticket pushed to A at the emulator's start lets B start logins.
        eventually(
            "the start's ticket reaching instance B",
            lambda: phone.get(f"{site_b.url}/page").status_code == 302,
        )
        # And a push on demand is answered "success" by A.
        with httpx.Client(trust_env=False, timeout=10) as control:
            pushed = control.post(f"{emulator.url}/_emulator/platform/push")
            assert pushed.json() == {"ok": True, "status": 200}
        # The admin starts on A; WeChat (auto-approving) sends them back to B, which completes.
        admin = httpx.Client(headers={"user-agent": CHROME_UA}, trust_env=False, timeout=10)
        with admin:
            consent = location(admin.get(f"{site_a.url}/admin/authorize"))
            assert consent.startswith(f"{emulator.url}/cgi-bin/componentloginpage?")
            back = location(admin.get(consent))
            assert urlsplit(back).netloc == urlsplit(site_b.url).netloc
            done = admin.get(back)
            assert done.json() == {"app_id": DEFAULT_APP_ID}
        # A user logs in on the account's behalf, through B.
        start = phone.get(f"{site_b.url}/page")
        callback = location(phone.get(location(start)))
        landed = phone.get(site_b.url + location(phone.get(callback)))
        assert json.loads(landed.text)["user"]["openid"] == OPENID
        # The account revokes its authorization: the push reaches A, B's logins stop.
        with httpx.Client(trust_env=False, timeout=10) as control:
            revoked = control.post(
                f"{emulator.url}/_emulator/platform/unauthorize", params={"appid": DEFAULT_APP_ID}
            )
            assert revoked.json() == {"ok": True, "status": 200}
        phone.cookies.clear()
        stopped = phone.get(f"{site_b.url}/page")
        assert stopped.status_code == 403
        assert "该公众号已取消" in stopped.text
