from __future__ import annotations

import json

import httpx
import pytest

from wxauth_middleware import (
    UpstreamResponseError,
    UpstreamTimeout,
    UpstreamUnavailable,
    WeChatAPIError,
    WeChatUser,
)
from wxauth_middleware.drivers import drive_async, drive_sync
from wxauth_middleware.effects import UpstreamRequest, UpstreamResponse
from wxauth_middleware.wechat.api import CallPolicy, fetch_user, parse_body

API = "https://api.weixin.qq.com"
TOKEN = {
    "access_token": "ACCESS",
    "expires_in": 7200,
    "refresh_token": "REFRESH",
    "openid": "o1",
    "scope": "snsapi_userinfo",
    "unionid": "u1",
}
INFO = {
    "openid": "o1",
    "nickname": "小明🐼",
    "sex": 0,
    "province": "",
    "city": "",
    "country": "",
    "headimgurl": "",
    "privilege": [],
}


def _wechat(token: dict[str, object], info: bytes | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/sns/oauth2/access_token":
            body = json.dumps(token, ensure_ascii=False).encode()
            return httpx.Response(200, content=body, headers={"content-type": "text/plain"})
        assert request.url.path == "/sns/userinfo"
        body = info if info is not None else json.dumps(INFO, ensure_ascii=False).encode()
        return httpx.Response(
            200, content=body, headers={"content-type": "application/json; encoding=utf-8"}
        )

    return httpx.MockTransport(handle)


def test_flow_requests_are_wechats_in_order() -> None:
    flow = fetch_user(API, "wxAPP", "SECRET", "CODE", "zh_CN")
    first = next(flow)
    assert isinstance(first, UpstreamRequest)
    assert first.url == f"{API}/sns/oauth2/access_token"
    assert first.params == (
        ("appid", "wxAPP"),
        ("secret", "SECRET"),
        ("code", "CODE"),
        ("grant_type", "authorization_code"),
    )
    second = flow.send(UpstreamResponse(200, json.dumps(TOKEN).encode()))
    assert isinstance(second, UpstreamRequest)
    assert second.url == f"{API}/sns/userinfo"
    assert second.params == (("access_token", "ACCESS"), ("openid", "o1"), ("lang", "zh_CN"))


def test_base_scope_makes_one_call() -> None:
    client = httpx.Client(transport=_wechat({**TOKEN, "scope": "snsapi_base"}))
    user, grant = drive_sync(fetch_user(API, "wxAPP", "S", "C", "en"), client)
    assert user == WeChatUser(openid="o1", unionid="u1", scope="snsapi_base")
    assert (grant.access_token, grant.refresh_token) == ("ACCESS", "REFRESH")


def test_sync_driver_decodes_utf8_bytes_with_control_characters() -> None:
    raw = '{"openid":"o1","nickname":"控制\x07字符","privilege":[]}'.encode()
    client = httpx.Client(transport=_wechat(TOKEN, raw))
    user, _ = drive_sync(fetch_user(API, "wxAPP", "S", "C", "zh_CN"), client)
    assert user.nickname == "控制\x07字符"
    assert user.unionid == "u1"


@pytest.mark.anyio
async def test_async_driver_gives_the_same_user() -> None:
    async with httpx.AsyncClient(transport=_wechat({**TOKEN, "is_snapshotuser": 1})) as client:
        user, _ = await drive_async(fetch_user(API, "wxAPP", "S", "C", "zh_CN"), client)
    assert user.nickname == "小明🐼"
    assert user.scope == "snsapi_userinfo"
    assert user.is_snapshot_user is True


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("t"), UpstreamUnavailable),
        (httpx.ReadTimeout("t"), UpstreamTimeout),
        (httpx.ConnectError("refused"), UpstreamUnavailable),
        (httpx.RemoteProtocolError("eof"), UpstreamUnavailable),
    ],
)
def test_network_failures_become_upstream_errors(exc: Exception, expected: type) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    client = httpx.Client(transport=httpx.MockTransport(fail))
    with pytest.raises(expected) as info:
        drive_sync(fetch_user(API, "wxAPP", "SECRET", "C", "zh_CN"), client)
    assert "SECRET" not in str(info.value)


def test_errcode_in_http_200_is_an_error_with_rid() -> None:
    body = b'{"errcode":40163,"errmsg":"code been used, rid: 6565e2f1-3b8a9c47-1d2e3f4a"}'
    with pytest.raises(WeChatAPIError) as info:
        parse_body(UpstreamResponse(200, body, "text/plain"), "sns/oauth2/access_token")
    error = info.value
    assert (error.errcode, error.rid, error.is_invalid_code) == (
        40163,
        "6565e2f1-3b8a9c47-1d2e3f4a",
        True,
    )
    assert error.status == 400


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>502 Bad Gateway</html>", b'{"openid": "o1"', b"[1, 2]", b'"x"', b"null"],
)
def test_malformed_bodies_are_upstream_errors(body: bytes) -> None:
    with pytest.raises(UpstreamResponseError):
        parse_body(UpstreamResponse(200, body), "sns/userinfo")


