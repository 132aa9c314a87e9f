"""Accounts kept in a database: the `accounts` callable, sync or async, through both adapters;
its answers cached per host; a failing or slow one a 503 for its host only. And the options'
errors, said at construction."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from wxauth_middleware import (
    OfficialAccount,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
)
from wxauth_middleware.config import Config
from wxauth_middleware.drivers import load_account_sync
from wxauth_middleware.routing import ACCOUNT_LIFE, FAILURE_LIFE, NO_ACCOUNT_LIFE, AccountRouter

from .emulator_support import Clock
from .platform_support import PLATFORM
from .support import CHROME_UA, SECRET_KEY, WECHAT_UA, Stack
from .test_accounts import (
    A_HOST,
    A_ID,
    A_SECRET,
    B_HOST,
    B_ID,
    B_SECRET,
    C_HOST,
    appid_of,
    browser,
    emulator,
    log_in,
    site,
)

pytestmark = pytest.mark.anyio

A = OfficialAccount(A_ID, A_SECRET, hosts=[A_HOST])
B = OfficialAccount(B_ID, B_SECRET, hosts=[B_HOST])
BAD_HOST, SLOW_HOST, MIXED_HOST = "bad.example.com", "slow.example.com", "mixed.example.com"
SLOW = 6  # seconds the slow host's lookup takes: longer than any http_timeout here


class Tenants:
    """A table of tenants as an application keeps them, with the host names it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def answer(self, host: str) -> OfficialAccount | None:
        with self._lock:
            self.asked.append(host)
        if host == BAD_HOST:
            raise ConnectionError("the tenants' database is down")
        if host == MIXED_HOST:
            return B  # a mix-up: B's account for another host
        return {A_HOST: A, B_HOST: B}.get(host)

    def sync(self, host: str) -> OfficialAccount | None:
        if host == SLOW_HOST:
            time.sleep(SLOW)
        return self.answer(host)

    async def async_(self, host: str) -> OfficialAccount | None:
        if host == SLOW_HOST:
            await anyio.sleep(SLOW)
        return self.answer(host)


@pytest.fixture(params=["sync", "async"])
def tenants(request: pytest.FixtureRequest) -> tuple[Tenants, Any]:
    table = Tenants()
    return table, table.sync if request.param == "sync" else table.async_


async def test_the_callable_serves_each_host_its_account(
    stack: Stack, tenants: tuple[Tenants, Any]
) -> None:
    table, loader = tenants
    emulator(stack)
    async with browser(site(stack, loader, http_timeout=0.5)) as client:
        assert (await log_in(client, A_HOST))["app_id"] == A_ID
        assert (await log_in(client, B_HOST))["app_id"] == B_ID
        # A host without an account: untouched, the user None.
        assert (await client.get(f"http://{C_HOST}/page")).json()["user"] is None
        assert (await client.get(f"http://{C_HOST}/other")).json()["user"] is None
    # One call per host: the answers (None included) are kept.
    assert sorted(table.asked) == sorted([A_HOST, B_HOST, C_HOST])


async def test_a_failing_slow_or_mixed_up_callable_is_a_503_for_its_host_only(
    stack: Stack, tenants: tuple[Tenants, Any]
) -> None:
    table, loader = tenants
    emulator(stack)
    hosts = (BAD_HOST, SLOW_HOST, MIXED_HOST)
    async with browser(site(stack, loader, http_timeout=0.5), WECHAT_UA, *hosts) as client:
        for host in hosts:
            started = time.monotonic()
            answer = await client.get(f"http://{host}/page", headers={"accept": "application/json"})
            assert answer.status_code == 503, (host, answer.text)
            assert answer.json()["error"] == "account_unavailable"
            assert time.monotonic() - started < SLOW / 2  # never waiting for the slow loader
            page = await client.get(f"http://{host}/page")
            assert page.status_code == 503
            assert "登录暂时不可用" in page.text
            # The other tenants are served meanwhile.
            assert appid_of(await client.get(f"http://{A_HOST}/page")) == A_ID
    # (How long a failure is remembered: test_the_answers_are_kept_..., on a stepped clock.)
    assert {BAD_HOST, MIXED_HOST, A_HOST} <= set(table.asked)


