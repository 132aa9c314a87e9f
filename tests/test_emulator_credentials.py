"""The emulator's account credentials (stable_token, the old token API, jsapi_ticket,
user/info), its JS-SDK stand-in, and the WeChat fidelity of its API answers: methods, paths,
content types, errmsg forms, the fault API's same-origin rule."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator
from wxauth_middleware.emulator.credentials import jsapi_signature
from wxauth_middleware.errors import WeChatAPIError

from .browser_support import DESKTOP_UA, WECHAT_UA, browser_page
from .emulator_support import (
    BASE_URL,
    Clock,
    assert_error,
    authorize_path,
    authorize_query,
    body_json,
    client_for,
    exchange,
)
from .support import serve

STABLE = "/cgi-bin/stable_token"
CGI_JSON = "application/json; encoding=utf-8"

# WeChat's published example (JS-SDK doc, appendix 1).
VECTOR_TICKET = (
    "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
)
VECTOR = ("Wm3WZYTPz0wzccnW", "1414587457", "http://mp.weixin.qq.com?params=value")
VECTOR_SIGNATURE = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


async def stable_token(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "grant_type": "client_credential",
        "appid": DEFAULT_APP_ID,
        "secret": DEFAULT_APP_SECRET,
        **overrides,
    }
    response = await client.post(STABLE, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == CGI_JSON
    return body_json(response)


async def legacy_token(client: httpx.AsyncClient) -> str:
    params = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID}
    response = await client.get("/cgi-bin/token", params={**params, "secret": DEFAULT_APP_SECRET})
    token: str = body_json(response)["access_token"]
    return token


async def getticket(client: httpx.AsyncClient, token: str, kind: str = "jsapi") -> dict[str, Any]:
    response = await client.get(
        "/cgi-bin/ticket/getticket", params={"access_token": token, "type": kind}
    )
    assert response.status_code == 200
    return body_json(response)


pytestmark = pytest.mark.anyio


# -- stable_token and the old token API --------------------------------------------------------


async def test_stable_token_is_the_same_while_valid(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        first = await stable_token(client)
        clock.advance(100)
        again = await stable_token(client, force_refresh=False)
    assert set(first) == {"access_token", "expires_in"}
    assert len(first["access_token"]) >= 512
    assert first["expires_in"] == 7200
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 7100  # what is left of it


async def test_force_refresh_issues_a_new_token_and_invalidates_the_old(
    emu: WeChatEmulator,
) -> None:
    async with client_for(emu) as client:
        old = (await stable_token(client))["access_token"]
        new = (await stable_token(client, force_refresh=True))["access_token"]
        assert new != old
        assert_error(await getticket(client, old), 40001)
        assert (await getticket(client, new))["errcode"] == 0


async def test_the_old_token_api_invalidates_the_previous_token_five_minutes_later(
    emu: WeChatEmulator, clock: Clock
) -> None:
    async with client_for(emu) as client:
        stable = (await stable_token(client))["access_token"]
        first = await legacy_token(client)
        clock.advance(1000)
        second = await legacy_token(client)  # another instance starting up: the classic trap
        assert first != second
        clock.advance(299)
        assert (await getticket(client, first))["errcode"] == 0  # both valid for 5 minutes
        clock.advance(1)
        assert_error(await getticket(client, first), 40001)  # "not latest", not "expired"
        assert (await getticket(client, second))["errcode"] == 0
        # The two APIs are isolated: the stable token survived both.
        assert (await getticket(client, stable))["errcode"] == 0
    assert emu.call_count("/cgi-bin/token") == 2
    assert emu.call_count(STABLE) == 1


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"secret": "wrong"}, 40125),
        ({"appid": "wx0000000000000000"}, 40013),
        ({"appid": ""}, 41002),
        ({"secret": ""}, 41004),
        ({"grant_type": "authorization_code"}, 40002),
        ({"force_refresh": "yes"}, 40097),
    ],
)
async def test_stable_token_errors(
    emu: WeChatEmulator, overrides: dict[str, Any], errcode: int
) -> None:
    async with client_for(emu) as client:
        assert_error(await stable_token(client, **overrides), errcode)


async def test_stable_token_wants_a_json_post(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        as_get = await client.get(STABLE, params={"appid": DEFAULT_APP_ID})
        as_form = await client.post(STABLE, data={"appid": DEFAULT_APP_ID})
    assert as_get.status_code == 200
    assert_error(body_json(as_get), 43002)
    assert_error(body_json(as_form), 47001)


async def test_concurrent_callers_are_counted(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        answers = await asyncio.gather(*(stable_token(client) for _ in range(50)))
    assert len({a["access_token"] for a in answers}) == 1
    assert emu.call_count(STABLE) == 50
    params = dict(emu.calls[0].params)
    assert params["grant_type"] == "client_credential"


async def test_tokens_expire_and_can_be_invalidated(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        token = (await stable_token(client))["access_token"]
        clock.advance(7200)
        assert_error(await getticket(client, token), 42001)
        fresh = (await stable_token(client))["access_token"]
        assert fresh != token
        emu.invalidate_account_tokens()
        assert_error(await getticket(client, fresh), 40001)
        assert (await stable_token(client))["access_token"] != fresh


# -- jsapi_ticket ------------------------------------------------------------------------------


async def test_getticket(emu: WeChatEmulator, clock: Clock) -> None:
    assert emu.jsapi_ticket() is None
    async with client_for(emu) as client:
        token = (await stable_token(client))["access_token"]
        ticket = await getticket(client, token)
        assert {k: ticket[k] for k in ("errcode", "errmsg", "expires_in")} == {
            "errcode": 0,
            "errmsg": "ok",
            "expires_in": 7200,
        }
        assert emu.jsapi_ticket() == ticket["ticket"]
        assert (await getticket(client, token))["ticket"] == ticket["ticket"]  # while valid
        assert_error(await getticket(client, token, kind="card"), 40097)
        assert_error(await getticket(client, token, kind=""), 40097)
        assert_error(await getticket(client, ""), 41001)
        assert_error(await getticket(client, "nope"), 40001)
        emu.inject("getticket", errcode=45009)
        assert_error(await getticket(client, token), 45009)
        clock.advance(7200)
        assert emu.jsapi_ticket() is None
    assert emu.call_count("/cgi-bin/ticket/getticket") == 7


# -- user/info ---------------------------------------------------------------------------------


async def test_user_info_tells_followers(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        token = (await stable_token(client))["access_token"]

        async def info(persona: str) -> dict[str, Any]:
            openid = next(p for p in emu.personas if p.key == persona).openid_for(DEFAULT_APP_ID)
            params = {"access_token": token, "openid": openid, "lang": "zh_CN"}
            response = await client.get("/cgi-bin/user/info", params=params)
            return body_json(response)

        follower = await info("xiaoming")
        stranger = await info("lily")
        unknown = body_json(
            await client.get(
                "/cgi-bin/user/info", params={"access_token": token, "openid": "oNobody"}
            )
        )
        bad_token = body_json(
            await client.get("/cgi-bin/user/info", params={"access_token": "x", "openid": "o"})
        )
    assert follower["subscribe"] == 1
    assert follower["unionid"] == emu.personas[0].unionid
    # Present but empty since 2021-12-27.
    profile = ("nickname", "sex", "city", "province", "country", "headimgurl")
    assert {key: follower[key] for key in profile} == {
        "nickname": "",
        "sex": 0,
        "city": "",
        "province": "",
        "country": "",
        "headimgurl": "",
    }
    assert stranger == {"subscribe": 0, "openid": emu.personas[1].openid_for(DEFAULT_APP_ID)}
    assert_error(unknown, 40003)
    assert_error(bad_token, 40001)


# -- the JS-SDK signature and the stand-in script ----------------------------------------------


def test_signature_matches_wechats_published_example() -> None:
    assert jsapi_signature(VECTOR_TICKET, *VECTOR) == VECTOR_SIGNATURE


async def _verify(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/_emulator/jsapi/verify", params=params)


async def test_verify_checks_against_the_current_ticket(emu: WeChatEmulator) -> None:
    url = "http://localhost:8000/share?x=1"
    async with client_for(emu) as client:
        config = {"appId": DEFAULT_APP_ID, "nonceStr": "n0nce", "timestamp": "1414587457"}
        before = await _verify(client, **config, signature="0" * 40, url=url)
        token = (await stable_token(client))["access_token"]
        ticket = (await getticket(client, token))["ticket"]
        signature = jsapi_signature(ticket, "n0nce", "1414587457", url)
        good = await _verify(client, **config, signature=signature, url=url)
        other_url = await _verify(client, **config, signature=signature, url=url + "&y=2")
        other_app = await _verify(
            client, **{**config, "appId": "wx0000000000000000"}, signature=signature, url=url
        )
    assert "getticket" in before.json()["reason"]
    assert good.json() == {"ok": True, "errMsg": "config:ok"}
    assert good.headers["access-control-allow-origin"] == "*"
    assert other_url.json()["errMsg"] == "config:invalid signature"
    assert other_url.json()["realAuthUrl"] == url + "&y=2"
    assert other_app.json()["ok"] is False
    assert ticket not in str([before.json(), other_url.json()])  # the verdict never leaks it


async def test_the_script_is_served(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        script = await client.get("/open/js/jweixin-1.6.0.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert "wx.config" in script.text or "config: function" in script.text


# -- WeChat's answers to anything --------------------------------------------------------------


async def test_sns_apis_take_a_posted_form(emu: WeChatEmulator) -> None:
    form = {
        "appid": DEFAULT_APP_ID,
        "secret": DEFAULT_APP_SECRET,
        "code": emu.issue_code(),
        "grant_type": "authorization_code",
    }
    async with client_for(emu) as client:
        response = await client.post("/sns/oauth2/access_token", data=form)
    assert response.status_code == 200
    assert "access_token" in body_json(response)


async def test_head_spends_no_code(emu: WeChatEmulator) -> None:
    code = emu.issue_code()
    async with client_for(emu) as client:
        params = {"appid": DEFAULT_APP_ID, "secret": DEFAULT_APP_SECRET, "code": code}
        head = await client.head(
            "/sns/oauth2/access_token", params={**params, "grant_type": "authorization_code"}
        )
        assert head.status_code == 200
        assert "access_token" in await exchange(client, code)


@pytest.mark.parametrize(
    ("method", "path", "errcode"),
    [
        ("PUT", "/sns/oauth2/access_token", 43001),
        ("DELETE", "/sns/userinfo", 43001),
        ("POST", "/cgi-bin/ticket/getticket", 43001),
        ("PATCH", STABLE, 43002),
        ("GET", "/cgi-bin/nowhere", 40066),
        ("POST", "/sns/nowhere", 40066),
    ],
)
async def test_anything_else_is_http_200_with_an_errcode(
    emu: WeChatEmulator, method: str, path: str, errcode: int
) -> None:
    async with client_for(emu) as client:
        response = await client.request(method, path)
    assert response.status_code == 200
    assert_error(body_json(response), errcode)


async def test_rid_comes_with_and_without_the_comma(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        bad_secret = await exchange(client, emu.issue_code(), secret="nope")
        bad_code = await exchange(client, "0" * 32)
    assert " rid: " in bad_secret["errmsg"]
    assert ", rid: " not in bad_secret["errmsg"]
    assert ", rid: " in bad_code["errmsg"]
    for answer in (bad_secret, bad_code):
        error = WeChatAPIError(answer["errcode"], answer["errmsg"], endpoint="x")
        assert error.rid is not None
        assert answer["errmsg"].endswith(error.rid)


async def test_consent_page_shows_control_characters_visibly(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        page = await client.get(authorize_path(authorize_query()))
    assert "控制\\x07字符" in page.text
    assert "\x07" not in page.text
    assert "\u2407" not in page.text  # a control picture: a missing glyph in most fonts
    assert "real WeChat refuses" not in page.text
    async with client_for(emu) as client:
        code = emu.issue_code("ctrl", "snsapi_userinfo")
        token = await exchange(client, code)
        info = await client.get(
            "/sns/userinfo",
            params={"access_token": token["access_token"], "openid": token["openid"]},
        )
    assert body_json(info)["nickname"] == "控制\x07字符"  # the API still sends the raw byte


# -- the fault API: this origin's own scripts only ---------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "application/json", "origin": "http://evil.example"}, 403),
        ({"content-type": "application/json", "origin": "null"}, 403),
        ({"content-type": "application/json", "sec-fetch-site": "cross-site"}, 403),
        ({"content-type": "application/json", "sec-fetch-site": "same-site"}, 403),
    ],
)
async def test_fault_api_refuses_other_sites(
    emu: WeChatEmulator, headers: dict[str, str], status: int
) -> None:
    async with client_for(emu) as client:
        response = await client.post(
            "/_emulator/faults", content=b'{"errcode": -1, "times": null}', headers=headers
        )
        cleared = await client.delete("/_emulator/faults", headers=headers)
        assert response.status_code == status
        assert response.json()["ok"] is False
        assert response.json()["error"]
        if "origin" in headers or "sec-fetch-site" in headers:
            assert cleared.status_code == 403
        assert_error(await exchange(client, "x"), 40029)  # nothing was injected


async def test_fault_api_accepts_its_own_origin(emu: WeChatEmulator) -> None:
    headers = {"origin": BASE_URL, "sec-fetch-site": "same-origin"}
    async with client_for(emu) as client:
        response = await client.post("/_emulator/faults", json={"errcode": -1}, headers=headers)
        assert response.json() == {"ok": True, "active": 1}
        assert_error(await exchange(client, "x"), -1)


# -- the stand-in script in a real browser -----------------------------------------------------


def _site(wechat: str) -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(
            f'<!doctype html><meta charset="utf-8"><script src="{wechat}/open/js/jweixin-1.6.0.js">'
            "</script><p>share</p>"
        )

    return Starlette(routes=[Route("/{path:path}", page)])


CONFIGURE = """([appId, timestamp, nonceStr, signature]) => new Promise((resolve) => {
  wx.config({appId, timestamp, nonceStr, signature, jsApiList: ["updateAppMessageShareData"]});
  wx.error((res) => resolve(res.errMsg));
  wx.ready(() => wx.updateAppMessageShareData({
    title: "t", desc: "d", link: location.href, imgUrl: "",
    success: (res) => resolve(res.errMsg),
  }));
})"""


@pytest.mark.parametrize(
    ("user_agent", "signed"),
    [(WECHAT_UA, "entry"), (DESKTOP_UA, "current")],
    ids=["iphone", "other"],
)
def test_wx_config_verifies_the_url_wechat_would_use(
    browser: Browser, user_agent: str, signed: str
) -> None:
    emulator = WeChatEmulator()
    with serve(emulator) as wechat, serve(_site(wechat)) as site:
        with httpx.Client(base_url=wechat, trust_env=False) as client:
            token = client.post(
                STABLE,
                json={
                    "grant_type": "client_credential",
                    "appid": DEFAULT_APP_ID,
                    "secret": DEFAULT_APP_SECRET,
                },
            ).json()["access_token"]
            ticket = client.get(
                "/cgi-bin/ticket/getticket", params={"access_token": token, "type": "jsapi"}
            ).json()["ticket"]
        entry, current = f"{site}/app?from=share", f"{site}/app/item/7"
        url = entry if signed == "entry" else current
        args = [
            DEFAULT_APP_ID,
            1414587457,
            "n0nce",
            jsapi_signature(ticket, "n0nce", "1414587457", url),
        ]
        wrong = [
            *args[:3],
            jsapi_signature(ticket, "n0nce", "1414587457", current if url == entry else entry),
        ]
        with browser_page(browser, user_agent=user_agent, scenario=f"jssdk-{signed}") as page:
            messages: list[str] = []
            page.on("console", lambda message: messages.append(message.text))
            page.goto(entry + "#top")
            page.evaluate("history.pushState(null, '', '/app/item/7#photo')")
            assert page.evaluate(CONFIGURE, args) == "updateAppMessageShareData:ok"
            assert page.evaluate(CONFIGURE, wrong) == "config:invalid signature"
    assert any(f"realAuthUrl {url} " in m for m in messages), messages
