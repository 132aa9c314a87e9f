"""The emulator's website QR-code login (网站应用微信登录): /connect/qrconnect and its codes."""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
    Persona,
    WeChatEmulator,
)

from .emulator_support import (
    BASE_URL,
    CALLBACK,
    Clock,
    FormParser,
    assert_error,
    authorize_query,
    body_json,
    callback_params,
    client_for,
    error_marker,
)
from .emulator_support import exchange as exchange_code

XIAOMING, LILY, SNAPSHOT, CTRL = DEFAULT_PERSONAS
SCANNERS = [XIAOMING.key, LILY.key, CTRL.key]


# A website app's QR-code login link: the authorize link's parameters, other defaults.
link_query = partial(
    authorize_query, appid=DEFAULT_WEBSITE_APP_ID, scope="snsapi_login", state="web42"
)


def qrconnect_path(query: str, prefix: str = "") -> str:
    return f"{prefix}/connect/qrconnect?{query}"


class ScanForm(FormParser):
    """The QR-code page's form: the consent form's parts, each radio's id checked, and each
    button's name and value."""

    def __init__(self) -> None:
        super().__init__()
        # id -> (name, value)
        self.buttons: dict[str, tuple[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("type") == "radio" and a.get("name") == "persona":
            assert a["id"] == f"persona-{a['value']}"
        elif tag == "button":
            self.buttons[a["id"]] = (a["name"], a["value"])
        super().handle_starttag(tag, attrs)

    def submit(self, button_id: str, persona: str | None = None) -> dict[str, str]:
        """The fields a browser posts when `button_id` is clicked."""
        name, value = self.buttons[button_id]
        data = {**self.hidden, name: value}
        if persona is not None:
            data["persona"] = persona
        return data


def scan_form(html_text: str) -> ScanForm:
    parser = ScanForm()
    parser.feed(html_text)
    return parser


async def exchange(
    client: httpx.AsyncClient,
    code: str,
    *,
    appid: str = DEFAULT_WEBSITE_APP_ID,
    secret: str = DEFAULT_WEBSITE_APP_SECRET,
) -> dict[str, Any]:
    """A code exchanged for the website app's token (by default)."""
    return await exchange_code(client, code, appid=appid, secret=secret)


async def scan(client: httpx.AsyncClient, persona: str, *, state: str = "web42") -> str:
    """Open the QR-code page, scan as `persona` and confirm; the code the site gets."""
    page = await client.get(qrconnect_path(link_query(state=state)))
    form = scan_form(page.text)
    response = await client.post(form.action, data=form.submit("scan-confirm", persona))
    params = callback_params(response)
    assert params["state"] == [state]
    return params["code"][0]


# -- the QR-code page ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_qrconnect_page_shows_a_fake_qr_code_and_the_scanners(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query()))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert error_marker(response.text) is None
    assert "WeChat emulator — scan simulation" in response.text
    assert '<svg id="qrcode"' in response.text
    assert 'id="appid">' + DEFAULT_WEBSITE_APP_ID in response.text
    assert "snsapi_login" in response.text
    assert "location.hash" in response.text  # the #wechat_redirect check, as on the consent page
    # Self-contained: nothing is fetched from elsewhere.
    for needle in ("<img", "src=", "<link", "url("):
        assert needle not in response.text
    form = scan_form(response.text)
    assert form.action == "/connect/qrconnect/confirm"
    assert form.hidden == {"query": link_query()}
    # A snapshot-mode user exists only inside WeChat's in-app browser: it cannot scan.
    assert form.radios == SCANNERS
    assert form.checked == XIAOMING.key
    assert set(form.buttons) == {"scan-confirm", "scan-cancel"}
    assert "扫码并确认 / Scan and confirm" in response.text
    assert "\x07" not in response.text


@pytest.mark.anyio
async def test_the_fake_qr_code_is_stable_per_link(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        first = await client.get(qrconnect_path(link_query(state="a1")))
        again = await client.get(qrconnect_path(link_query(state="a1")))
        other = await client.get(qrconnect_path(link_query(state="b2")))

    def svg(text: str) -> str:
        start = text.index("<svg")
        return text[start : text.index("</svg>", start)]

    assert svg(first.text) == svg(again.text)
    assert svg(first.text) != svg(other.text)


@pytest.mark.anyio
async def test_a_snapshot_default_persona_is_not_preselected(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, default_persona=SNAPSHOT.key)
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query()))
    form = scan_form(response.text)
    assert SNAPSHOT.key not in form.radios
    assert form.checked == XIAOMING.key


# WeChat's own wxLogin.js builds the iframe's link in this order, without response_type.
WX_LOGIN_JS_QUERY = (
    f"appid={DEFAULT_WEBSITE_APP_ID}&scope=snsapi_login&redirect_uri={quote(CALLBACK, safe='')}"
    "&state=web42&login_type=jssdk&self_redirect=default&styletype=&sizetype=&bgcolor=&rst="
    "&href="
)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "query",
    [
        WX_LOGIN_JS_QUERY,
        # social-core puts state first.
        f"state=web42&appid={DEFAULT_WEBSITE_APP_ID}&redirect_uri={quote(CALLBACK, safe='')}"
        "&response_type=code&scope=snsapi_login",
        f"redirect_uri={quote(CALLBACK, safe='')}&appid={DEFAULT_WEBSITE_APP_ID}"
        "&response_type=code&scope=snsapi_login&state=web42",
        link_query(state=None, extra="&lang=cn&state=web42"),
    ],
)
async def test_any_parameter_order_is_accepted(clock: Clock, query: str) -> None:
    # The strict order is the authorize link's rule only: qrconnect takes WeChat's own order.
    emu = WeChatEmulator(clock=clock, auto_approve=True)
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(query))
        params = callback_params(response)
        assert params["state"] == ["web42"]
        token = await exchange(client, params["code"][0])
    assert token["scope"] == "snsapi_login"


