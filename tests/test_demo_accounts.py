"""The demo's second Official Account on a second loopback host name: two accounts side by
side, and nothing changed for whoever opens 127.0.0.1 or localhost."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from wxauth_middleware.demo import WECHAT_IOS_UA, create_demo_app
from wxauth_middleware.demo.__main__ import main
from wxauth_middleware.demo.app import SECOND_APP_ID, SECOND_HOST
from wxauth_middleware.emulator import DEFAULT_APP_ID

from .servers import free_port, python_command, running_server

FIRST, SECOND = "http://127.0.0.1:8000", f"http://{SECOND_HOST}:8000"
PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def _me(client: httpx.AsyncClient, origin: str) -> dict[str, Any]:
    final = await client.get(f"{origin}/profile", headers=PAGE, follow_redirects=True)
    assert final.status_code == 200, final.text
    me = await client.get(f"{origin}/api/me")
    user: dict[str, Any] = me.json()["user"]
    return user


@pytest.mark.anyio
async def test_two_accounts_side_by_side_one_person_two_openids() -> None:
    app = create_demo_app(public_url=FIRST, auto_approve=True, second_account=SECOND_HOST)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        mounts={FIRST: transport, SECOND: transport, "http://localhost:8000": transport},
        headers={"user-agent": WECHAT_IOS_UA},
    ) as client:
        first = await _me(client, FIRST)
        second = await _me(client, SECOND)
        on_localhost = await _me(client, "http://localhost:8000")
    assert (first["app_id"], second["app_id"]) == (DEFAULT_APP_ID, SECOND_APP_ID)
    assert first["openid"] != second["openid"]
    assert first["unionid"] == second["unionid"] is not None
    assert on_localhost["app_id"] == DEFAULT_APP_ID


@pytest.mark.parametrize("host", ["example.com", "localhost", "127.0.0.1", "10.0.0.2"])
def test_the_second_host_must_be_another_loopback_name(host: str) -> None:
    with pytest.raises(ValueError, match=f"second_account {host!r} must be another loopback"):
        create_demo_app(public_url=FIRST, second_account=host)


def test_the_second_account_needs_a_loopback_demo() -> None:
    with pytest.raises(ValueError, match="loopback demo"):
        create_demo_app(public_url="https://demo.example.com", second_account=SECOND_HOST)


def test_the_command_serves_the_second_account_on_its_host() -> None:
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--port", str(port), "--second-account")
    with (
        running_server("demo", argv, port=port, ready_path="/_wechat/") as server,
        httpx.Client(timeout=5.0, trust_env=False) as client,
    ):
        client.headers["user-agent"] = WECHAT_IOS_UA
        site = f"http://127.0.0.1:{port}"
        # The browser resolves second.localhost to this machine: the same socket, its Host.
        for host, app_id in (
            (f"127.0.0.1:{port}", DEFAULT_APP_ID),
            (f"{SECOND_HOST}:{port}", SECOND_APP_ID),
        ):
            start = client.get(f"{site}/profile", headers={**PAGE, "host": host})
            assert start.status_code == 302, start.text
            params = dict(parse_qsl(urlsplit(start.headers["location"]).query))
            assert params["appid"] == app_id
            assert params["redirect_uri"] == f"http://{host}/wxauth/callback"
    assert f"http://{SECOND_HOST}:{port}/" in server.output()


def test_the_command_refuses_a_second_host_that_is_not_loopback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", str(free_port()), "--second-account", "shop.example.com"])
    assert exited.value.code == 2
    assert "--second-account 'shop.example.com' must be another loopback" in capsys.readouterr().err
