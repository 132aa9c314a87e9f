"""WeCom (企业微信) in-app login through both adapters against the emulator: members and a
non-member, both scopes, sessions, 401s, hosts shared with an Official Account."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import pytest

from wxauth_middleware import OfficialAccount, Rule, WeComApp, WeComUser
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxauth_middleware.emulator.wecom_pages import WECOM_PERSONA_COOKIE

from .redis_support import RedisServer
from .support import CHROME_UA, WECHAT_UA, Stack, location, shown, submit_emulator_form
from .wecom_support import (
    AGENT,
    AGENT2,
    CORP,
    OA_HOST,
    SECRET,
    SECRET2,
    SHARED_HOST,
    WECOM_HOST,
    follow_login,
    log_in,
    visitor,
    wecom_app,
    wecom_emulator,
    wecom_site,
)

pytestmark = pytest.mark.anyio


async def test_member_logs_in_silently_with_the_app(stack: Stack) -> None:
    wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        start = await client.get(f"http://{WECOM_HOST}/reports?month=3")
        url = location(start)
        # WeCom's parameters, in WeCom's order, then the fragment.
        query = urlsplit(url).query
        assert [k for k, _ in parse_qsl(query)] == [
            "appid",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "agentid",
        ]
        params = dict(parse_qsl(query))
        assert params["appid"] == CORP
        assert params["agentid"] == str(AGENT)
        assert params["scope"] == "snsapi_base"
        assert params["redirect_uri"] == f"http://{WECOM_HOST}/wxauth/callback"
        assert re.fullmatch(r"[A-Za-z0-9]{1,128}", params["state"])
        assert url.endswith("#wechat_redirect")
        authorize = await client.get(url)
        callback = await shown(client, location(authorize))
        assert location(callback) == "/reports?month=3"
        page = await client.get(f"http://{WECOM_HOST}/reports?month=3")
        user = page.json()["user"]
    assert user["kind"] == "wecom"
    assert user["corp_id"] == CORP
    assert user["agent_id"] == AGENT
    assert user["userid"] == "ZhangWei"
    assert user["identity"] == "ZhangWei"
    assert user["openid"] is None
    assert user["mobile"] is None
    assert user["scope"] == "snsapi_base"


async def test_privateinfo_asks_the_member_and_brings_their_details(stack: Stack) -> None:
    wecom_emulator(stack, auto_approve=False)
    app = wecom_site(stack, [wecom_app(stack, scope="snsapi_privateinfo")])
    async with visitor(app) as client:
        start = await client.get(f"http://{WECOM_HOST}/me")
        assert dict(parse_qsl(urlsplit(location(start)).query))["scope"] == "snsapi_privateinfo"
        consent = await client.get(location(start))
        assert consent.status_code == 200
        assert "申请获取你的以下信息" in consent.text  # WeCom's consent, Chinese first
        answer = await submit_emulator_form(
            client, consent, button_id="wecom-allow", persona="lina", persona_offered=True
        )
        callback = await shown(client, location(answer))
        page = await client.get(f"http://{WECOM_HOST}{location(callback)}")
        user = page.json()["user"]
    assert user["userid"] == "LiNa"
    assert user["scope"] == "snsapi_privateinfo"
    assert user["gender"] == "2"
    assert user["mobile"] == "13800000002"
    assert user["email"] == "lina@example.com"
    assert user["avatar"]
    assert user["avatar"].startswith("https://")


async def test_a_refused_consent_is_a_declined_login(stack: Stack) -> None:
    wecom_emulator(stack, auto_approve=False)
    app = wecom_site(stack, [wecom_app(stack, scope="snsapi_privateinfo")])
    async with visitor(app) as client:
        start = await client.get(f"http://{WECOM_HOST}/me")
        consent = await client.get(location(start))
        answer = await submit_emulator_form(
            client, consent, button_id="wecom-refuse", persona="lina"
        )
        refused = await client.get(location(answer))
        assert refused.status_code == 403
        assert refused.text.index("你已拒绝企业微信登录") < refused.text.index("declined")
        # WeCom's visitors read of WeCom, not WeChat.
        assert "WeCom login was declined" in refused.text
        assert "微信" not in refused.text.replace("企业微信", "")
        again = await client.get(f"http://{WECOM_HOST}/me")
        assert again.status_code == 302  # still no session


async def test_a_non_member_has_an_openid_and_an_external_userid(stack: Stack) -> None:
    wecom_emulator(stack, auto_approve=False)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        start = await client.get(f"http://{WECOM_HOST}/page")
        chooser = await client.get(location(start))
        answer = await submit_emulator_form(
            client, chooser, button_id="wecom-allow", persona="guest", persona_offered=True
        )
        assert WECOM_PERSONA_COOKIE in answer.headers.get("set-cookie", "")
        callback = await shown(client, location(answer))
        page = await client.get(f"http://{WECOM_HOST}{location(callback)}")
        user = page.json()["user"]
    assert user["userid"] is None
    assert user["openid"]
    assert user["external_userid"]
    assert user["identity"] == user["openid"]


async def test_a_non_member_of_a_privateinfo_app_is_asked_once(stack: Stack) -> None:
    wecom_emulator(stack, auto_approve=False)
    app = wecom_site(stack, [wecom_app(stack, scope="snsapi_privateinfo")])
    async with visitor(app) as client:
        start = await client.get(f"http://{WECOM_HOST}/page")
        consent = await client.get(location(start))
        answer = await submit_emulator_form(
            client, consent, button_id="wecom-allow", persona="guest", persona_offered=True
        )
        callback = await client.get(location(answer))
        # Nothing more to ask a non-member for: the page, not another round at WeCom.
        page = await client.get(f"http://{WECOM_HOST}{location(callback)}")
        assert page.status_code == 200
        user = page.json()["user"]
    assert user["openid"]
    assert user["mobile"] is None
    assert user["scope"] == "snsapi_privateinfo"


async def test_the_session_holds_and_api_calls_get_401_json(stack: Stack) -> None:
    wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app) as client:
        api = await client.get(
            f"http://{WECOM_HOST}/api/items", headers={"accept": "application/json"}
        )
        assert api.status_code == 401
        body = api.json()
        assert body["error"] == "login_required"
        assert "agentid=" in body["authorize_url"]
        user = await log_in(client)
        again = await client.get(
            f"http://{WECOM_HOST}/api/items", headers={"accept": "application/json"}
        )
        assert again.status_code == 200
        assert again.json()["user"] == user
    assert stack.switchboard.emulator is not None
    # The app's token was asked for once, with the app's own secret.
    assert stack.switchboard.emulator.call_count("/cgi-bin/gettoken") == 1


async def test_other_browsers_pass_or_are_refused_on_a_wecom_host(stack: Stack) -> None:
    wecom_emulator(stack)
    refusing = wecom_app(
        stack, other_browsers="refuse", agent_id=AGENT2, secret=SECRET2, hosts=["app2.example.com"]
    )
    app = wecom_site(stack, [wecom_app(stack), refusing])
    async with visitor(app, CHROME_UA) as client:
        passed = await client.get(f"http://{WECOM_HOST}/page")
        assert passed.status_code == 200
        assert passed.json()["user"] is None
        refused = await client.get("http://app2.example.com/page")
        assert refused.status_code == 403
        assert refused.text.index("请在企业微信中打开") < refused.text.index("Open in WeCom")
    async with visitor(app, WECHAT_UA) as client:
        # WeChat's browser is not WeCom's: no WeCom login starts for it.
        passed = await client.get(f"http://{WECOM_HOST}/page")
        assert passed.status_code == 200
        assert passed.json()["user"] is None


async def test_one_host_wecom_browser_gets_the_app_wechat_the_official_account(
    stack: Stack,
) -> None:
    wecom_emulator(stack)
    accounts = [
        OfficialAccount(DEFAULT_APP_ID, DEFAULT_APP_SECRET, hosts=[OA_HOST, SHARED_HOST]),
        wecom_app(stack, hosts=[SHARED_HOST, WECOM_HOST]),
    ]
    app = wecom_site(stack, accounts)
    async with visitor(app) as client:
        start, _ = await follow_login(client, SHARED_HOST)
        assert dict(parse_qsl(urlsplit(location(start)).query))["appid"] == CORP
        page = await client.get(f"http://{SHARED_HOST}/page")
        assert page.json()["user"]["kind"] == "wecom"
        # The WeCom session is no session on another host of the Official Account.
        other = await client.get(f"http://{OA_HOST}/page")
        assert other.status_code == 200
        assert other.json()["user"] is None
    async with visitor(app, WECHAT_UA) as client:
        start, callback = await follow_login(client, SHARED_HOST)
        assert dict(parse_qsl(urlsplit(location(start)).query))["appid"] == DEFAULT_APP_ID
        page = await client.get(f"http://{SHARED_HOST}{location(callback)}")
        assert page.json()["user"] == {
            "kind": "wechat",
            "openid": page.json()["user"]["openid"],
            "app_id": DEFAULT_APP_ID,
        }


async def test_two_apps_of_one_corp_keep_their_own_tokens(stack: Stack) -> None:
    emulator = wecom_emulator(stack)
    second = wecom_app(stack, agent_id=AGENT2, secret=SECRET2, hosts=["app2.example.com"])
    app = wecom_site(stack, [wecom_app(stack), second])
    async with visitor(app) as client:
        first_user = await log_in(client, WECOM_HOST)
        second_user = await log_in(client, "app2.example.com")
    assert first_user["agent_id"] == AGENT
    assert second_user["agent_id"] == AGENT2
    secrets_used = [
        call.param("corpsecret") for call in emulator.calls if call.path == "/cgi-bin/gettoken"
    ]
    assert set(secrets_used) == {SECRET, SECRET2}
    assert len(secrets_used) == 2


async def test_on_login_gets_the_wecom_user_and_may_veto(stack: Stack) -> None:
    wecom_emulator(stack)
    seen: list[Any] = []

    def on_login(user: Any, request: Any) -> bool:
        seen.append(user)
        return False

    app = wecom_site(stack, [wecom_app(stack)], on_login=on_login)
    async with visitor(app) as client:
        _, callback = await follow_login(client, WECOM_HOST)
        assert callback.status_code == 403
    assert isinstance(seen[0], WeComUser)
    assert seen[0].userid == "ZhangWei"


def test_wecom_app_checks_its_options() -> None:
    with pytest.raises(ValueError, match="corp_id"):
        WeComApp(corp_id="corp", agent_id=AGENT, secret="s")
    with pytest.raises(ValueError, match="agent_id"):
        WeComApp(corp_id=CORP, agent_id="1000002", secret="s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret"):
        WeComApp(corp_id=CORP, agent_id=AGENT, secret="")
    with pytest.raises(ValueError, match="scope"):
        WeComApp(corp_id=CORP, agent_id=AGENT, secret="s", scope="snsapi_userinfo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="other_browsers"):
        WeComApp(corp_id=CORP, agent_id=AGENT, secret="s", other_browsers="scan")
    with pytest.raises(ValueError, match="port"):
        WeComApp(corp_id=CORP, agent_id=AGENT, secret="s", hosts=["oa.example.com:8000"])
    app = WeComApp(corp_id=CORP, agent_id=AGENT, secret="the-secret", hosts=["OA.example.com"])
    assert app.hosts == ("oa.example.com",)
    assert "the-secret" not in repr(app)


async def test_wecom_s_domain_verification_file_is_served(stack: Stack) -> None:
    wecom_emulator(stack)
    files = {"WW_verify_Ab12Cd34.txt": "Ab12Cd34xyz"}
    app = wecom_site(stack, [wecom_app(stack)], verify_files=files)
    async with visitor(app, CHROME_UA) as client:
        served = await client.get(f"http://{WECOM_HOST}/WW_verify_Ab12Cd34.txt")
    assert served.status_code == 200
    assert served.text == "Ab12Cd34xyz"
    with pytest.raises(ValueError, match="WW_verify_"):
        wecom_site(stack, [wecom_app(stack)], verify_files={"XX_verify_a.txt": "a"})


async def test_the_app_s_api_on_another_origin_than_wechat_s(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # WeChat's api.weixin.qq.com and WeCom's qyapi.weixin.qq.com: two origins (here two names
    # of the emulator), each pooled by the ASGI middleware (no proxy, no transport).
    for env in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(env, raising=False)
    emulator = wecom_emulator(stack)
    port = urlsplit(stack.wechat_url).port
    elsewhere = f"http://localhost:{port}"
    accounts = [
        OfficialAccount(DEFAULT_APP_ID, DEFAULT_APP_SECRET, hosts=[OA_HOST]),
        wecom_app(stack),
    ]
    app = wecom_site(stack, accounts, api_base_url=elsewhere)
    async with visitor(app) as client:
        user = await log_in(client)
    assert user["userid"] == "ZhangWei"
    assert emulator.call_count("/cgi-bin/auth/getuserinfo") == 1


async def test_an_accounts_callable_may_answer_a_wecom_app(stack: Stack) -> None:
    wecom_emulator(stack)
    app_of_host = wecom_app(stack)

    def accounts(host: str) -> WeComApp | None:
        return app_of_host if host == WECOM_HOST else None

    app = wecom_site(stack, accounts)  # type: ignore[arg-type]
    async with visitor(app) as client:
        user = await log_in(client)
        elsewhere = await client.get(f"http://{OA_HOST}/page")
    assert user["userid"] == "ZhangWei"
    assert elsewhere.json()["user"] is None


def test_with_redis_a_wecom_session_is_kept_under_the_app_s_keys(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    wecom_emulator(stack)
    options = {"redis_url": redis_server.url, "redis_prefix": redis_prefix}

    async def visit() -> dict[str, Any]:
        app = wecom_site(stack, [wecom_app(stack, scope="snsapi_privateinfo")], **options)
        async with visitor(app) as client:
            await log_in(client)
            # Another instance reads the stored session.
            other = wecom_site(stack, [wecom_app(stack, scope="snsapi_privateinfo")], **options)
            async with visitor(other) as second:
                second.cookies = client.cookies
                page = await second.get(f"http://{WECOM_HOST}/page")
        user: dict[str, Any] = page.json()["user"]
        return user

    user = anyio.run(visit)
    assert user["userid"] == "ZhangWei"
    assert user["mobile"] == "13800000001"
    redis = redis_server.client()
    assert redis.keys(f"{redis_prefix}wecom:{CORP}:{AGENT}:session:*")


async def test_a_rule_asking_for_the_profile_asks_wecom_for_privateinfo(stack: Stack) -> None:
    wecom_emulator(stack)
    rules = [Rule("/me", scope="snsapi_userinfo"), Rule("/health", exempt=True)]
    app = wecom_site(stack, [wecom_app(stack)], rules=rules)
    async with visitor(app) as client:
        health = await client.get(f"http://{WECOM_HOST}/health")
        assert health.status_code == 200
        user = await log_in(client)  # /page: the app's silent scope
        assert user["scope"] == "snsapi_base"
        # The profile page asks once more, for WeCom's snsapi_privateinfo.
        again = await client.get(f"http://{WECOM_HOST}/me")
        assert dict(parse_qsl(urlsplit(location(again)).query))["scope"] == "snsapi_privateinfo"
        authorize = await client.get(location(again))
        callback = await client.get(location(authorize))
        page = await client.get(f"http://{WECOM_HOST}{location(callback)}")
        upgraded = page.json()["user"]
    assert upgraded["scope"] == "snsapi_privateinfo"
    assert upgraded["mobile"] == "13800000001"


async def test_a_member_outside_the_visible_range_shares_no_details(stack: Stack) -> None:
    wecom_emulator(stack, auto_approve=False)
    app = wecom_site(stack, [wecom_app(stack, scope="snsapi_privateinfo")])
    async with visitor(app) as client:
        start = await client.get(f"http://{WECOM_HOST}/page")
        consent = await client.get(location(start))
        answer = await submit_emulator_form(
            client, consent, button_id="wecom-allow", persona="wangfang", persona_offered=True
        )
        callback = await client.get(location(answer))
        page = await client.get(f"http://{WECOM_HOST}{location(callback)}")
        user = page.json()["user"]
    assert user["userid"] == "WangFang"
    assert user["mobile"] is None
    assert stack.switchboard.emulator is not None
    assert stack.switchboard.emulator.call_count("/cgi-bin/auth/getuserdetail") == 0
