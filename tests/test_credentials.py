"""The Official Account's own credentials (credentials.py) against a scripted WeChat
(httpx.MockTransport): the signature, caching, one refresh at a time, rejected tokens, Redis
shared and Redis down, through both adapters."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import httpx
import pytest

from wxauth_middleware import WeChatAPIError
from wxauth_middleware.config import Config
from wxauth_middleware.drivers import drive_async, drive_sync
from wxauth_middleware.wechat import kept
from wxauth_middleware.wechat.credentials import Credentials, jssdk_signature, signable_url

from .credentials_support import (
    APP_ID,
    APP_SECRET,
    EXAMPLE_NONCE,
    EXAMPLE_SIGNATURE,
    EXAMPLE_TICKET,
    EXAMPLE_TIMESTAMP,
    EXAMPLE_URL,
    ScriptedWeChat,
    burst,
    call,
    middleware,
)
from .redis_support import RedisServer
from .support import SECRET_KEY

# -- the signature -----------------------------------------------------------------------


def test_signature_is_wechats_published_example() -> None:
    assert (
        jssdk_signature(EXAMPLE_TICKET, EXAMPLE_NONCE, EXAMPLE_TIMESTAMP, EXAMPLE_URL)
        == EXAMPLE_SIGNATURE
    )


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_jssdk_config_signs_with_the_ticket_clock_and_nonce(kind: str) -> None:
    wechat = ScriptedWeChat()
    config = Config(app_id=APP_ID, app_secret=APP_SECRET, secret_key=SECRET_KEY)
    credentials = Credentials(
        config, clock=lambda: EXAMPLE_TIMESTAMP + 0.9, nonce=lambda: EXAMPLE_NONCE
    )
    flow = credentials.jssdk_config(EXAMPLE_URL + "#section", None)
    if kind == "asgi":

        async def run() -> dict[str, object]:
            async with httpx.AsyncClient(transport=wechat.transport(kind)) as client:
                return await drive_async(flow, client)

        signed = asyncio.run(run())
    else:
        with httpx.Client(transport=wechat.transport(kind)) as client:
            signed = drive_sync(flow, client)
    assert signed == {
        "appId": APP_ID,
        "timestamp": EXAMPLE_TIMESTAMP,
        "nonceStr": EXAMPLE_NONCE,
        "signature": EXAMPLE_SIGNATURE,
    }


@pytest.mark.parametrize(
    ("url", "origin", "signed"),
    [
        ("https://example.com/a?b=1#frag", None, "https://example.com/a?b=1"),
        ("https://example.com:443/a", "https://example.com", "https://example.com:443/a"),
        ("http://example.com/", "http://example.com:80", "http://example.com/"),
        ("https://EXAMPLE.com/p", "https://example.com", "https://EXAMPLE.com/p"),
        ("https://example.com", "https://example.com", "https://example.com"),
        ("https://example.com?a=1#f", "https://example.com", "https://example.com?a=1"),
        ("http://[::1]:8000/p", "http://[::1]:8000", "http://[::1]:8000/p"),
    ],
)
def test_signable_url_keeps_the_url_as_the_browser_has_it(
    url: str, origin: str | None, signed: str
) -> None:
    assert signable_url(url, origin) == signed


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("/relative/path", None),
        ("", None),
        ("javascript:alert(1)", None),
        ("ftp://example.com/file", None),
        ("https:///no-host", None),
        ("https://example.com/a b", None),
        ("https://example.com:99999/", None),
        ("https://evil.example/page", "https://example.com"),
        ("http://example.com/page", "https://example.com"),
        ("https://example.com:8443/page", "https://example.com"),
        ("https://example.com.evil.example/", "https://example.com"),
        # Starting with the origin is not being on it.
        ("https://example.com@evil.example/", "https://example.com"),
        ("https://example.com:443@evil.example/", "https://example.com"),
        ("https://example.com\\@evil.example/", "https://example.com"),
        ("http://localhost:80001/", "http://localhost:8000"),
        ("http://localhost:8000\t/", "http://localhost:8000"),
        ("http://localhost:8000/a\u3000b", "http://localhost:8000"),
        ("http://localhost:8000/\x7f", "http://localhost:8000"),
        ("/relative/path", ""),
    ],
)
def test_signable_url_refuses_what_is_not_a_page_of_the_site(url: str, origin: str | None) -> None:
    with pytest.raises(ValueError, match="url"):
        signable_url(url, origin)


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_jssdk_config_refuses_another_origin_with_public_url(kind: str) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat, public_url="https://www.example.com")
    with pytest.raises(ValueError, match="not on the site's origin"):
        call(app, "jssdk_config", "https://evil.example/")
    with pytest.raises(ValueError, match="absolute"):
        call(app, "jssdk_config", "/page")
    assert sum(wechat.calls.values()) == 0
    signed = call(app, "jssdk_config", "https://www.example.com/page?x=1#top")
    assert set(signed) == {"appId", "timestamp", "nonceStr", "signature"}
    assert isinstance(signed["timestamp"], int)
    assert abs(signed["timestamp"] - time.time()) < 60
    assert signed["signature"] == jssdk_signature(
        EXAMPLE_TICKET, signed["nonceStr"], signed["timestamp"], "https://www.example.com/page?x=1"
    )


# -- the access_token --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_access_token_comes_from_stable_token_and_is_cached(kind: str) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat)
    assert call(app, "access_token") == wechat.token
    assert call(app, "access_token") == wechat.token
    assert call(app, "jssdk_config", "https://example.com/")["appId"] == APP_ID
    assert call(app, "jssdk_config", "https://example.com/other")["appId"] == APP_ID
    assert wechat.calls == {"/cgi-bin/stable_token": 1, "/cgi-bin/ticket/getticket": 1}


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_burst_of_first_calls_makes_one_call_of_each(kind: str) -> None:
    wechat = ScriptedWeChat(delay=0.05)
    app = middleware(kind, wechat)
    signed = burst(app, "jssdk_config", 50, "https://example.com/page")
    assert len(signed) == 50
    assert all(s["appId"] == APP_ID for s in signed)
    print(f"{kind}: 50 concurrent first calls -> {dict(wechat.calls)}")
    assert wechat.count("stable_token") == 1
    assert wechat.count("ticket/getticket") == 1


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_burst_while_wechat_fails_makes_one_call(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept, "FAILURE_MEMORY", 0.3)
    wechat = ScriptedWeChat(delay=0.05)
    wechat.answers["/cgi-bin/stable_token"] = {"errcode": 45009, "errmsg": "quota, rid: 1-2-3"}
    app = middleware(kind, wechat, retries=0)
    failures = burst(app, "access_token", 50)
    assert all(isinstance(f, WeChatAPIError) and f.errcode == 45009 for f in failures)
    assert wechat.count("stable_token") == 1
    # A caller right after gets the failure remembered, without a call; a later one asks.
    del wechat.answers["/cgi-bin/stable_token"]
    with pytest.raises(WeChatAPIError):
        call(app, "access_token")
    assert wechat.count("stable_token") == 1
    time.sleep(kept.FAILURE_MEMORY + 0.1)
    assert call(app, "access_token") == wechat.token
    assert wechat.count("stable_token") == 2


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_a_token_rejected_in_use_is_replaced_once(kind: str) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat)
    assert call(app, "follows", "o-follower") is True
    wechat.rotate()  # another client forced a new token: ours is now refused with 40001
    assert call(app, "follows", "o-other") is False
    assert wechat.count("stable_token") == 2
    assert wechat.count("user/info") == 3
    assert call(app, "access_token") == wechat.token


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_force_refresh_is_the_last_resort_and_rate_limited(kind: str) -> None:
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat)
    stale = call(app, "access_token")
    # WeChat still hands out the token the application says was rejected: force a new one.
    fresh = call(app, "access_token", rejected=stale)
    assert fresh != stale
    assert wechat.count("stable_token") == 3  # normal, normal (same token), forced
    # A second rejection within the minute does not force again.
    assert call(app, "access_token", rejected=fresh) == fresh
    assert wechat.count("stable_token") == 4


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_follows_checks_its_openid(kind: str) -> None:
    app = middleware(kind, ScriptedWeChat())
    with pytest.raises(ValueError, match="openid"):
        call(app, "follows", "")


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_the_token_is_never_in_a_log_line_or_repr(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wechat = ScriptedWeChat()
    app = middleware(kind, wechat)
    token = call(app, "access_token")
    call(app, "follows", "o-follower")
    wechat.rotate()
    call(app, "follows", "o-follower")
    assert caplog.records
    for text in (caplog.text, repr(app), repr(app.core.credentials)):
        assert token not in text
        assert wechat.token not in text
        assert APP_SECRET not in text
        assert EXAMPLE_TICKET not in text


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("errcode", "status"), [(40013, 500), (40125, 500), (40164, 500), (-1, 503), (45009, 503)]
)
def test_wechat_errors_are_the_error_tree(kind: str, errcode: int, status: int) -> None:
    wechat = ScriptedWeChat()
    wechat.answers["/cgi-bin/stable_token"] = {"errcode": errcode, "errmsg": "no, rid: 1-2-3"}
    app = middleware(kind, wechat, retries=0)
    with pytest.raises(WeChatAPIError) as caught:
        call(app, "access_token")
    assert caught.value.errcode == errcode
    assert caught.value.status == status


# -- Redis: shared by instances, and down --------------------------------------------------


def test_two_instances_sharing_redis_make_one_call(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    wechat = ScriptedWeChat(delay=0.1)
    options = {"redis_url": redis_server.url, "redis_prefix": redis_prefix}
    apps = [middleware("wsgi", wechat, **options), middleware("asgi", wechat, **options)]
    results: list[Any] = []

    def wsgi_instance() -> None:
        results.extend(burst(apps[0], "jssdk_config", 25, "https://example.com/"))

    thread = threading.Thread(target=wsgi_instance)
    thread.start()
    results.extend(burst(apps[1], "jssdk_config", 25, "https://example.com/"))
    thread.join(30)
    assert len(results) == 50
    print(f"two instances, one Redis: {dict(wechat.calls)}")
    assert wechat.count("stable_token") == 1
    assert wechat.count("ticket/getticket") == 1
    with redis_server.client() as client:
        assert client.get(f"{redis_prefix}account:{{{APP_ID}}}:token") == wechat.token.encode()
        assert client.pttl(f"{redis_prefix}account:{{{APP_ID}}}:token") > 6000 * 1000
        assert not client.exists(f"{redis_prefix}account:{{{APP_ID}}}:token:lock")
    # A third instance finds both in Redis.
    assert call(middleware("wsgi", wechat, **options), "jssdk_config", "https://example.com/")
    assert wechat.count("stable_token") == 1
    assert wechat.count("ticket/getticket") == 1


def test_an_instance_takes_the_newer_token_another_stored(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    wechat = ScriptedWeChat()
    options = {"redis_url": redis_server.url, "redis_prefix": redis_prefix}
    first, second = middleware("wsgi", wechat, **options), middleware("wsgi", wechat, **options)
    assert call(first, "follows", "o-follower")
    assert call(second, "follows", "o-follower")
    wechat.rotate()
    assert call(first, "follows", "o-follower")  # refreshed once, stored in Redis
    assert wechat.count("stable_token") == 2
    # The second instance's copy is refused too: it takes the first one's from Redis.
    assert call(second, "follows", "o-follower")
    assert wechat.count("stable_token") == 2


def test_a_dead_lock_holder_delays_but_does_not_block(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    wechat = ScriptedWeChat()
    with redis_server.client() as client:
        # An instance took the lock and died; it expires after login_timeout.
        client.set(f"{redis_prefix}account:{{{APP_ID}}}:token:lock", "dead", px=60_000)
    app = middleware(
        "wsgi", wechat, redis_url=redis_server.url, redis_prefix=redis_prefix, login_timeout=1
    )
    started = time.monotonic()
    assert call(app, "access_token") == wechat.token
    assert 0.9 < time.monotonic() - started < 5
    assert wechat.count("stable_token") == 1


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_redis_down_keeps_the_token_per_instance(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    from .servers import free_port

    wechat = ScriptedWeChat()
    app = middleware(kind, wechat, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert call(app, "access_token") == wechat.token
    assert call(app, "access_token") == wechat.token
    assert call(app, "jssdk_config", "https://example.com/")["appId"] == APP_ID
    assert wechat.count("stable_token") == 1
    assert "Redis is unavailable" in caplog.text
