"""WeCom's desktop login (wwlogin/sso/login, other_browsers="wecom_qr") through both adapters
against the emulator's sso page."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from wxauth_middleware import OfficialAccount, Rule
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET

from .support import CHROME_UA, WECHAT_UA, Stack, location, submit_emulator_form
from .wecom_support import (
    AGENT,
    CORP,
    SHARED_HOST,
    WECOM_HOST,
    visitor,
    wecom_app,
    wecom_emulator,
    wecom_site,
)

pytestmark = pytest.mark.anyio


async def test_a_desktop_browser_logs_in_with_wecom_s_desktop_login(stack: Stack) -> None:
    wecom_emulator(stack, auto_approve=False)
    app = wecom_site(stack, [wecom_app(stack, other_browsers="wecom_qr")])
    async with visitor(app, CHROME_UA) as client:
        start = await client.get(f"http://{WECOM_HOST}/approvals?id=7")
        url = location(start)
        parts = urlsplit(url)
        assert (
            f"{parts.scheme}://{parts.netloc}{parts.path}"
            == f"{stack.wechat_url}/wwlogin/sso/login"
        )
        query = parse_qsl(parts.query)
        assert [k for k, _ in query] == ["login_type", "appid", "agentid", "redirect_uri", "state"]
        params = dict(query)
        assert params["login_type"] == "CorpApp"
        assert params["appid"] == CORP
        assert params["agentid"] == str(AGENT)
        assert params["redirect_uri"] == f"http://{WECOM_HOST}/wxauth/callback"
        sso = await client.get(url)
        assert sso.status_code == 200
        assert sso.text.index("企业微信登录") < sso.text.index("Log in with WeCom")
        # Only members log in here: the non-member is not offered.
        assert 'value="guest"' not in sso.text
        confirmed = await submit_emulator_form(
            client, sso, button_id="wecom-allow", persona="lina", persona_offered=True
        )
        callback = await client.get(location(confirmed))
        assert location(callback) == "/approvals?id=7"
        page = await client.get(f"http://{WECOM_HOST}/approvals?id=7")
        user = page.json()["user"]
    assert user["userid"] == "LiNa"
    assert user["scope"] == "sso"


async def test_a_rule_sends_one_path_s_desktop_visitors_to_wecom(stack: Stack) -> None:
    wecom_emulator(stack)
    accounts = [
        OfficialAccount(DEFAULT_APP_ID, DEFAULT_APP_SECRET, hosts=[SHARED_HOST]),
        wecom_app(stack, hosts=[SHARED_HOST]),
    ]
    app = wecom_site(stack, accounts, rules=[Rule("/staff/*", other_browsers="wecom_qr")])
    async with visitor(app, CHROME_UA) as client:
        public = await client.get(f"http://{SHARED_HOST}/news")
        assert public.status_code == 200
        assert public.json()["user"] is None
        staff = await client.get(f"http://{SHARED_HOST}/staff/reports")
        assert "/wwlogin/sso/login?" in location(staff)
        # The login page is the emulator's (auto-approved: the first member).
        sso = await client.get(location(staff))
        callback = await client.get(location(sso))
        page = await client.get(f"http://{SHARED_HOST}{location(callback)}")
        assert page.json()["user"]["userid"] == "ZhangWei"
    async with visitor(app, WECHAT_UA) as client:
        # WeChat's browser still gets the Official Account there.
        wechat = await client.get(f"http://{SHARED_HOST}/staff/reports")
        assert dict(parse_qsl(urlsplit(location(wechat)).query))["appid"] == DEFAULT_APP_ID


def test_wecom_qr_needs_a_wecom_app(stack: Stack) -> None:
    with pytest.raises(ValueError, match="WeComApp"):
        stack.middleware(other_browsers="wecom_qr")