def test_http_error_status_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamResponseError, match="HTTP 503"):
        parse_body(UpstreamResponse(503, b'{"openid": "o1"}'), "sns/userinfo")


@pytest.mark.parametrize(
    "token",
    [
        {**TOKEN, "openid": 5},
        {**TOKEN, "openid": ""},
        {k: v for k, v in TOKEN.items() if k != "access_token"},
        {**TOKEN, "expires_in": "7200"},
        {**TOKEN, "errcode": "40001"},
    ],
)
def test_wrong_types_are_upstream_errors(token: dict[str, object]) -> None:
    client = httpx.Client(transport=_wechat(token))
    with pytest.raises(UpstreamResponseError):
        drive_sync(fetch_user(API, "wxAPP", "S", "C", "zh_CN"), client)


def test_userinfo_for_another_openid_is_refused() -> None:
    client = httpx.Client(transport=_wechat(TOKEN, json.dumps({**INFO, "openid": "o2"}).encode()))
    with pytest.raises(UpstreamResponseError, match="another openid"):
        drive_sync(fetch_user(API, "wxAPP", "S", "C", "zh_CN"), client)


def _counting(fail_times: int, exc: Exception) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) <= fail_times:
            raise exc
        body = json.dumps({**TOKEN, "scope": "snsapi_base"}).encode()
        return httpx.Response(200, content=body)

    return httpx.MockTransport(handle), seen


def test_refused_connections_are_retried_with_backoff() -> None:
    transport, seen = _counting(2, httpx.ConnectError("refused"))
    policy = CallPolicy(timeout=1, retries=2, backoff=0.01)
    user, _ = drive_sync(
        fetch_user(API, "wxAPP", "S", "C", "zh_CN", policy), httpx.Client(transport=transport)
    )
    assert user.openid == "o1"
    assert len(seen) == 3


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")])
def test_calls_that_may_have_reached_wechat_are_not_retried(exc: Exception) -> None:
    transport, seen = _counting(1, exc)
    policy = CallPolicy(timeout=1, retries=2, backoff=0.01)
    with pytest.raises((UpstreamTimeout, UpstreamUnavailable)):
        drive_sync(
            fetch_user(API, "wxAPP", "S", "C", "zh_CN", policy), httpx.Client(transport=transport)
        )
    assert len(seen) == 1


@pytest.mark.anyio
async def test_async_driver_retries_the_same_way() -> None:
    seen: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if len(seen) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, content=json.dumps({**TOKEN, "scope": "snsapi_base"}).encode())

    policy = CallPolicy(timeout=1, retries=1, backoff=0.01)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        user, _ = await drive_async(fetch_user(API, "wxAPP", "S", "C", "zh_CN", policy), client)
    assert user.openid == "o1"
    assert len(seen) == 2


def test_a_passed_deadline_stops_before_calling() -> None:
    import time

    transport, seen = _counting(0, httpx.ConnectError("unused"))
    policy = CallPolicy(deadline=time.monotonic() - 1)
    with pytest.raises(UpstreamTimeout, match="deadline"):
        drive_sync(
            fetch_user(API, "wxAPP", "S", "C", "zh_CN", policy), httpx.Client(transport=transport)
        )
    assert seen == []


def test_sync_limiter_bounds_calls_and_times_out_when_full() -> None:
    import threading

    limiter = threading.BoundedSemaphore(1)
    transport, seen = _counting(0, httpx.ConnectError("unused"))
    client = httpx.Client(transport=transport)
    policy = CallPolicy(timeout=0.05, retries=0)
    user, _ = drive_sync(fetch_user(API, "wxAPP", "S", "C", "zh_CN", policy), client, limiter)
    assert user.openid
    limiter.acquire()  # every slot taken: the next call waits its timeout, then gives up
    with pytest.raises(UpstreamTimeout):
        drive_sync(fetch_user(API, "wxAPP", "S", "C", "zh_CN", policy), client, limiter)
    assert len(seen) == 1


@pytest.mark.anyio
async def test_async_limiter_lets_no_more_than_its_size_through() -> None:
    import anyio

    active = peak = 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.01)
        active -= 1
        return httpx.Response(200, content=json.dumps({**TOKEN, "scope": "snsapi_base"}).encode())

    limiter = anyio.Semaphore(2)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client,
        anyio.create_task_group() as tasks,
    ):
        for _ in range(10):
            flow = fetch_user(API, "wxAPP", "S", "C", "zh_CN", CallPolicy(timeout=5))
            tasks.start_soon(drive_async, flow, client, limiter)
    assert peak == 2
