"""The WeChat emulator, driven over ASGI the way the middleware and its tests use it."""

from __future__ import annotations

import json
import pathlib
import re
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Message

from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    PERSONA_COOKIE,
    Persona,
    RecordedCall,
    WeChatEmulator,
    dispatch,
)
from wxauth_middleware.emulator import app as app_module
from wxauth_middleware.emulator.grants import GrantStore
from wxauth_middleware.emulator.protocol import wechat_json

from .emulator_support import (
    BASE_URL,
    CALLBACK,
    Clock,
    assert_error,
    authorize_path,
    authorize_query,
    body_json,
    callback_params,
    client_for,
    error_marker,
    exchange,
    parse_form,
)

# -- the index page -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_index_page_describes_the_emulator(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert "not the real WeChat" in response.text
    assert DEFAULT_APP_ID in response.text
    assert DEFAULT_APP_SECRET not in response.text
    for path in ("/connect/oauth2/authorize", "/sns/oauth2/access_token", "/sns/userinfo"):
        assert path in response.text
    for persona in DEFAULT_PERSONAS:
        assert persona.key in response.text
    assert f"authorize_url={BASE_URL}/connect/oauth2/authorize" in response.text
    assert f"api_base_url={BASE_URL}<" in response.text


# -- the authorize page -------------------------------------------------------------------


