"""The emulator's third-party platform: the component APIs with WeChat's errcodes (61004,
61005, 61006, 61023, 40001, 42001, 48001), the pushes it signs and encrypts, the consent
page, the login on an account's behalf, and the command line."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from wxauth_middleware.emulator import DEFAULT_APP_ID, WeChatEmulator
from wxauth_middleware.emulator.__main__ import main
from wxauth_middleware.platform.crypto import MessageCipher, parse_xml, signature_matches

from .emulator_support import CALLBACK, Clock, assert_error, authorize_query, client_for
from .platform_support import AES_KEY, COMPONENT_APPID, COMPONENT_SECRET, SPEC, TOKEN

pytestmark = pytest.mark.anyio


@pytest.fixture
def platform_emu(clock: Clock) -> WeChatEmulator:
    return WeChatEmulator(clock=clock, platform=SPEC, auto_approve=True)


async def _post(client: httpx.AsyncClient, api: str, token: str = "", **body: Any) -> Any:
    params = {"component_access_token": token} if token else {}
    answer = await client.post(f"/cgi-bin/component/{api}", params=params, json=body)
    assert answer.status_code == 200
    return answer.json()


async def _component_token(client: httpx.AsyncClient, ticket: str) -> Any:
    return await _post(
        client,
        "api_component_token",
        component_appid=COMPONENT_APPID,
        component_appsecret=COMPONENT_SECRET,
        component_verify_ticket=ticket,
    )


async def _authorized(client: httpx.AsyncClient, emu: WeChatEmulator) -> tuple[str, str]:
    """A component token, and the refresh token of the first account's authorization."""
    assert emu.platform is not None
    token = (await _component_token(client, emu.platform.new_ticket()))["component_access_token"]
    code = emu.platform.authorize(DEFAULT_APP_ID)
    info = await _post(
        client,
        "api_query_auth",
        token,
        component_appid=COMPONENT_APPID,
        authorization_code=code,
    )
    return token, info["authorization_info"]["authorizer_refresh_token"]


def test_a_push_is_signed_and_encrypted_as_wechat_does(platform_emu: WeChatEmulator) -> None:
    assert platform_emu.platform is not None
    query, body = platform_emu.platform.envelope("component_verify_ticket", {"A": "1"})
    params = dict(parse_qsl(query))
    outer = parse_xml(body)
    assert outer["AppId"] == COMPONENT_APPID
    assert params["encrypt_type"] == "aes"
    assert signature_matches(
        TOKEN, params["timestamp"], params["nonce"], outer["Encrypt"], params["msg_signature"]
    )
    inner = parse_xml(MessageCipher(AES_KEY, COMPONENT_APPID).decrypt(outer["Encrypt"]).encode())
    assert inner == {
        "AppId": COMPONENT_APPID,
        "CreateTime": params["timestamp"],
        "InfoType": "component_verify_ticket",
        "A": "1",
    }


async def test_the_component_token_and_its_errcodes(
    platform_emu: WeChatEmulator, clock: Clock
) -> None:
    assert platform_emu.platform is not None
    async with client_for(platform_emu) as client:
        assert_error(await _component_token(client, "ticket@@@made-up"), 61006)
        ticket = platform_emu.platform.new_ticket()
        wrong = await _post(
            client,
            "api_component_token",
            component_appid=COMPONENT_APPID,
            component_appsecret="nope",
            component_verify_ticket=ticket,
        )
        assert_error(wrong, 40125)
        good = await _component_token(client, ticket)
        assert good["expires_in"] == 7200
        platform_emu.inject("api_component_token", errcode=61004)
        assert_error(await _component_token(client, ticket), 61004)
        clock.advance(12 * 3600)
        assert_error(await _component_token(client, ticket), 61005)
        # The token expired meanwhile: 42001; a made-up one: 40001.
        for token, errcode in ((good["component_access_token"], 42001), ("x", 40001)):
            answer = await _post(
                client, "api_create_preauthcode", token, component_appid=COMPONENT_APPID
            )
            assert_error(answer, errcode)


async def test_the_refresh_token_rotates_and_a_lost_one_is_61023(
    platform_emu: WeChatEmulator,
) -> None:
    async with client_for(platform_emu) as client:
        token, refresh = await _authorized(client, platform_emu)
        fields = {"component_appid": COMPONENT_APPID, "authorizer_appid": DEFAULT_APP_ID}
        first = await _post(
            client, "api_authorizer_token", token, authorizer_refresh_token=refresh, **fields
        )
        second = await _post(
            client,
            "api_authorizer_token",
            token,
            authorizer_refresh_token=first["authorizer_refresh_token"],
            **fields,
        )
        assert (
            len({refresh, first["authorizer_refresh_token"], second["authorizer_refresh_token"]})
            == 3
        )
        # The oldest was not kept by a careful platform: WeChat no longer takes it.
        lost = await _post(
            client, "api_authorizer_token", token, authorizer_refresh_token=refresh, **fields
        )
        assert_error(lost, 61023)
        # The authorizer's token is an account token: getticket takes it.
        ticket = await client.get(
            "/cgi-bin/ticket/getticket",
            params={"access_token": second["authorizer_access_token"], "type": "jsapi"},
        )
        assert ticket.json()["errcode"] == 0