@pytest.mark.anyio
async def test_the_wx_login_js_page_does_not_ask_for_the_fragment(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        framed = await client.get(qrconnect_path(WX_LOGIN_JS_QUERY))
        documented = await client.get(qrconnect_path(link_query()))
    assert error_marker(framed.text) is None
    assert "location.hash" not in framed.text  # wxLogin.js's iframe has no #wechat_redirect
    assert "location.hash" in documented.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "query",
    [
        f"scope=snsapi_login&redirect_uri={quote(CALLBACK, safe='')}&state=a",
        f"appid={DEFAULT_WEBSITE_APP_ID}&redirect_uri={quote(CALLBACK, safe='')}&state=a",
        f"appid={DEFAULT_WEBSITE_APP_ID}&scope=snsapi_login&state=a",
        link_query(extra="&scope=snsapi_login"),
        link_query(state="a", extra="&state=b"),
        "",
    ],
)
async def test_missing_or_repeated_parameters_are_refused(emu: WeChatEmulator, query: str) -> None:
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(query))
    assert response.status_code == 200
    assert error_marker(response.text) == "link-unavailable"
    assert "该链接无法访问" in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "marker"),
    [
        (link_query(appid=""), "10012"),
        # The Official Account's appid: real WeChat says "Scope 参数错误或没有 Scope 权限".
        (link_query(appid=DEFAULT_APP_ID), "not-website-app"),
        (link_query(appid="wx0000000000000000"), "40013"),
        (link_query(redirect_uri=""), "10011"),
        (link_query().replace(quote(CALLBACK, safe=""), CALLBACK), "redirect-uri-invalid"),
        (link_query(redirect_uri="ftp://localhost/cb"), "redirect-uri-invalid"),
        (link_query(redirect_uri="http://evil.example/cb"), "10003"),
        (link_query(response_type="token"), "response-type-invalid"),
        (link_query(scope=""), "10010"),
        (link_query(scope="snsapi_userinfo"), "10005"),
        (link_query(scope="snsapi_base"), "10005"),
        (link_query(scope="snsapi_login,snsapi_userinfo"), "10005"),
        (link_query(state="a" * 129), "state-invalid"),
        (link_query(state="ab-cd"), "state-invalid"),
    ],
)
async def test_bad_links_get_wechats_error_page(
    emu: WeChatEmulator, query: str, marker: str
) -> None:
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(query))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert error_marker(response.text) == marker
    assert 'name="persona"' not in response.text
    assert "<svg" not in response.text