@pytest.mark.anyio
async def test_consent_page_lists_personas_and_buttons(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        response = await client.get(authorize_path(authorize_query()))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert error_marker(response.text) is None
    assert "WeChat emulator — not the real WeChat" in response.text
    assert DEFAULT_APP_ID in response.text
    assert "snsapi_userinfo" in response.text
    assert "location.hash" in response.text  # the #wechat_redirect check runs in browsers
    form = parse_form(response.text)
    assert form.action == "/connect/oauth2/authorize/confirm"
    assert form.radios == [p.key for p in DEFAULT_PERSONAS]
    assert form.checked == "xiaoming"
    assert set(form.button_ids) == {"allow", "refuse"}
    assert form.hidden["query"] == authorize_query()
    # The control character is shown as a visible symbol, never raw in HTML.
    assert "\x07" not in response.text
    assert "snapshot" in response.text


@pytest.mark.anyio
async def test_approve_redirects_with_code_and_remembers_persona(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        page = await client.get(authorize_path(authorize_query(state="xyz")))
        form = parse_form(page.text)
        response = await client.post(
            form.action, data={**form.hidden, "persona": "xiaoming", "decision": "allow"}
        )
        params = callback_params(response)
        assert params["state"] == ["xyz"]
        assert len(params["code"][0]) == 32
        cookie = response.headers["set-cookie"]
        assert f"{PERSONA_COOKIE}=xiaoming" in cookie
        assert "Path=/connect/oauth2" in cookie
        token = await exchange(client, params["code"][0])
    assert token["scope"] == "snsapi_userinfo"
    assert token["openid"] == DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)
    assert token["unionid"] == DEFAULT_PERSONAS[0].unionid


@pytest.mark.anyio
async def test_refuse_redirects_with_state_and_no_code(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        form = parse_form((await client.get(authorize_path(authorize_query()))).text)
        response = await client.post(form.action, data={**form.hidden, "decision": "refuse"})
    params = callback_params(response)
    assert params == {"state": ["abc123"]}
    assert "set-cookie" not in response.headers


@pytest.mark.anyio
async def test_snsapi_base_is_silent_once_a_persona_is_chosen(emu: WeChatEmulator) -> None:
    base = authorize_query(scope="snsapi_base")
    async with client_for(emu) as client:
        first = await client.get(authorize_path(base))
        assert first.status_code == 200  # nobody logged in to "this WeChat" yet: consent
        form = parse_form(first.text)
        chosen = await client.post(
            form.action, data={**form.hidden, "persona": "lily", "decision": "allow"}
        )
        assert "code" in callback_params(chosen)

        silent = await client.get(authorize_path(base))
        code = callback_params(silent)["code"][0]
        token = await exchange(client, code)
        assert token["openid"] == DEFAULT_PERSONAS[1].openid_for(DEFAULT_APP_ID)
        assert token["scope"] == "snsapi_base"

        # userinfo always asks, and forcePopup=true forces the popup for base too.
        userinfo_page = await client.get(authorize_path(authorize_query()))
        assert userinfo_page.status_code == 200
        assert parse_form(userinfo_page.text).checked == "lily"
        forced = await client.get(authorize_path(base + "&forcePopup=true"))
        assert forced.status_code == 200
        assert parse_form(forced.text).radios


@pytest.mark.anyio
async def test_unknown_persona_cookie_counts_as_nobody(emu: WeChatEmulator) -> None:
    base = authorize_path(authorize_query(scope="snsapi_base"))
    async with client_for(emu) as client:
        client.cookies.set(PERSONA_COOKIE, "lily", domain="127.0.0.1")
        known = await client.get(base)
        client.cookies.set(PERSONA_COOKIE, "nobody", domain="127.0.0.1")
        unknown = await client.get(base)
    assert known.status_code == 302
    assert unknown.status_code == 200
    assert parse_form(unknown.text).checked == "xiaoming"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("redirect_uri", "state", "expected_prefix"),
    [
        (CALLBACK, "s1", f"{CALLBACK}?code="),
        (CALLBACK + "?next=%2Fa", "s1", f"{CALLBACK}?next=%2Fa&code="),
        (CALLBACK, None, f"{CALLBACK}?code="),
    ],
)
async def test_auto_approve_redirects_at_once(
    clock: Clock, redirect_uri: str, state: str | None, expected_prefix: str
) -> None:
    emu = WeChatEmulator(clock=clock, auto_approve=True, default_persona="snapshot")
    query = authorize_query(redirect_uri=redirect_uri, state=state, extra="&connect_redirect=1")
    async with client_for(emu) as client:
        response = await client.get(authorize_path(query))
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(expected_prefix)
        # WeChat appends state even when the link had none.
        assert location.endswith(f"&state={state or ''}")
        code = parse_qs(urlsplit(location).query)["code"][0]
        token = await exchange(client, code)
    assert token["is_snapshotuser"] == 1
    assert token["openid"] == DEFAULT_PERSONAS[2].openid_for(DEFAULT_APP_ID)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "query",
    [
        # swapped parameters
        f"redirect_uri={quote(CALLBACK, safe='')}&appid={DEFAULT_APP_ID}"
        "&response_type=code&scope=snsapi_base&state=a",
        # state before scope
        f"appid={DEFAULT_APP_ID}&redirect_uri={quote(CALLBACK, safe='')}"
        "&response_type=code&state=a&scope=snsapi_base",
        # state after an extra parameter
        authorize_query(state=None, extra="&connect_redirect=1&state=a"),
        # a parameter missing
        f"appid={DEFAULT_APP_ID}&redirect_uri={quote(CALLBACK, safe='')}&scope=snsapi_base",
        # a parameter twice
        authorize_query(extra=f"&appid={DEFAULT_APP_ID}"),
        "",
    ],
)
async def test_wrong_parameter_order_is_refused(emu: WeChatEmulator, query: str) -> None:
    async with client_for(emu) as client:
        response = await client.get(authorize_path(query))
    assert response.status_code == 200
    assert error_marker(response.text) == "link-unavailable"
    assert "该链接无法访问" in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "marker"),
    [
        (authorize_query(appid=""), "10012"),
        (authorize_query(appid="wx0000000000000000"), "40013"),
        (authorize_query(redirect_uri=""), "10011"),
        (authorize_query().replace(quote(CALLBACK, safe=""), CALLBACK), "redirect-uri-invalid"),
        (
            authorize_query().replace(quote(CALLBACK, safe=""), "http%3A//localhost/cb"),
            "redirect-uri-invalid",
        ),
        (authorize_query(redirect_uri="ftp://localhost/cb"), "redirect-uri-invalid"),
        (authorize_query(redirect_uri="/wxauth/callback"), "redirect-uri-invalid"),
        (authorize_query(redirect_uri="http://evil.example/cb"), "10003"),
        (authorize_query(redirect_uri="http://localhost.evil.example/cb"), "10003"),
        (authorize_query(response_type="token"), "response-type-invalid"),
        (authorize_query(scope=""), "10010"),
        (authorize_query(scope="snsapi_login"), "10005"),
        (authorize_query(state="a" * 129), "state-invalid"),
        (authorize_query(state="ab-cd"), "state-invalid"),
        (authorize_query(state="ab.cd"), "state-invalid"),
        (authorize_query(state="ab%41"), "state-invalid"),
    ],
)
async def test_bad_links_get_wechats_error_page(
    emu: WeChatEmulator, query: str, marker: str
) -> None:
    async with client_for(emu) as client:
        response = await client.get(authorize_path(query))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert error_marker(response.text) == marker
    assert marker in response.text
    assert 'name="persona"' not in response.text