async def test_the_component_code_exchange(platform_emu: WeChatEmulator) -> None:
    async with client_for(platform_emu) as client:
        token, _ = await _authorized(client, platform_emu)
        link = authorize_query(scope="snsapi_base", extra=f"&component_appid={COMPONENT_APPID}")
        back = await client.get(f"/connect/oauth2/authorize?{link}")
        code = dict(parse_qsl(urlsplit(back.headers["location"]).query))["code"]
        assert back.headers["location"].startswith(CALLBACK)
        params = {
            "appid": DEFAULT_APP_ID,
            "code": code,
            "grant_type": "authorization_code",
            "component_appid": COMPONENT_APPID,
        }
        # An account's (the authorizer's) token instead of the component token: 48001.
        account_token, _ = platform_emu._credentials.legacy_token(DEFAULT_APP_ID)
        path = "/sns/oauth2/component/access_token"
        wrong = await client.get(path, params={**params, "component_access_token": account_token})
        assert_error(wrong.json(), 48001)
        good = await client.get(path, params={**params, "component_access_token": token})
        assert good.json()["openid"]
        # A code of a plain login (no component_appid) is not exchanged on behalf.
        plain = await client.get(
            f"/connect/oauth2/authorize?{authorize_query(scope='snsapi_base')}"
        )
        plain_code = dict(parse_qsl(urlsplit(plain.headers["location"]).query))["code"]
        refused = await client.get(
            path, params={**params, "code": plain_code, "component_access_token": token}
        )
        assert_error(refused.json(), 40029)


async def test_an_account_that_did_not_authorize_gets_wechats_page(
    platform_emu: WeChatEmulator,
) -> None:
    async with client_for(platform_emu) as client:
        link = authorize_query(extra=f"&component_appid={COMPONENT_APPID}")
        page = await client.get(f"/connect/oauth2/authorize?{link}")
        assert page.status_code == 200
        assert 'content="61003"' in page.text


async def test_the_consent_page_and_a_spent_pre_auth_code(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, platform=SPEC)
    assert emu.platform is not None
    code, _ = emu.platform.pre_auth_code()
    query = {
        "component_appid": COMPONENT_APPID,
        "pre_auth_code": code,
        "redirect_uri": "http://localhost:8000/admin",
        "auth_type": "1",
    }
    async with client_for(emu) as client:
        page = await client.get("/cgi-bin/componentloginpage", params=query)
        assert page.status_code == 200
        assert 'name="authorizer"' in page.text
        form = {**query, "authorizer": DEFAULT_APP_ID, "decision": "allow"}
        done = await client.post("/cgi-bin/componentloginpage/confirm", data=form)
        assert done.status_code == 302
        assert dict(parse_qsl(urlsplit(done.headers["location"]).query))["auth_code"]
        again = await client.post("/cgi-bin/componentloginpage/confirm", data=form)
        assert 'content="61010"' in again.text  # a pre_auth_code is used once
        other = await client.get(
            "/cgi-bin/componentloginpage", params={**query, "component_appid": "wx" + "0" * 16}
        )
        assert 'content="40013"' in other.text


async def test_pushes_need_the_emulators_own_origin_and_a_platform() -> None:
    async with client_for(WeChatEmulator()) as client:
        assert (await client.post("/_emulator/platform/push")).status_code == 403
    async with client_for(WeChatEmulator(platform=SPEC)) as client:
        cross = await client.post(
            "/_emulator/platform/push", headers={"sec-fetch-site": "cross-site"}
        )
        assert cross.status_code == 403
        # No events URL: nothing delivered, and it says so.
        assert (await client.post("/_emulator/platform/push")).json() == {
            "ok": False,
            "status": None,
        }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--platform", "wx1:secret"], "COMPONENT_APPID:SECRET:TOKEN:AESKEY"),
        (["--platform", f"{COMPONENT_APPID}:s:t:short"], "43 characters"),
        (["--platform-events-url", "http://127.0.0.1:1/e"], "needs --platform"),
    ],
)
def test_the_command_line_says_what_is_wrong(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