@pytest.mark.anyio
async def test_official_account_appid_page_explains_the_mix_up(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query(appid=DEFAULT_APP_ID)))
    assert "Scope 参数错误或没有 Scope 权限" in response.text
    assert DEFAULT_WEBSITE_APP_ID in response.text  # the appid to use instead


@pytest.mark.anyio
async def test_qrconnect_checks_the_state_and_accepts_128_alphanumerics(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, auto_approve=True)
    state = "Qr9" * 42 + "zz"
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query(state=state)))
    assert callback_params(response)["state"] == [state]


@pytest.mark.anyio
async def test_authorize_refuses_the_website_appid_with_10016(emu: WeChatEmulator) -> None:
    query = link_query(scope="snsapi_userinfo")  # the website appid on the OA's authorize link
    async with client_for(emu) as client:
        response = await client.get(f"/connect/oauth2/authorize?{query}")
    assert error_marker(response.text) == "10016"
    assert "不支持微信开放平台的Appid" in response.text


@pytest.mark.anyio
async def test_without_a_website_app_qrconnect_refuses_every_appid(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, website_app_id=None)
    async with client_for(emu) as client:
        website = await client.get(qrconnect_path(link_query()))
        official = await client.get(qrconnect_path(link_query(appid=DEFAULT_APP_ID)))
        authorize = await client.get(f"/connect/oauth2/authorize?{link_query(scope='snsapi_base')}")
        token = await exchange(client, "0" * 32)
    assert error_marker(website.text) == "40013"
    assert error_marker(official.text) == "not-website-app"
    assert error_marker(authorize.text) == "40013"  # no website app, so no 10016 either
    assert_error(token, 40013)
    assert emu.website_app_secret is None


# -- scanning -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_scan_and_confirm_redirects_with_code_and_state(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        page = await client.get(qrconnect_path(link_query(state="desk1")))
        form = scan_form(page.text)
        response = await client.post(form.action, data=form.submit("scan-confirm", LILY.key))
        params = callback_params(response)
        token = await exchange(client, params["code"][0])
    assert params["state"] == ["desk1"]
    assert len(params["code"][0]) == 32
    assert "set-cookie" not in response.headers
    assert token["scope"] == "snsapi_login"
    assert token["openid"] == LILY.openid_for(DEFAULT_WEBSITE_APP_ID)
    assert "unionid" not in token  # lily's account has no Open Platform binding


@pytest.mark.anyio
async def test_scan_cancel_redirects_with_state_and_no_code(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        form = scan_form((await client.get(qrconnect_path(link_query()))).text)
        response = await client.post(form.action, data=form.submit("scan-cancel"))
    assert callback_params(response) == {"state": ["web42"]}
    assert "set-cookie" not in response.headers


@pytest.mark.anyio
async def test_scan_keeps_the_redirect_uris_own_query(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, auto_approve=True)
    query = link_query(redirect_uri=CALLBACK + "?next=%2Fa", state=None)
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(query))
    location = response.headers["location"]
    assert location.startswith(f"{CALLBACK}?next=%2Fa&code=")
    assert location.endswith("&state=")


@pytest.mark.anyio
async def test_confirm_post_is_validated_again(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        form = scan_form((await client.get(qrconnect_path(link_query()))).text)
        confirm = form.submit("scan-confirm", XIAOMING.key)

        tampered = await client.post(
            form.action, data={**confirm, "query": link_query(appid=DEFAULT_APP_ID)}
        )
        assert error_marker(tampered.text) == "not-website-app"
        evil = await client.post(
            form.action,
            data={**confirm, "query": link_query(redirect_uri="http://evil.example/cb")},
        )
        assert error_marker(evil.text) == "10003"

        snapshot = await client.post(form.action, data={**confirm, "persona": SNAPSHOT.key})
        assert snapshot.status_code == 400
        assert 'id="form-error"' in snapshot.text
        assert "snapshot-mode user" in snapshot.text
        assert scan_form(snapshot.text).radios == SCANNERS

        nobody = await client.post(form.action, data={**confirm, "persona": "nobody"})
        assert nobody.status_code == 400
        assert "Choose a persona." in nobody.text

        undecided = await client.post(form.action, data={**confirm, "decision": "maybe"})
        assert undecided.status_code == 400
        assert "location.hash" not in undecided.text  # a form error, not a fresh link


@pytest.mark.anyio
async def test_auto_approve_scans_as_the_default_persona(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, auto_approve=True, default_persona=CTRL.key)
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query(extra="&lang=en")))
        params = callback_params(response)
        token = await exchange(client, params["code"][0])
    assert params["state"] == ["web42"]
    assert token["openid"] == CTRL.openid_for(DEFAULT_WEBSITE_APP_ID)
    assert token["unionid"] == CTRL.unionid


