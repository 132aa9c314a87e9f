"""The emulator as strict as a live Official Account: stable_token's renewal and forced-refresh
rules, the card ticket, today's error wording, and the go-live settings (IP allow-list,
JS接口安全域名, daily and per-minute quotas), each off by default."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator
from wxauth_middleware.emulator.credentials import jsapi_signature

from .emulator_support import Clock, assert_error, body_json, client_for
from .test_emulator_credentials import getticket, legacy_token, stable_token

pytestmark = pytest.mark.anyio

# Beijing midnight after the test clock's start (2023-11-15 06:13:20 in Beijing).
NEXT_BEIJING_MIDNIGHT = 1_700_064_000.0


async def forced(client: httpx.AsyncClient) -> str:
    token: str = (await stable_token(client, force_refresh=True))["access_token"]
    return token


async def valid(client: httpx.AsyncClient, token: str) -> bool:
    answer = await getticket(client, token)
    return bool(answer["errcode"] == 0)


# -- stable_token ------------------------------------------------------------------------------


async def test_a_forced_refresh_within_30_seconds_does_not_refresh(
    emu: WeChatEmulator, clock: Clock
) -> None:
    async with client_for(emu) as client:
        first = await forced(client)
        clock.advance(1)
        again = await forced(client)  # "否则不会刷新": the current token, still valid
        assert again == first
        assert await valid(client, first)
        clock.advance(29)
        third = await forced(client)
        assert third != first
        assert not await valid(client, first)


async def test_forced_refreshes_are_limited_to_20_a_day(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        tokens = []
        for _ in range(21):
            tokens.append(await forced(client))
            clock.advance(30)
        assert len(set(tokens)) == 20  # the 21st answered the 20th token again
        assert tokens[-1] == tokens[-2]
        assert await valid(client, tokens[-1])
        clock.now = NEXT_BEIJING_MIDNIGHT  # a new day in Beijing: 20 more
        assert await forced(client) != tokens[-1]


async def test_stable_token_renews_in_its_last_five_minutes(
    emu: WeChatEmulator, clock: Clock
) -> None:
    async with client_for(emu) as client:
        old = await stable_token(client)
        clock.advance(7200 - 301)
        still = await stable_token(client)
        assert still == {"access_token": old["access_token"], "expires_in": 301}
        clock.advance(101)  # 200 s left: the next token, while the old one stays valid
        renewed = await stable_token(client)
        assert renewed["access_token"] != old["access_token"]
        assert renewed["expires_in"] == 7200
        assert await valid(client, old["access_token"])
        assert await valid(client, renewed["access_token"])
        assert (await stable_token(client))["access_token"] == renewed["access_token"]
        clock.advance(200)  # the old one's end
        assert_error(await getticket(client, old["access_token"]), 40001)
        assert await valid(client, renewed["access_token"])


async def test_stable_token_never_answers_less_than_300_seconds(
    emu: WeChatEmulator, clock: Clock
) -> None:
    seen = []
    async with client_for(emu) as client:
        for _ in range(60):
            seen.append((await stable_token(client))["expires_in"])
            clock.advance(250)
    assert min(seen) >= 300
    assert max(seen) == 7200


# -- the old token API, tickets, user/info ------------------------------------------------------


async def test_the_previous_legacy_token_stays_valid_five_minutes(
    emu: WeChatEmulator, clock: Clock
) -> None:
    async with client_for(emu) as client:
        first = await legacy_token(client)
        second = await legacy_token(client)
        assert await valid(client, first)
        clock.advance(299)
        assert await valid(client, first)
        clock.advance(1)
        assert_error(await getticket(client, first), 40001)
        assert await valid(client, second)


async def test_getticket_serves_the_card_ticket(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        token = (await stable_token(client))["access_token"]
        card = await getticket(client, token, kind="wx_card")
        jsapi = await getticket(client, token)
        card_again = await getticket(client, token, kind="wx_card")
    assert card["errcode"] == 0
    assert card["expires_in"] == 7200
    assert card["ticket"] != jsapi["ticket"]  # a ticket of its own
    assert card_again["ticket"] == card["ticket"]
    assert emu.jsapi_ticket() == jsapi["ticket"]  # pages are signed with the jsapi one


async def test_getticket_says_7200_while_valid(emu: WeChatEmulator, clock: Clock) -> None:
    async with client_for(emu) as client:
        token = (await stable_token(client))["access_token"]
        first = await getticket(client, token)
        clock.advance(3600)
        later = await getticket(client, token)
        clock.advance(7199)  # 7200 s after the last answer, not after the first
        assert emu.jsapi_ticket() == first["ticket"]
        clock.advance(1)
        assert emu.jsapi_ticket() is None
    assert later == {**first, "expires_in": 7200}


async def test_todays_wording_of_40001_and_41002(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        bad_token = await getticket(client, "nope")
        no_appid = await stable_token(client, appid="")
    assert re.fullmatch(
        r"invalid credential, access_token is invalid or not latest, could get access_token by "
        r"getStableAccessToken, more details at https://mmbizurl\.cn/s/JtxxFh33r "
        r"rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}",
        bad_token["errmsg"],
    )
    assert re.fullmatch(r"appid missing rid: [0-9a-f-]{26}", no_appid["errmsg"])


# -- the IP allow-list --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["stable_token", "token"])
async def test_token_calls_from_outside_the_ip_allowlist_get_40164(clock: Clock, path: str) -> None:
    emu = WeChatEmulator(
        clock=clock, ip_allowlist=["203.0.113.7", "198.51.100.0/24"], allow_remote=True
    )
    params = {"grant_type": "client_credential", "appid": DEFAULT_APP_ID}
    params["secret"] = DEFAULT_APP_SECRET
    async with client_for(emu, client=("192.0.2.10", 5000)) as client:
        if path == "stable_token":
            refused = await stable_token(client)
        else:
            refused = body_json(await client.get("/cgi-bin/token", params=params))
    assert_error(refused, 40164)
    assert re.fullmatch(
        r"invalid ip 192\.0\.2\.10 ipv6 ::ffff:192\.0\.2\.10, not in whitelist rid: [0-9a-f-]{26}",
        refused["errmsg"],
    )
    for caller in ("203.0.113.7", "198.51.100.42", "::ffff:203.0.113.7"):
        async with client_for(emu, client=(caller, 5000)) as client:
            assert "access_token" in await stable_token(client), caller


async def test_an_empty_allowlist_refuses_everyone_and_none_is_off(clock: Clock) -> None:
    strict = WeChatEmulator(clock=clock, ip_allowlist=[])
    relaxed = WeChatEmulator(clock=clock, allow_remote=True)
    async with client_for(strict) as client:
        assert_error(await stable_token(client), 40164)
    async with client_for(relaxed, client=("192.0.2.10", 1)) as client:
        token = (await stable_token(client))["access_token"]
    # Only the token calls are checked: the other APIs take the token from anywhere.
    allowed = WeChatEmulator(clock=clock, ip_allowlist=["127.0.0.1"], allow_remote=True)
    async with client_for(allowed) as client:
        token = (await stable_token(client))["access_token"]
    async with client_for(allowed, client=("192.0.2.10", 1)) as client:
        assert await valid(client, token)


async def test_an_injected_40164_speaks_like_wechat(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, allow_remote=True)
    emu.inject("stable_token", errcode=40164)
    async with client_for(emu, client=("192.0.2.99", 1)) as client:
        refused = await stable_token(client)
    assert refused["errmsg"].startswith(
        "invalid ip 192.0.2.99 ipv6 ::ffff:192.0.2.99, not in whitelist rid: "
    )


# -- quotas -------------------------------------------------------------------------------------


async def test_the_daily_quota_answers_45009_until_beijing_midnight(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, daily_quota=3)
    async with client_for(emu) as client:
        answers = [await stable_token(client) for _ in range(4)]
        token = answers[0]["access_token"]
        assert await valid(client, token)  # each API has its own quota
        clock.now = NEXT_BEIJING_MIDNIGHT - 1
        assert_error(await stable_token(client), 45009)
        clock.now = NEXT_BEIJING_MIDNIGHT
        assert "access_token" in await stable_token(client)
    assert all("access_token" in a for a in answers[:3])
    assert_error(answers[3], 45009)
    assert re.fullmatch(r"reach max api daily quota limit rid: [0-9a-f-]{26}", answers[3]["errmsg"])


async def test_the_minute_quota_answers_45011_until_the_next_minute(clock: Clock) -> None:
    clock.now = 1_700_000_080.0  # 20 s before a minute ends
    emu = WeChatEmulator(clock=clock, minute_quota=2)
    async with client_for(emu) as client:
        answers = [await stable_token(client) for _ in range(3)]
        clock.advance(20)
        after = await stable_token(client)
    assert_error(answers[2], 45011)
    assert answers[2]["errmsg"].startswith(
        "api minute-quota reach limit  mustslower  retry next minute rid: "
    )
    assert "access_token" in after


async def test_clear_quota_resets_the_days_calls(clock: Clock) -> None:
    emu = WeChatEmulator(clock=clock, daily_quota=2)

    async def clear(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
        response = await client.post(
            "/cgi-bin/clear_quota", params={"access_token": token}, json={"appid": DEFAULT_APP_ID}
        )
        return body_json(response)

    async with client_for(emu) as client:
        token = (await stable_token(client))["access_token"]
        await stable_token(client)
        assert_error(await stable_token(client), 45009)
        assert await clear(client, token) == {"errcode": 0, "errmsg": "ok"}
        assert (await stable_token(client))["access_token"] == token
        for _ in range(9):
            assert (await clear(client, token))["errcode"] == 0
        assert_error(await clear(client, token), 48006)  # ten a month


# -- JS接口安全域名 ---------------------------------------------------------------------------


async def _signed_verify(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    token = (await stable_token(client))["access_token"]
    ticket = (await getticket(client, token))["ticket"]
    config = {"appId": DEFAULT_APP_ID, "nonceStr": "n0nce", "timestamp": "1414587457"}
    signature = jsapi_signature(ticket, "n0nce", "1414587457", url)
    response = await client.get(
        "/_emulator/jsapi/verify", params={**config, "signature": signature, "url": url}
    )
    verdict: dict[str, Any] = response.json()
    return verdict


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/share", True),
        ("https://www.example.com:8443/share?x=1", True),  # a subdomain; ports do not matter
        ("http://localhost:8000/share", False),
        ("https://example.com.evil.test/share", False),
        ("https://notexample.com/share", False),
    ],
)
async def test_pages_outside_the_js_domains_get_invalid_url_domain(
    clock: Clock, url: str, ok: bool
) -> None:
    emu = WeChatEmulator(clock=clock, js_domains=["example.com"])
    async with client_for(emu) as client:
        verdict = await _signed_verify(client, url)
    if ok:
        assert verdict == {"ok": True, "errMsg": "config:ok"}
    else:
        assert verdict["ok"] is False
        assert verdict["errMsg"] == "config:invalid url domain"
        assert "JS接口安全域名" in verdict["reason"]
        assert "example.com" in verdict["reason"]


async def test_without_js_domains_any_page_passes(emu: WeChatEmulator) -> None:
    async with client_for(emu) as client:
        verdict = await _signed_verify(client, "http://anything.test/page")
    assert verdict == {"ok": True, "errMsg": "config:ok"}


async def test_the_index_page_says_which_settings_are_on(clock: Clock) -> None:
    relaxed = WeChatEmulator(clock=clock)
    strict = WeChatEmulator(clock=clock, ip_allowlist=[], js_domains=["example.com"])
    async with client_for(relaxed) as client:
        assert "Go-live settings: off" in (await client.get("/")).text
    async with client_for(strict) as client:
        page = (await client.get("/")).text
    assert "IP allow-list for token calls (40164 elsewhere): (empty: nobody)" in page
    assert "JS-SDK safe domains (config:invalid url domain elsewhere): example.com" in page


# -- the settings, checked ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ip_allowlist": ["1.2.3.4:80"]}, "not an IP address or network"),
        ({"ip_allowlist": ["server.example.com"]}, "not an IP address or network"),
        ({"ip_allowlist": "1.2.3.4"}, "list of strings"),
        ({"js_domains": ["https://example.com"]}, "without http://"),
        ({"js_domains": ["example.com/path"]}, "bare domain"),
        ({"daily_quota": 0}, "daily_quota must be a whole number"),
        ({"minute_quota": True}, "minute_quota must be a whole number"),
    ],
)
def test_bad_go_live_settings_say_what_is_wrong(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeChatEmulator(**options)
