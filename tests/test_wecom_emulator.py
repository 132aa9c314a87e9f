"""The emulator's WeCom corp from the command line: --corp-id, --agent-id/--corp-secret pairs,
--wecom-domain and --wecom-trusted-ip, served by the real command."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import anyio
import httpx
import pytest

from wxauth_middleware.emulator.__main__ import banner, build_emulator, build_parser, main
from wxauth_middleware.emulator.grants import GrantError
from wxauth_middleware.emulator.wecom_state import (
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_CORP_SECRET,
)

from .servers import free_port, python_command, running_server


def test_without_corp_id_there_is_no_corp() -> None:
    assert build_emulator(build_parser().parse_args([])).wecom is None


def test_the_options_build_the_corp() -> None:
    args = build_parser().parse_args(
        [
            "--corp-id",
            DEFAULT_CORP_ID,
            "--agent-id",
            "1000005",
            "--corp-secret",
            "five",
            "--agent-id",
            "1000006",
            "--corp-secret",
            "six",
            "--wecom-domain",
            "oa.example.com:8443",
            "--wecom-trusted-ip",
            "10.0.0.0/8",
        ]
    )
    emulator = build_emulator(args)
    corp = emulator.wecom
    assert corp is not None
    assert corp.agents == {1000005: "five", 1000006: "six"}
    assert corp.trusts("https://oa.example.com:8443/cb")
    assert not corp.trusts("https://oa.example.com/cb")
    assert not corp.allows_ip("127.0.0.1")
    assert corp.allows_ip("10.1.2.3")
    text = banner(emulator, "127.0.0.1", 8400, emulator.app_secret)
    assert f"corp_id={DEFAULT_CORP_ID}" in text
    assert "agent_id=1000006 secret=six" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent-id", "1000002"], "--corp-id"),
        (["--corp-id", DEFAULT_CORP_ID, "--agent-id", "1000002"], "--corp-secret"),
        (
            ["--corp-id", DEFAULT_CORP_ID, "--corp-secret", "a", "--corp-secret", "b"],
            "--corp-secret",
        ),
        (["--corp-id", DEFAULT_CORP_ID, "--wecom-trusted-ip", "not-an-ip"], "WeCom"),
    ],
)
def test_inconsistent_wecom_options_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_plays_the_corp() -> None:
    port = free_port()
    argv = python_command(
        "-m",
        "wxauth_middleware.emulator",
        "--port",
        str(port),
        "--auto-approve",
        "--corp-id",
        DEFAULT_CORP_ID,
    )
    with running_server("emulator", argv, port=port, ready_timeout=15) as server:
        base = server.url
        assert f"agent_id={DEFAULT_AGENT_ID}" in server.output()
        back = quote("http://localhost:8000/wxauth/callback", safe="")
        authorize = httpx.get(
            f"{base}/connect/oauth2/authorize?appid={DEFAULT_CORP_ID}&redirect_uri={back}"
            f"&response_type=code&scope=snsapi_privateinfo&state=s1&agentid={DEFAULT_AGENT_ID}",
            timeout=5,
        )
        assert authorize.status_code == 302
        code = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
        wrong = httpx.get(
            f"{base}/cgi-bin/gettoken", params={"corpid": DEFAULT_CORP_ID, "corpsecret": "x"}
        ).json()
        assert wrong["errcode"] == 40091
        token = httpx.get(
            f"{base}/cgi-bin/gettoken",
            params={"corpid": DEFAULT_CORP_ID, "corpsecret": DEFAULT_CORP_SECRET},
        ).json()["access_token"]
        who = httpx.get(
            f"{base}/cgi-bin/auth/getuserinfo", params={"access_token": token, "code": code}
        ).json()
        assert who["userid"] == "ZhangWei"
        detail = httpx.post(
            f"{base}/cgi-bin/auth/getuserdetail",
            params={"access_token": token},
            json={"user_ticket": who["user_ticket"]},
        ).json()
        assert detail["mobile"] == "13800000001"
        again = httpx.get(
            f"{base}/cgi-bin/auth/getuserinfo", params={"access_token": token, "code": code}
        ).json()
        assert again["errcode"] == 40029
        assert "more info at https://open.work.weixin.qq.com" in again["errmsg"]


def test_the_index_page_shows_the_corp() -> None:
    async def index(argv: list[str]) -> str:
        emulator = build_emulator(build_parser().parse_args(argv))
        transport = httpx.ASGITransport(app=emulator)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
            return (await client.get("/")).text

    page = anyio.run(index, ["--corp-id", DEFAULT_CORP_ID])
    assert f'<code id="wecom-corp-id">{DEFAULT_CORP_ID}</code>' in page
    assert "/cgi-bin/auth/getuserdetail" in page
    assert 'id="wecom"' not in anyio.run(index, [])


def test_gettoken_refuses_any_other_secret_with_40091() -> None:
    corp = build_emulator(build_parser().parse_args(["--corp-id", DEFAULT_CORP_ID])).wecom
    assert corp is not None
    for wrong in ("", "x", "密钥", DEFAULT_CORP_SECRET + " "):
        with pytest.raises(GrantError) as refused:
            corp.token(DEFAULT_CORP_ID, wrong)
        assert refused.value.errcode == 40091
    with pytest.raises(GrantError) as unknown:
        corp.token("ww0000000000000000", DEFAULT_CORP_SECRET)
    assert unknown.value.errcode == 40013
    token, life = corp.token(DEFAULT_CORP_ID, DEFAULT_CORP_SECRET)
    assert (token, 7200) == (corp.token(DEFAULT_CORP_ID, DEFAULT_CORP_SECRET)[0], life)