@pytest.mark.anyio
async def test_auto_approve_refuses_a_snapshot_default_persona(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, auto_approve=True, default_persona=SNAPSHOT.key)
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query()))
    assert response.status_code == 200
    assert error_marker(response.text) == "snapshot-persona"
    assert "--persona" in response.text


@pytest.mark.anyio
async def test_no_scanner_persona_at_all(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, personas=(SNAPSHOT,))
    async with client_for(emu) as client:
        response = await client.get(qrconnect_path(link_query()))
    assert error_marker(response.text) == "snapshot-persona"


# -- codes and tokens ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_same_unionid_on_desktop_and_in_wechat_different_openids(
    emu: WeChatEmulator,
) -> None:
    async with client_for(emu) as client:
        website = await exchange(client, await scan(client, XIAOMING.key))
        official = await exchange(
            client,
            emu.issue_code(XIAOMING.key, "snsapi_userinfo"),
            appid=DEFAULT_APP_ID,
            secret=DEFAULT_APP_SECRET,
        )
    assert set(website) == {
        "access_token",
        "expires_in",
        "refresh_token",
        "openid",
        "scope",
        "unionid",
    }
    assert website["unionid"] == official["unionid"] == XIAOMING.unionid
    assert website["openid"] != official["openid"]
    assert website["openid"] == XIAOMING.openid_for(DEFAULT_WEBSITE_APP_ID)
    assert official["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert website["expires_in"] == 7200


@pytest.mark.anyio
async def test_codes_are_bound_to_their_app(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        website_code = await scan(client, XIAOMING.key)
        official_code = emu.issue_code(XIAOMING.key, "snsapi_userinfo")
        assert_error(
            await exchange(client, website_code, appid=DEFAULT_APP_ID, secret=DEFAULT_APP_SECRET),
            40029,
        )
        assert_error(await exchange(client, official_code), 40029)
        # Each app's own secret: the other's is a wrong AppSecret.
        assert_error(await exchange(client, website_code, secret=DEFAULT_APP_SECRET), 40125)
        token = await exchange(client, website_code)
        assert token["scope"] == "snsapi_login"
        assert_error(await exchange(client, website_code), 40163)


@pytest.mark.anyio
async def test_website_codes_expire_like_any_other(emu: WeChatEmulator, clock: Clock) -> None:
    code = emu.issue_code(LILY.key, "snsapi_login")
    clock.advance(300)
    async with client_for(emu) as client:
        assert_error(await exchange(client, code), 42003)


@pytest.mark.anyio
async def test_userinfo_auth_and_refresh_with_a_snsapi_login_token(
    emu: WeChatEmulator, clock: Clock
) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, await scan(client, XIAOMING.key))
        at, openid = token["access_token"], token["openid"]
        info = await client.get(
            "/sns/userinfo", params={"access_token": at, "openid": openid, "lang": "zh_CN"}
        )
        assert info.headers["content-type"] == "text/plain"
        assert body_json(info) == {
            "openid": XIAOMING.openid_for(DEFAULT_WEBSITE_APP_ID),
            "nickname": XIAOMING.nickname,
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": XIAOMING.headimgurl,
            "privilege": [],
            "unionid": XIAOMING.unionid,
        }
        # The Official Account's openid for the same person does not match this token.
        wrong = await client.get(
            "/sns/userinfo",
            params={"access_token": at, "openid": XIAOMING.openid_for(DEFAULT_APP_ID)},
        )
        assert_error(body_json(wrong), 40003)
        check = await client.get("/sns/auth", params={"access_token": at, "openid": openid})
        assert body_json(check) == {"errcode": 0, "errmsg": "ok"}

        clock.advance(7200)
        refresh_params = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        renewed = body_json(
            await client.get(
                "/sns/oauth2/refresh_token",
                params={"appid": DEFAULT_WEBSITE_APP_ID, **refresh_params},
            )
        )
        assert renewed["scope"] == "snsapi_login"
        assert renewed["openid"] == openid
        other_app = body_json(
            await client.get(
                "/sns/oauth2/refresh_token", params={"appid": DEFAULT_APP_ID, **refresh_params}
            )
        )
        assert_error(other_app, 40030)


@pytest.mark.anyio
async def test_issue_code_mints_website_codes(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        token = await exchange(client, emu.issue_code(CTRL.key, "snsapi_login"))
        default = await exchange(client, emu.issue_code(scope="snsapi_login"))
    assert token["openid"] == CTRL.openid_for(DEFAULT_WEBSITE_APP_ID)
    assert token["unionid"] == CTRL.unionid
    assert default["openid"] == XIAOMING.openid_for(DEFAULT_WEBSITE_APP_ID)
    with pytest.raises(ValueError, match="snapshot-mode"):
        emu.issue_code(SNAPSHOT.key, "snsapi_login")
    with pytest.raises(ValueError, match="website_app_id=None"):
        WeChatEmulator(website_app_id=None).issue_code(scope="snsapi_login")


# -- configuration, index page, mounting --------------------------------------------------


@pytest.mark.anyio
async def test_custom_website_app(clock: Clock) -> None:
    bob = Persona(key="bob", nickname="Bob", has_unionid=True)
    emu = WeChatEmulator(
        clock=clock,
        personas=(bob,),
        website_app_id="wx1234567890abcdef",
        website_app_secret="s3cret",
        auto_approve=True,
    )
    query = link_query(appid="wx1234567890abcdef")
    async with client_for(emu) as client:
        code = callback_params(await client.get(qrconnect_path(query)))["code"][0]
        token = await exchange(client, code, appid="wx1234567890abcdef", secret="s3cret")
        default_id = await client.get(qrconnect_path(link_query()))
    assert token["unionid"] == bob.unionid
    assert error_marker(default_id.text) == "40013"
    assert emu.website_app_secret == "s3cret"
    assert "s3cret" not in repr(emu)
    assert "wx1234567890abcdef" in repr(emu)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"website_app_id": ""}, "website_app_id=None"),
        ({"website_app_secret": None}, "non-empty"),
        ({"website_app_secret": ""}, "non-empty"),
        ({"website_app_id": DEFAULT_APP_ID}, "differ"),
    ],
)
def test_bad_website_app_configuration_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeChatEmulator(**kwargs)


