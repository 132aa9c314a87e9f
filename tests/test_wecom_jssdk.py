"""The JS-SDK on a WeCom app's host, through both adapters against the emulator: the corp's
signature for wx.config and the app's for wx.agentConfig, each checked by the emulator as
WeCom checks them."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from wxauth_middleware.emulator.credentials import jsapi_signature

from .support import CHROME_UA, Stack
from .wecom_support import (
    AGENT,
    AGENT2,
    CORP,
    SECRET2,
    visitor,
    wecom_app,
    wecom_emulator,
    wecom_site,
)

pytestmark = pytest.mark.anyio
PAGE = "http://oa.example.com/reports?month=3"


async def test_the_endpoint_signs_wx_config_and_wx_agent_config(stack: Stack) -> None:
    emulator = wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app, CHROME_UA) as client:
        answer = await client.get(
            "http://oa.example.com/wxauth/jssdk", params={"url": PAGE + "#top"}
        )
        off_site = await client.get(
            "http://oa.example.com/wxauth/jssdk", params={"url": "http://evil.example/"}
        )
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    signed = answer.json()
    assert set(signed) == {"appId", "timestamp", "nonceStr", "signature", "agentConfig"}
    agent = signed["agentConfig"]
    assert set(agent) == {"corpid", "agentid", "timestamp", "nonceStr", "signature"}
    assert signed["appId"] == agent["corpid"] == CORP
    assert agent["agentid"] == AGENT
    assert emulator.wecom is not None
    corp_ticket = emulator.wecom.current_ticket("corp")
    app_ticket = emulator.wecom.current_ticket(f"agent:{AGENT}")
    assert corp_ticket is not None
    assert app_ticket is not None
    stamp = str(signed["timestamp"])
    assert signed["signature"] == jsapi_signature(corp_ticket, signed["nonceStr"], stamp, PAGE)
    assert agent["signature"] == jsapi_signature(
        app_ticket, agent["nonceStr"], str(agent["timestamp"]), PAGE
    )
    assert off_site.status_code == 400
    assert "error" in off_site.json()


async def test_the_emulator_checks_both_signatures_as_wecom_does(stack: Stack) -> None:
    wecom_emulator(stack)
    app = wecom_site(
        stack,
        [
            wecom_app(stack),
            wecom_app(stack, agent_id=AGENT2, secret=SECRET2, hosts=["app2.example.com"]),
        ],
    )
    async with visitor(app, CHROME_UA) as client:
        signed = (
            await client.get("http://oa.example.com/wxauth/jssdk", params={"url": PAGE})
        ).json()
        other = (
            await client.get(
                "http://app2.example.com/wxauth/jssdk", params={"url": "http://app2.example.com/"}
            )
        ).json()
    agent = signed["agentConfig"]
    async with httpx.AsyncClient(base_url=stack.wechat_url) as wecom:

        async def verdict(path: str, **params: object) -> dict[str, object]:
            response = await wecom.get(f"{path}?{urlencode(params)}")
            return dict(response.json())

        config = {k: signed[k] for k in ("appId", "timestamp", "nonceStr", "signature")}
        assert (await verdict("/_emulator/jsapi/verify", **config, url=PAGE))["ok"] is True
        moved = await verdict("/_emulator/jsapi/verify", **config, url=PAGE + "&x=1")
        assert moved["errMsg"] == "config:fail, invalid signature (40093)"
        assert (await verdict("/_emulator/jsapi/agent_verify", **agent, url=PAGE))["ok"] is True
        # wx.agentConfig signed with the corp's ticket (wechatpy's bug): 42012.
        swapped = {**agent, "nonceStr": signed["nonceStr"], "signature": signed["signature"]}
        wrong = await verdict("/_emulator/jsapi/agent_verify", **swapped, url=PAGE)
        assert wrong["errMsg"] == "agentConfig:fail, ticket of another app (42012)"
        # The second app's signature is not the first app's.
        theirs = {**other["agentConfig"], "agentid": AGENT}
        mixed = await verdict(
            "/_emulator/jsapi/agent_verify", **theirs, url="http://app2.example.com/"
        )
        assert mixed["ok"] is False
        untrusted = await verdict(
            "/_emulator/jsapi/agent_verify", **agent, url="http://elsewhere.example/"
        )
        assert untrusted["errMsg"] == "agentConfig:fail, domain not trusted (80001)"


async def test_every_answer_carries_agent_config_once_the_tickets_are_held(stack: Stack) -> None:
    wecom_emulator(stack)
    app = wecom_site(stack, [wecom_app(stack)])
    async with visitor(app, CHROME_UA) as client:
        answers = [
            (await client.get("http://oa.example.com/wxauth/jssdk", params={"url": PAGE})).json()
            for _ in range(3)
        ]
    for signed in answers:
        assert signed["appId"] == CORP
        assert signed["agentConfig"]["agentid"] == AGENT