@pytest.mark.anyio
async def test_10003_page_says_so_in_chinese(emu: WeChatEmulator) -> None:
    query = authorize_query(redirect_uri="https://example.com/cb")
    async with client_for(emu) as client:
        response = await client.get(authorize_path(query))
    assert "redirect_uri 域名与后台配置不一致" in response.text
    assert "40013" not in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost:5000/cb",  # any port: a documented divergence for local development
        "https://LOCALHOST/cb",
        "http://127.0.0.1/cb?x=1#frag",
    ],
)
async def test_registered_domains_pass_whatever_the_port(
    emu: WeChatEmulator, redirect_uri: str
) -> None:
    async with client_for(emu) as client:
        response = await client.get(authorize_path(authorize_query(redirect_uri=redirect_uri)))
    assert error_marker(response.text) is None
    assert parse_form(response.text).radios


@pytest.mark.anyio
async def test_state_of_128_alphanumerics_is_accepted(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, auto_approve=True)
    state = "aZ9" * 42 + "xy"
    assert len(state) == 128
    async with client_for(emu) as client:
        response = await client.get(authorize_path(authorize_query(state=state)))
    assert callback_params(response)["state"] == [state]


@pytest.mark.anyio
async def test_custom_domains_replace_the_defaults(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, domains=("demo.test",), auto_approve=True)
    async with client_for(emu) as client:
        ok = await client.get(authorize_path(authorize_query(redirect_uri="http://demo.test/cb")))
        refused = await client.get(authorize_path(authorize_query()))
    assert ok.status_code == 302
    assert ok.headers["location"].startswith("http://demo.test/cb?code=")
    assert error_marker(refused.text) == "10003"


@pytest.mark.anyio
async def test_consent_post_is_validated_again(emu: WeChatEmulator) -> None:
    tampered = authorize_query(redirect_uri="http://evil.example/cb")
    async with client_for(emu) as client:
        form = parse_form((await client.get(authorize_path(authorize_query()))).text)
        evil = await client.post(
            form.action, data={"query": tampered, "persona": "xiaoming", "decision": "allow"}
        )
        assert evil.status_code == 200
        assert error_marker(evil.text) == "10003"

        no_persona = await client.post(form.action, data={**form.hidden, "decision": "allow"})
        assert no_persona.status_code == 400
        assert 'id="form-error"' in no_persona.text

        odd = await client.post(
            form.action, data={**form.hidden, "persona": "nobody", "decision": "allow"}
        )
        assert odd.status_code == 400

        undecided = await client.post(
            form.action, data={**form.hidden, "persona": "lily", "decision": "maybe"}
        )
        assert undecided.status_code == 400
        assert "set-cookie" not in undecided.headers


# -- code → token -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_access_token_success_fields(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code("xiaoming", "snsapi_base"))
    assert set(token) == {"access_token", "expires_in", "refresh_token", "openid", "scope"}
    assert token["expires_in"] == 7200
    assert token["scope"] == "snsapi_base"  # no unionid for snsapi_base
    assert len(token["openid"]) == 28
    assert token["openid"].startswith("o")
    assert token["access_token"] != token["refresh_token"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("persona", "scope", "unionid", "snapshot"),
    [
        ("xiaoming", "snsapi_userinfo", True, False),
        ("lily", "snsapi_userinfo", False, False),
        ("snapshot", "snsapi_userinfo", True, True),  # a virtual unionid
        ("snapshot", "snsapi_base", False, True),
        ("ctrl", "snsapi_base", False, False),
    ],
)
async def test_unionid_and_snapshot_flags(
    emu: WeChatEmulator, persona: str, scope: str, unionid: bool, snapshot: bool
) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code(persona, scope))
    assert ("unionid" in token) is unionid
    assert token.get("is_snapshotuser") == (1 if snapshot else None)