def test_the_answers_are_kept_60_s_no_account_10_s_a_failure_2_s() -> None:
    clock = Clock()
    table = Tenants()
    config = Config(secret_key=SECRET_KEY, accounts=table.answer, http_timeout=1)
    router = AccountRouter(config, clock)

    def core_of(host: str) -> Any:
        found = router.find(host)
        return load_account_sync(router, host) if found is False else found

    for host in (A_HOST, C_HOST):
        core_of(host)
    with pytest.raises(Exception, match="failed"):
        core_of(BAD_HOST)
    assert core_of(f"{A_HOST.upper()}:8000").config.app_id == A_ID  # the host name counts
    clock.advance(FAILURE_LIFE + 0.1)
    with pytest.raises(Exception, match="failed"):
        core_of(BAD_HOST)
    clock.advance(NO_ACCOUNT_LIFE)
    assert core_of(C_HOST) is None
    clock.advance(ACCOUNT_LIFE - NO_ACCOUNT_LIFE - FAILURE_LIFE - 0.2)
    core_of(A_HOST)
    assert table.asked == [A_HOST, C_HOST, BAD_HOST, BAD_HOST, C_HOST]
    clock.advance(0.2)
    first = core_of(A_HOST)
    assert table.asked[-1] == A_HOST
    # The same account again: its core (its memory of spent states, its tokens) is kept.
    clock.advance(ACCOUNT_LIFE + 1)
    assert core_of(A_HOST) is first


@pytest.mark.parametrize("adapter", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"accounts": [A], "app_id": A_ID}, "takes the place of app_id"),
        ({"accounts": [A], "app_secret": A_SECRET}, "takes the place of app_id"),
        ({"accounts": [A, OfficialAccount(B_ID, B_SECRET, hosts=[A_HOST.upper()])]}, "claimed"),
        ({"accounts": [A, OfficialAccount(B_ID, B_SECRET)]}, "has no hosts"),
        ({"accounts": [A, OfficialAccount(A_ID, A_SECRET, hosts=[B_HOST])]}, "twice"),
        ({"accounts": []}, "empty"),
        ({"accounts": "wx8e6a2d5c0b1f4a37"}, "a list of OfficialAccount"),
        ({"accounts": [A, {"app_id": B_ID}]}, "OfficialAccount objects"),
        ({"accounts": [OfficialAccount(B_ID, B_SECRET, scope="snsapi_login")]}, B_ID),
        (
            {"accounts": [A], "other_browsers": "qrconnect"},
            f"OfficialAccount {A_ID}: other_browsers='qrconnect' needs website_app_id",
        ),
        ({}, "app_id is required"),
    ],
)
def test_bad_accounts_are_refused_at_construction(
    adapter: type[Any], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        adapter(lambda *a: None, secret_key=SECRET_KEY, **options)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hosts": ["a.example.com:8000"]}, "has a port"),
        ({"hosts": ["https://a.example.com"]}, "is a URL"),
        ({"hosts": "a.example.com"}, "not the string"),
        ({"hosts": ["a b"]}, "is not a host name"),
        ({"hosts": ["a.example.com", "A.example.com."]}, "listed twice"),
        ({"app_secret": None}, "app_secret is required"),
        ({"app_secret": "a b"}, "white space"),
        ({"app_id": "wx123"}, "is not an AppID"),
        ({"platform": object()}, "must be a Platform"),
        ({"platform": PLATFORM}, "has no app_secret"),
    ],
)
def test_an_official_account_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    values = {"app_id": A_ID, "app_secret": A_SECRET, "hosts": [A_HOST], **fields}
    with pytest.raises(ValueError, match=message):
        OfficialAccount(**values)


def test_an_official_account_keeps_its_secrets_out_of_its_repr() -> None:
    account = OfficialAccount(
        A_ID, A_SECRET, hosts=["A.Example.com", "[::1]", "::2"], website_app_secret="w" * 32
    )
    assert account.hosts == ("a.example.com", "[::1]", "[::2]")
    assert A_SECRET not in repr(account)
    assert "w" * 32 not in repr(account)


async def test_another_browser_without_session_on_a_loaded_host_passes(
    stack: Stack, tenants: tuple[Tenants, Any]
) -> None:
    _, loader = tenants
    emulator(stack)
    async with browser(site(stack, loader), CHROME_UA) as client:
        assert (await client.get(f"http://{A_HOST}/page")).json()["user"] is None


async def test_a_slow_callable_holds_up_no_other_host(
    stack: Stack, tenants: tuple[Tenants, Any]
) -> None:
    _, loader = tenants
    emulator(stack)
    finished: list[str] = []
    async with browser(site(stack, loader, http_timeout=2.5), WECHAT_UA, SLOW_HOST) as client:

        async def visit(host: str) -> None:
            await client.get(f"http://{host}/page")
            finished.append(host)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(visit, SLOW_HOST)
            await anyio.sleep(0.1)  # the slow host's call is under way
            tasks.start_soon(visit, A_HOST)
    assert finished == [A_HOST, SLOW_HOST]