def test_secrets_are_readable_but_not_in_repr(emu: WeChatEmulator) -> None:
    assert emu.app_secret == DEFAULT_APP_SECRET
    assert emu.website_app_secret == DEFAULT_WEBSITE_APP_SECRET
    assert DEFAULT_WEBSITE_APP_SECRET not in repr(emu)


@pytest.mark.anyio
async def test_index_page_lists_the_qrconnect_endpoint(clock: Clock) -> None:
    async with client_for(WeChatEmulator(clock=clock)) as client:
        enabled = await client.get("/")
    async with client_for(WeChatEmulator(clock=clock, website_app_id=None)) as client:
        disabled = await client.get("/")
    assert "/connect/qrconnect" in enabled.text
    assert f'id="website-appid">{DEFAULT_WEBSITE_APP_ID}<' in enabled.text
    assert f"qrconnect_url={BASE_URL}/connect/qrconnect" in enabled.text
    assert DEFAULT_WEBSITE_APP_SECRET not in enabled.text
    assert "website QR-code login is disabled" in disabled.text


@pytest.mark.anyio
async def test_qrconnect_mounted_under_a_prefix(emu: WeChatEmulator) -> None:
    site = Starlette(routes=[Mount("/wx", app=emu)])
    async with client_for(site) as client:
        page = await client.get(qrconnect_path(link_query(), prefix="/wx"))
        form = scan_form(page.text)
        assert form.action == "/wx/connect/qrconnect/confirm"
        response = await client.post(form.action, data=form.submit("scan-confirm", LILY.key))
        code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
        token = await client.get(
            "/wx/sns/oauth2/access_token",
            params={
                "appid": DEFAULT_WEBSITE_APP_ID,
                "secret": DEFAULT_WEBSITE_APP_SECRET,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
    assert body_json(token)["openid"] == LILY.openid_for(DEFAULT_WEBSITE_APP_ID)