def test_openids_are_per_app_and_unionids_are_not() -> None:
    xiaoming = DEFAULT_PERSONAS[0]
    assert xiaoming.openid_for("wx1") == xiaoming.openid_for("wx1")
    assert xiaoming.openid_for("wx1") != xiaoming.openid_for("wx2")
    assert xiaoming.openid_for("wx1") != DEFAULT_PERSONAS[1].openid_for("wx1")
    assert xiaoming.unionid is not None
    assert len(xiaoming.unionid) == 28
    assert xiaoming.unionid.startswith("o")
    assert DEFAULT_PERSONAS[1].unionid is None
    assert re.fullmatch(r"o[A-Za-z0-9_-]{27}", xiaoming.openid_for(DEFAULT_APP_ID))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"appid": ""}, 41002),
        ({"appid": "wx0000000000000000"}, 40013),
        ({"secret": ""}, 41004),
        ({"secret": "wrong"}, 40125),
        ({"secret": "秘密"}, 40125),
        ({"grant_type": "client_credential"}, 40002),
        ({"code": ""}, 41008),
        ({"code": "0" * 32}, 40029),
    ],
)
async def test_access_token_errors(
    emu: WeChatEmulator, overrides: dict[str, str], errcode: int
) -> None:
    code = emu.issue_code()
    async with client_for(emu) as client:
        data = await exchange(client, code, **overrides)
        assert_error(data, errcode)
        if errcode != 40029:
            # A request refused before the code was looked at does not spend it.
            assert "access_token" in await exchange(client, code)


@pytest.mark.anyio
async def test_wrong_secret_message(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        data = await exchange(client, emu.issue_code(), secret="nope")
    # WeChat's words today, and its rid after a space, without the usual comma.
    assert data["errmsg"].startswith("invalid appsecret, view more at http://t.cn/RAEkdVq rid: ")


@pytest.mark.anyio
async def test_codes_are_single_use(emu: WeChatEmulator) -> None:
    code = emu.issue_code()
    async with client_for(emu) as client:
        assert "access_token" in await exchange(client, code)
        again = await exchange(client, code)
    assert_error(again, 40163)
    assert again["errmsg"].startswith("code been used, rid: ")


@pytest.mark.anyio
async def test_codes_expire_after_five_minutes(emu: WeChatEmulator, clock: Clock) -> None:
    fresh = emu.issue_code()
    stale = emu.issue_code()
    clock.advance(299)
    async with client_for(emu) as client:
        assert "access_token" in await exchange(client, fresh)
        clock.advance(1)
        expired = await exchange(client, stale)
        assert_error(expired, 42003)
        assert expired["errmsg"].startswith("code expired, rid: ")
        # Long after expiry the code is forgotten altogether.
        clock.advance(3600)
        assert_error(await exchange(client, stale), 40029)


@pytest.mark.anyio
async def test_a_code_for_another_app_is_invalid(clock: Clock) -> None:
    other = WeChatEmulator(app_id="wx1111111111111111", app_secret="s", clock=clock)
    emu = WeChatEmulator(clock=clock)
    async with client_for(emu) as client:
        data = await exchange(client, other.issue_code())
    assert_error(data, 40029)


@pytest.mark.anyio
async def test_every_error_has_a_fresh_rid(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        first = await exchange(client, "bad")
        second = await exchange(client, "bad")
    assert_error(first, 40029)
    assert_error(second, 40029)
    assert first["errmsg"] != second["errmsg"]


def test_issue_code_validates_its_arguments(emu: WeChatEmulator) -> None:
    with pytest.raises(ValueError, match="unknown persona"):
        emu.issue_code("nobody")
    with pytest.raises(ValueError, match="scope"):
        emu.issue_code(scope="snsapi_privateinfo")
    # snsapi_login codes are the website app's: tests/test_emulator_qrconnect.py.


# -- refresh ------------------------------------------------------------------------------


async def refresh(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    query = {"appid": DEFAULT_APP_ID, "grant_type": "refresh_token", **params}
    response = await client.get("/sns/oauth2/refresh_token", params=query)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    return body_json(response)


@pytest.mark.anyio
async def test_refresh_gives_a_new_access_token(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code("lily", "snsapi_userinfo"))
        clock.advance(7200)  # the first access token has just expired
        renewed = await refresh(client, refresh_token=token["refresh_token"])
        assert renewed["access_token"] != token["access_token"]
        assert renewed["refresh_token"] == token["refresh_token"]
        assert renewed["expires_in"] == 7200
        assert renewed["openid"] == token["openid"]
        assert renewed["scope"] == "snsapi_userinfo"
        check = await client.get(
            "/sns/auth", params={"access_token": renewed["access_token"], "openid": token["openid"]}
        )
        assert body_json(check) == {"errcode": 0, "errmsg": "ok"}


@pytest.mark.anyio
async def test_refresh_errors(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code())
        rt = token["refresh_token"]
        assert_error(await refresh(client, refresh_token="nope"), 40030)
        assert_error(await refresh(client, refresh_token=""), 41003)
        assert_error(await refresh(client, refresh_token=rt, grant_type="x"), 40002)
        assert_error(await refresh(client, refresh_token=rt, appid="wx0"), 40013)
        assert_error(await refresh(client, refresh_token=rt, appid=""), 41002)
        clock.advance(30 * 86400 - 1)
        assert "access_token" in await refresh(client, refresh_token=rt)
        clock.advance(1)
        assert_error(await refresh(client, refresh_token=rt), 42002)
        clock.advance(2 * 86400)
        assert_error(await refresh(client, refresh_token=rt), 40030)


# -- userinfo and auth --------------------------------------------------------------------


async def userinfo(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    response = await client.get("/sns/userinfo", params=params)
    assert response.status_code == 200
    # What WeChat sends: no charset, so a client that trusts the header garbles nicknames.
    assert response.headers["content-type"] == "text/plain"
    return response


@pytest.mark.anyio
async def test_userinfo_success(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code("xiaoming", "snsapi_userinfo"))
        response = await userinfo(
            client, access_token=token["access_token"], openid=token["openid"], lang="zh_CN"
        )
    data = body_json(response)
    persona = DEFAULT_PERSONAS[0]
    assert data == {
        "openid": token["openid"],
        "nickname": "小明🐼",
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": persona.headimgurl,
        "privilege": [],
        "unionid": persona.unionid,
    }
    # UTF-8 bytes, not \u escapes; slashes escaped the way WeChat does.
    assert "小明🐼".encode() in response.content
    assert b"https:\\/\\/thirdwx.qlogo.cn" in response.content


@pytest.mark.anyio
async def test_userinfo_quirky_personas(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        lily = await exchange(client, emu.issue_code("lily", "snsapi_userinfo"))
        ctrl = await exchange(client, emu.issue_code("ctrl", "snsapi_userinfo"))
        lily_info = await userinfo(
            client, access_token=lily["access_token"], openid=lily["openid"], lang="en"
        )
        ctrl_info = await userinfo(client, access_token=ctrl["access_token"], openid=ctrl["openid"])
    assert body_json(lily_info)["headimgurl"] == ""
    assert "unionid" not in body_json(lily_info)
    assert body_json(lily_info)["nickname"] == "Lily 🌸 李"
    # The raw BEL byte is in the body: strict JSON parsing fails, lenient parsing works.
    assert b"\x07" in ctrl_info.content
    assert b"\\u0007" not in ctrl_info.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(ctrl_info.content.decode())
    assert json.loads(ctrl_info.content.decode(), strict=False)["nickname"] == "控制\x07字符"


@pytest.mark.anyio
@pytest.mark.parametrize("lang", ["zh_CN", "zh_TW", "en", "fr", ""])
async def test_userinfo_answers_the_same_for_any_lang(emu: WeChatEmulator, lang: str) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code("lily", "snsapi_userinfo"))
        response = await userinfo(
            client, access_token=token["access_token"], openid=token["openid"], lang=lang
        )
    assert body_json(response)["nickname"] == "Lily 🌸 李"


@pytest.mark.anyio
async def test_userinfo_errors(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        full = await exchange(client, emu.issue_code("xiaoming", "snsapi_userinfo"))
        base = await exchange(client, emu.issue_code("xiaoming", "snsapi_base"))
        at, openid = full["access_token"], full["openid"]
        cases = [
            ({"access_token": "nope", "openid": openid}, 40001),
            ({"access_token": "", "openid": openid}, 41001),
            ({"access_token": at, "openid": ""}, 41009),
            ({"access_token": at, "openid": "o" + "x" * 27}, 40003),
            ({"access_token": base["access_token"], "openid": base["openid"]}, 48001),
        ]
        for params, errcode in cases:
            assert_error(body_json(await userinfo(client, **params)), errcode)
        unauthorized = body_json(
            await userinfo(client, access_token=base["access_token"], openid=base["openid"])
        )
        assert unauthorized["errmsg"].startswith("api unauthorized, rid: ")
        clock.advance(7200)
        assert_error(body_json(await userinfo(client, access_token=at, openid=openid)), 42001)


@pytest.mark.anyio
async def test_sns_auth(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code())
        at, openid = token["access_token"], token["openid"]

        async def auth(access_token: str, openid: str) -> dict[str, Any]:
            response = await client.get(
                "/sns/auth", params={"access_token": access_token, "openid": openid}
            )
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/plain"
            return body_json(response)

        assert await auth(at, openid) == {"errcode": 0, "errmsg": "ok"}
        assert_error(await auth("nope", openid), 40001)
        assert_error(await auth(at, DEFAULT_PERSONAS[1].openid_for(DEFAULT_APP_ID)), 40003)
        clock.advance(7199)
        assert (await auth(at, openid))["errcode"] == 0
        clock.advance(1)
        assert_error(await auth(at, openid), 42001)


# -- recorded calls -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_calls_are_recorded_in_query_order(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        await client.get("/sns/auth?openid=o1&access_token=t1")
        await client.get("/sns/oauth2/access_token?grant_type=authorization_code&code=c&appid=a")
        await client.get(authorize_path(authorize_query()))  # a browser page, not an API call
    assert emu.calls == [
        RecordedCall("/sns/auth", (("openid", "o1"), ("access_token", "t1"))),
        RecordedCall(
            "/sns/oauth2/access_token",
            (("grant_type", "authorization_code"), ("code", "c"), ("appid", "a")),
        ),
    ]
    assert emu.calls[1].param("code") == "c"
    assert emu.calls[1].param("secret") is None


@pytest.mark.anyio
async def test_recorded_calls_stay_bounded(
    emu: WeChatEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "MAX_RECORDED_CALLS", 10)
    async with client_for(emu) as client:
        for i in range(30):
            await client.get(f"/sns/auth?access_token=t{i}&openid=o")
    assert 10 <= len(emu.calls) <= 11
    assert emu.calls[-1].param("access_token") == "t29"


# -- faults -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_errcode_fault_applies_once(emu: WeChatEmulator) -> None:
    emu.inject("access_token", errcode=-1)
    async with client_for(emu) as client:
        failed = await exchange(client, emu.issue_code())
        assert_error(failed, -1)
        assert failed["errmsg"].startswith("system error, rid: ")
        assert "access_token" in await exchange(client, emu.issue_code())


@pytest.mark.anyio
async def test_http_status_fault(emu: WeChatEmulator) -> None:
    emu.inject(http_status=502, times=2)
    async with client_for(emu) as client:
        for _ in range(2):
            response = await client.get("/sns/auth", params={"access_token": "x", "openid": "y"})
            assert response.status_code == 502
            assert response.headers["content-type"].startswith("text/html")
            assert "502 Bad Gateway" in response.text
        after = await client.get("/sns/auth", params={"access_token": "x", "openid": "y"})
    assert after.status_code == 200


@pytest.mark.anyio
async def test_body_fault_is_served_raw(emu: WeChatEmulator) -> None:
    emu.inject("userinfo", body=b'{"openid": "trunc')
    async with client_for(emu) as client:
        auth = await client.get("/sns/auth", params={"access_token": "x", "openid": "y"})
        info = await client.get("/sns/userinfo", params={"access_token": "x", "openid": "y"})
    assert body_json(auth)["errcode"] == 40001  # another endpoint: untouched
    assert info.status_code == 200
    assert info.content == b'{"openid": "trunc'
    assert info.headers["content-type"] == "text/plain"


@pytest.mark.anyio
async def test_errcode_fault_on_userinfo_keeps_its_content_type(emu: WeChatEmulator) -> None:
    emu.inject("userinfo", errcode=45011)
    async with client_for(emu) as client:
        response = await userinfo(client, access_token="x", openid="y")
    assert_error(body_json(response), 45011)


@pytest.mark.anyio
async def test_latency_fault_delays_then_answers_normally(emu: WeChatEmulator) -> None:
    emu.inject("auth", latency=0.2)
    async with client_for(emu) as client:
        started = time.monotonic()
        slow = await client.get("/sns/auth", params={"access_token": "x", "openid": "y"})
        slow_elapsed = time.monotonic() - started
        started = time.monotonic()
        await client.get("/sns/auth", params={"access_token": "x", "openid": "y"})
        fast_elapsed = time.monotonic() - started
    assert slow_elapsed >= 0.2
    assert fast_elapsed < 0.2
    assert_error(body_json(slow), 40001)


@pytest.mark.anyio
async def test_permanent_faults_last_until_cleared(emu: WeChatEmulator) -> None:
    emu.inject(errcode=45009, times=None)
    async with client_for(emu) as client:
        for _ in range(5):
            assert_error(await exchange(client, "x"), 45009)
        emu.clear_faults()
        assert_error(await exchange(client, "x"), 40029)


@pytest.mark.anyio
async def test_latency_and_outcome_faults_combine(emu: WeChatEmulator) -> None:
    emu.inject(latency=0.05, times=None)
    emu.inject("access_token", errcode=-1)
    async with client_for(emu) as client:
        started = time.monotonic()
        assert_error(await exchange(client, "x"), -1)
        assert time.monotonic() - started >= 0.05
        assert_error(await exchange(client, "x"), 40029)


@pytest.mark.anyio
async def test_probability_faults_hit_some_calls(emu: WeChatEmulator) -> None:
    emu.inject("auth", errcode=-1, times=None, probability=0.5)
    codes = []
    async with client_for(emu) as client:
        for _ in range(100):
            response = await client.get("/sns/auth", params={"access_token": "x", "openid": "y"})
            codes.append(body_json(response)["errcode"])
    # The chance of either count being 0 with p=0.5 over 100 calls is 2**-99.
    assert codes.count(-1) > 0
    assert codes.count(40001) > 0
    assert set(codes) == {-1, 40001}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "authorize", "errcode": -1},
        {"latency": -1.0},
        {"latency": float("nan")},
        {"http_status": 99},
        {"errcode": -1, "times": 0},
        {"errcode": -1, "probability": 0.0},
        {"errcode": -1, "probability": 1.5},
        {},
    ],
)
def test_inject_rejects_bad_arguments(emu: WeChatEmulator, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        emu.inject(**kwargs)


@pytest.mark.anyio
async def test_fault_control_api(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        added = await client.post(
            "/_emulator/faults", json={"endpoint": "access_token", "body": "<html>oops</html>"}
        )
        assert added.status_code == 200
        assert added.json() == {"ok": True, "active": 1}
        raw = await client.get("/sns/oauth2/access_token", params={"appid": DEFAULT_APP_ID})
        assert raw.content == b"<html>oops</html>"

        await client.post("/_emulator/faults", json={"errcode": -1, "times": None})
        assert_error(await exchange(client, "x"), -1)
        cleared = await client.delete("/_emulator/faults")
        assert cleared.json() == {"ok": True, "active": 0}
        assert_error(await exchange(client, "x"), 40029)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"errcode": -1, "colour": "red"}',
        b'{"errcode": "-1"}',
        b'{"errcode": true}',
        b'{"latency": "slow"}',
        b'{"body": 5}',
        b'{"endpoint": "nowhere", "errcode": -1}',
        b"{}",
    ],
)
async def test_fault_control_api_rejects_bad_input(emu: WeChatEmulator, payload: bytes) -> None:
    async with client_for(emu) as client:
        response = await client.post(
            "/_emulator/faults", content=payload, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["ok"] is False
        assert response.json()["error"]
        assert_error(await exchange(client, "x"), 40029)  # nothing was injected


# -- safety -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["203.0.113.5", "10.0.0.2", "::ffff:192.0.2.1", "fe80::1", "x"])
async def test_remote_clients_are_refused(emu: WeChatEmulator, host: str) -> None:
    async with client_for(emu, client=(host, 5555)) as client:
        response = await client.get("/")
        token = await client.get("/sns/oauth2/access_token")
    assert response.status_code == 403
    assert "loopback" in response.text
    assert "allow_remote" in response.text
    assert token.status_code == 403


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_loopback_clients_are_served(emu: WeChatEmulator, host: str) -> None:
    async with client_for(emu, client=(host, 5555)) as client:
        response = await client.get("/")
    assert response.status_code == 200


@pytest.mark.anyio
async def test_allow_remote_serves_everyone(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, allow_remote=True)
    async with client_for(emu, client=("203.0.113.5", 5555)) as client:
        response = await client.get("/")
    assert response.status_code == 200


async def call_raw(app: Any, scope: dict[str, Any]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_a_scope_without_client_is_served(emu: WeChatEmulator) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": None,
        "server": ("127.0.0.1", 8400),
    }
    sent = await call_raw(emu, scope)
    assert sent[0]["status"] == 200


def test_repr_hides_the_secret(emu: WeChatEmulator) -> None:
    assert DEFAULT_APP_SECRET not in repr(emu)
    assert DEFAULT_APP_ID in repr(emu)


def test_the_rest_of_the_package_does_not_import_the_emulator() -> None:
    # The emulator must not ship into production by accident: only itself and the demo
    # (which embeds it on purpose) may import it.
    package = pathlib.Path(app_module.__file__).parents[1]
    importing = re.compile(r"^\s*(from|import)\s+[\w.]*emulator", re.MULTILINE)
    offenders = [
        str(source)
        for source in package.rglob("*.py")
        if not {"emulator", "demo", "demo.py"} & set(source.relative_to(package).parts)
        and importing.search(source.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# -- mounting -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_mounted_under_a_prefix(emu: WeChatEmulator) -> None:
    site = Starlette(routes=[Mount("/wx", app=emu)])
    async with client_for(site) as client:
        index = await client.get("/wx/")
        assert "/wx/sns/userinfo" in index.text
        assert f"api_base_url={BASE_URL}/wx<" in index.text
        page = await client.get(authorize_path(authorize_query(), prefix="/wx"))
        form = parse_form(page.text)
        assert form.action == "/wx/connect/oauth2/authorize/confirm"
        approved = await client.post(
            form.action, data={**form.hidden, "persona": "lily", "decision": "allow"}
        )
        assert "Path=/wx/connect/oauth2" in approved.headers["set-cookie"]
        code = callback_params(approved)["code"][0]
        silent = await client.get(
            authorize_path(authorize_query(scope="snsapi_base"), prefix="/wx")
        )
        assert "code" in callback_params(silent)
        response = await client.get(
            "/wx/sns/oauth2/access_token",
            params={
                "appid": DEFAULT_APP_ID,
                "secret": DEFAULT_APP_SECRET,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
    assert body_json(response)["openid"] == DEFAULT_PERSONAS[1].openid_for(DEFAULT_APP_ID)
    assert emu.calls[-1].path == "/sns/oauth2/access_token"


# -- construction and internals -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_id": ""}, "app_id"),
        ({"domains": "localhost"}, "sequence"),
        ({"domains": ()}, "at least one"),
        ({"domains": ("localhost:8000",)}, "port"),
        ({"domains": ("http://localhost",)}, "bare hostname"),
        ({"personas": ()}, "at least one"),
        ({"personas": (DEFAULT_PERSONAS[0], DEFAULT_PERSONAS[0])}, "unique"),
        ({"default_persona": "nobody"}, "default_persona"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeChatEmulator(**kwargs)


def test_ipv6_domains_are_accepted() -> None:
    assert WeChatEmulator(domains=("::1", " LocalHost ")).domains == ("::1", "localhost")


def test_persona_keys_must_be_cookie_safe() -> None:
    with pytest.raises(ValueError, match="key"):
        Persona(key="no spaces", nickname="x")
    assert Persona(key="ok_key-1", nickname="x").unionid is None


@pytest.mark.anyio
async def test_custom_personas(clock: Clock) -> None:
    bob = Persona(key="bob", nickname="Bob", has_unionid=True, sex=1, city="Shenzhen")
    emu = WeChatEmulator(clock=clock, personas=(bob,))
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code(scope="snsapi_userinfo"))
        info = await userinfo(client, access_token=token["access_token"], openid=token["openid"])
    assert body_json(info)["sex"] == 1
    assert body_json(info)["city"] == "Shenzhen"
    assert body_json(info)["unionid"] == bob.unionid


def test_grant_store_forgets_old_entries(clock: Clock) -> None:
    store = GrantStore(clock)
    for _ in range(50):
        store.issue_code("wx", "xiaoming", "snsapi_base")
        store.issue_tokens("wx", "xiaoming", "o1", "snsapi_base")
        clock.advance(60)
    codes, access, refresh_tokens = store.sizes()
    assert codes == 10  # 5 minutes of life plus 5 minutes answering "expired"
    assert access == 50  # 2 hours plus 2 hours
    assert refresh_tokens == 50
    clock.advance(32 * 86400)
    store.issue_code("wx", "xiaoming", "snsapi_base")
    assert store.sizes() == (1, 0, 0)


def test_grant_store_has_a_hard_cap(clock: Clock) -> None:
    store = GrantStore(clock, max_entries=5)
    codes = [store.issue_code("wx", "xiaoming", "snsapi_base") for _ in range(20)]
    assert store.sizes()[0] == 5
    assert store.redeem_code("wx", codes[-1]).persona_key == "xiaoming"


@pytest.mark.parametrize(
    "value",
    ['quote " and \\ backslash', "\\u0007 literal", "ctrl \x00\x1f\n\t", "a/b", "emoji 🐼"],
)
def test_wechat_json_round_trips(value: str) -> None:
    body = wechat_json({"s": value, "n": [1, -2.5, True, None]})
    assert json.loads(body.decode("utf-8"), strict=False) == {
        "s": value,
        "n": [1, -2.5, True, None],
    }
