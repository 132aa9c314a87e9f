"""The Redis session store (`redis_url`), through both adapters, against a real redis-server on
127.0.0.1 and the emulator over HTTP: opaque session cookies, sessions seen by every instance,
logout and revocation, duplicate callbacks answered from the store, kept tokens renewed with the
refresh_token, and a store that is down giving a clear error, never a wrong answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import redis

from wxauth_middleware import (
    ConfigurationError,
    TokenUnavailable,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
    WeChatUser,
)
from wxauth_middleware.cookies import Session
from wxauth_middleware.drivers import drive_sync
from wxauth_middleware.storage.redis_client import redis_client
from wxauth_middleware.storage.store import PRUNE_SAMPLE, SessionStore

from .emulator_support import Clock
from .redis_support import Deployment, RedisServer
from .servers import free_port
from .support import (
    APP_ORIGIN,
    CHROME_UA,
    SECRET_KEY,
    Middleware,
    Stack,
    inner_app,
    location,
    login,
    middleware_options,
    shown,
    websocket_messages,
)

pytestmark = pytest.mark.anyio

API_HEADERS = {"accept": "application/json", "sec-fetch-mode": "cors"}


@pytest.fixture
def db(redis_store: Deployment) -> Iterator[redis.Redis]:
    """A client of the deployment's data (of the whole cluster, for a cluster)."""
    with redis_store.client() as client:
        yield client


def tagged(name: str) -> str:
    """`name` after the hash tag of its identity's keys (the store's key layout)."""
    return "{" + hashlib.sha256(name.encode()).hexdigest()[:4] + "}" + name


def stored(stack: Stack, redis_store: Deployment, redis_prefix: str, **options: Any) -> Middleware:
    """The stack's middleware with sessions in the test Redis."""
    return stack.middleware(redis_url=redis_store.url, redis_prefix=redis_prefix, **options)


def sid_of(session_key: str) -> str:
    """The session id of a session's key (`<prefix>session:{<tag>}<rest>`: `<tag><rest>`)."""
    tag, _, rest = session_key.rpartition("session:{")[2].partition("}")
    return tag + rest


def keys(db: redis.Redis, pattern: str) -> list[str]:
    return sorted(key.decode() for key in db.scan_iter(match=pattern))


async def call(middleware: Middleware, method: str, *args: str) -> Any:
    """`revoke` / `user_access_token` of either adapter (the WSGI one's are synchronous)."""
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        return await anyio.to_thread.run_sync(getattr(middleware, method), *args)
    return await getattr(middleware, method)(*args)


def closed_store_url() -> str:
    # Nothing listens there: every command fails to connect at once.
    return f"redis://127.0.0.1:{free_port()}/0"


async def logged_in(stack: Stack, middleware: Middleware, persona: str = "xiaoming") -> str:
    """Log the phone of `middleware` in; the session cookie's value."""
    async with stack.phone(middleware) as phone:
        page = await login(phone, "/whoami", persona=persona)
        assert page.json()["user"] is not None, page.text
        return str(phone.cookies["wxauth_session"])


async def test_the_cookie_holds_an_opaque_id_and_the_session_lives_in_redis(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator()
    middleware = stored(stack, redis_store, redis_prefix, scope="snsapi_userinfo")
    async with stack.phone(middleware) as phone:
        page = await login(phone, "/whoami", persona="xiaoming")
        user = page.json()["user"]
        assert user["nickname"] == "小明🐼"
        cookie = phone.cookies["wxauth_session"]
        # Nothing of the user is in the cookie: neither the openid nor the nickname.
        assert user["openid"] not in cookie
        assert "小明" not in cookie
        sessions = keys(db, redis_prefix + "session:*")
        assert len(sessions) == 1
        ttl = db.ttl(sessions[0])
        assert 14 * 24 * 3600 - 60 < ttl <= 14 * 24 * 3600  # max_age's default
        payload = json.loads(db.get(sessions[0]) or b"null")
        assert payload[0] == user["openid"]  # the openid first
        # The identity's index names its session and the code's result (what revoke ends).
        (code,) = keys(db, redis_prefix + "code:*")
        assert db.smembers(f"{redis_prefix}identity:{tagged(user['openid'])}") == {
            b"s:" + sid_of(sessions[0]).encode(),
            b"c:" + code.removeprefix(redis_prefix + "code:").encode(),
        }
        # Logged in on the next visit, whatever the browser.
        again = await phone.get("/whoami", headers={"user-agent": CHROME_UA})
        assert again.json()["user"]["openid"] == user["openid"]


async def test_another_instance_sees_the_session(
    stack: Stack, redis_store: Deployment, redis_prefix: str
) -> None:
    stack.emulator(auto_approve=True)
    cookie = await logged_in(stack, stored(stack, redis_store, redis_prefix))
    other = stored(stack, redis_store, redis_prefix)
    async with stack.phone(other) as phone:
        phone.cookies.set("wxauth_session", cookie)
        page = await phone.get("/whoami")
        assert page.status_code == 200
        assert page.json()["user"]["openid"]
        # The same cookie is worth nothing to a deployment with another key.
    stranger = stored(
        stack, redis_store, redis_prefix, secret_key="another-deployment-key-0123456789"
    )
    async with stack.phone(stranger) as phone:
        phone.cookies.set("wxauth_session", cookie)
        assert (await phone.get("/whoami", headers={"user-agent": CHROME_UA})).json() == {
            "user": None,
            "path": "/whoami",
        }


async def test_a_signed_cookie_session_is_not_a_stored_one_and_back(
    stack: Stack, redis_store: Deployment, redis_prefix: str
) -> None:
    """Switching a deployment to the store (or back) logs its users out, nothing else."""
    stack.emulator(auto_approve=True)
    cookie_session = await logged_in(stack, stack.middleware())
    stored_session = await logged_in(stack, stored(stack, redis_store, redis_prefix))
    for middleware, cookie in (
        (stored(stack, redis_store, redis_prefix), cookie_session),
        (stack.middleware(), stored_session),
    ):
        async with stack.phone(middleware, user_agent=CHROME_UA) as phone:
            phone.cookies.set("wxauth_session", cookie)
            assert (await phone.get("/whoami")).json()["user"] is None


async def test_logout_ends_the_stored_session(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator(auto_approve=True)
    middleware = stored(stack, redis_store, redis_prefix)
    async with stack.phone(middleware) as phone:
        await login(phone, "/whoami")
        cookie = phone.cookies["wxauth_session"]
        assert len(keys(db, redis_prefix + "session:*")) == 1
        out = await phone.post("/wxauth/logout?next=/bye", headers={"origin": APP_ORIGIN})
        assert location(out) == "/bye"
        assert keys(db, redis_prefix + "session:*") == []
    # The old cookie, kept by someone, is worth nothing now.
    async with stack.phone(middleware, user_agent=CHROME_UA) as phone:
        phone.cookies.set("wxauth_session", cookie)
        assert (await phone.get("/whoami")).json()["user"] is None


async def test_revoke_ends_every_session_of_that_user_and_no_other(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator()
    options: dict[str, Any] = {"scope": "snsapi_userinfo"}
    first = await logged_in(stack, stored(stack, redis_store, redis_prefix, **options))
    second = await logged_in(stack, stored(stack, redis_store, redis_prefix, **options))
    lily = await logged_in(stack, stored(stack, redis_store, redis_prefix, **options), "lily")
    middleware = stored(stack, redis_store, redis_prefix, **options)
    async with stack.phone(middleware, user_agent=CHROME_UA) as phone:
        phone.cookies.set("wxauth_session", first)
        openid = (await phone.get("/whoami")).json()["user"]["openid"]
    assert await call(middleware, "revoke", openid) == 2
    assert len(keys(db, redis_prefix + "session:*")) == 1
    assert keys(db, f"{redis_prefix}identity:{tagged(openid)}") == []
    for cookie, user in ((first, None), (second, None), (lily, "Lily 🌸 李")):
        async with stack.phone(middleware) as phone:
            phone.cookies.set("wxauth_session", cookie)
            page = await phone.get("/whoami")
            if user is None:  # a WeChat page load without a session: off to WeChat again
                assert location(page).startswith(stack.authorize_url)
            else:
                assert page.json()["user"]["nickname"] == user
    assert await call(middleware, "revoke", openid) == 0


async def test_revoke_and_tokens_need_the_store(stack: Stack) -> None:
    middleware = stack.middleware()
    with pytest.raises(ConfigurationError, match="redis_url"):
        await call(middleware, "revoke", "o1")
    with pytest.raises(ConfigurationError, match="keep_tokens"):
        await call(middleware, "user_access_token", "o1")


async def test_a_duplicate_callback_is_answered_from_the_store_on_another_instance(
    stack: Stack, redis_store: Deployment, redis_prefix: str
) -> None:
    """WeChat's double redirect, or a refresh before the first answer arrived: the second
    callback carries the same code and state, and the same cookies as the first."""
    emulator = stack.emulator(auto_approve=True)
    first = stored(stack, redis_store, redis_prefix, scope="snsapi_userinfo")
    second = stored(stack, redis_store, redis_prefix, scope="snsapi_userinfo")
    async with stack.phone(first) as phone, stack.phone(second) as twin:
        start = await phone.get("/page?x=1")
        callback_url = location(await phone.get(location(start)))
        twin.cookies.update(phone.cookies)  # what the browser holds before either answer
        answers = [await phone.get(callback_url), await twin.get(callback_url)]
        for answer in answers:
            assert location(answer) == "/page?x=1"
            assert "wxauth_session=" in answer.headers["set-cookie"]
        exchanges = [c for c in emulator.calls if c.path == "/sns/oauth2/access_token"]
        assert len(exchanges) == 1  # the code was spent once
        users = [(await c.get("/whoami")).json()["user"] for c in (phone, twin)]
        assert users[0] == users[1]
        assert users[0]["nickname"] == "小明🐼"
        assert phone.cookies["wxauth_session"] != twin.cookies["wxauth_session"]


async def test_concurrent_duplicate_callbacks_spend_the_code_once(
    stack: Stack, redis_store: Deployment, redis_prefix: str
) -> None:
    emulator = stack.emulator(auto_approve=True)
    emulator.inject("access_token", latency=0.3)  # the first exchange is still running
    first = stored(stack, redis_store, redis_prefix)
    second = stored(stack, redis_store, redis_prefix)
    async with stack.phone(first) as phone, stack.phone(second) as twin:
        start = await phone.get("/page")
        callback_url = location(await phone.get(location(start)))
        twin.cookies.update(phone.cookies)
        answers = await asyncio.gather(phone.get(callback_url), twin.get(callback_url))
        assert [location(answer) for answer in answers] == ["/page", "/page"]
        assert len([c for c in emulator.calls if c.path == "/sns/oauth2/access_token"]) == 1


async def test_a_failed_exchange_is_not_remembered(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    emulator = stack.emulator(auto_approve=True)
    emulator.inject("access_token", errcode=-1, times=None)  # WeChat busy, retries too
    middleware = stored(stack, redis_store, redis_prefix, retries=0)
    async with stack.phone(middleware) as phone:
        start = await phone.get("/page")
        callback_url = location(await phone.get(location(start)))
        failed = await shown(phone, callback_url)
        assert failed.status_code == 503
        assert keys(db, redis_prefix + "code:*") == []
        # A refresh of the same callback gets WeChat's own answer, not a stale one.
        emulator.clear_faults()
        again = await phone.get(callback_url)
        assert location(again) == "/page"


async def test_kept_tokens_are_renewed_with_the_refresh_token(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    clock = Clock()
    emulator = stack.emulator(clock=clock, auto_approve=True)
    middleware = stored(stack, redis_store, redis_prefix, keep_tokens=True)
    async with stack.phone(middleware) as phone:
        openid = (await login(phone, "/whoami")).json()["user"]["openid"]
    token = await call(middleware, "user_access_token", openid)
    assert await wechat_accepts(stack, token, openid)
    # Within its life the kept token is given as it is, without calling WeChat.
    calls = len(emulator.calls)
    assert await call(middleware, "user_access_token", openid) == token
    assert len(emulator.calls) == calls
    # Two hours later it has expired at WeChat and in the store: renewed, the refresh kept.
    clock.advance(7200)
    key = f"{redis_prefix}token:{tagged(openid)}"
    record = json.loads(db.get(key) or b"null")
    record[4] -= 7200
    db.set(key, json.dumps(record), keepttl=True)
    assert not await wechat_accepts(stack, token, openid)
    renewed = await call(middleware, "user_access_token", openid)
    assert renewed != token
    assert await wechat_accepts(stack, renewed, openid)
    refreshes = [c for c in emulator.calls[calls:] if c.path == "/sns/oauth2/refresh_token"]
    assert len(refreshes) == 1
    assert 29 * 24 * 3600 < db.ttl(key) <= 30 * 24 * 3600  # the refresh_token's own 30 days


async def wechat_accepts(stack: Stack, token: str, openid: str) -> bool:
    async with httpx.AsyncClient(base_url=stack.wechat_url, trust_env=False) as client:
        answer = await client.get("/sns/auth", params={"access_token": token, "openid": openid})
    return bool(answer.json()["errcode"] == 0)


async def test_an_expired_refresh_token_means_logging_in_again(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    emulator = stack.emulator(auto_approve=True)
    middleware = stored(stack, redis_store, redis_prefix, keep_tokens=True)
    async with stack.phone(middleware) as phone:
        openid = (await login(phone, "/whoami")).json()["user"]["openid"]
    key = f"{redis_prefix}token:{tagged(openid)}"
    record = json.loads(db.get(key) or b"null")
    record[4] = 0  # expired long ago
    db.set(key, json.dumps(record), keepttl=True)
    emulator.inject("refresh_token", errcode=42002)
    with pytest.raises(TokenUnavailable, match="42002"):
        await call(middleware, "user_access_token", openid)
    assert db.exists(key) == 0  # forgotten: it can never work again
    with pytest.raises(TokenUnavailable):
        await call(middleware, "user_access_token", openid)
    with pytest.raises(TokenUnavailable, match="no WeChat token"):
        await call(middleware, "user_access_token", "o-nobody")


async def test_revoke_drops_the_kept_tokens(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator(auto_approve=True)
    middleware = stored(stack, redis_store, redis_prefix, keep_tokens=True)
    async with stack.phone(middleware) as phone:
        openid = (await login(phone, "/whoami")).json()["user"]["openid"]
    assert await call(middleware, "user_access_token", openid)
    assert await call(middleware, "revoke", openid) == 1
    assert keys(db, redis_prefix + "*") == []
    with pytest.raises(TokenUnavailable):
        await call(middleware, "user_access_token", openid)


async def test_tokens_are_not_kept_unless_asked(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator(auto_approve=True)
    await logged_in(stack, stored(stack, redis_store, redis_prefix))
    assert keys(db, redis_prefix + "token:*") == []
    with pytest.raises(ConfigurationError, match="redis_url"):
        stack.middleware(keep_tokens=True)


async def test_the_index_of_an_identity_forgets_sessions_that_expired(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator(auto_approve=True)
    middleware = stored(stack, redis_store, redis_prefix)
    for _ in range(3):
        await logged_in(stack, middleware)
    sessions = keys(db, redis_prefix + "session:*")
    assert len(sessions) == 3
    db.delete(*sessions[:2])  # as if they had expired
    await logged_in(stack, middleware)
    (index,) = keys(db, redis_prefix + "identity:*")
    members: set[bytes] = db.smembers(index)  # type: ignore[assignment]
    named = {member.decode().partition(":")[2] for member in members}
    alive = {sid_of(key) for key in keys(db, redis_prefix + "session:*")}
    assert len(alive) == 2  # the one left, and the new one
    assert named == alive | {key.rpartition(":")[2] for key in keys(db, redis_prefix + "code:*")}


def test_logging_in_again_and_again_keeps_the_index_small(
    redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    """Each login checks a bounded sample of the identity's index: its cost does not grow with
    the logins before it, and entries of sessions gone are dropped along the way."""
    store = SessionStore(redis_prefix, (SECRET_KEY.encode(),), 3600, "openid")
    client = redis_client(redis_store.url)
    with httpx.Client() as http:
        for _ in range(200):
            cookie = drive_sync(
                store.save(Session(WeChatUser(openid="o1")), None), http, None, client
            )
            sid = store.session_id(cookie)
            assert sid is not None
            db.delete(
                f"{redis_prefix}session:{{{sid[:4]}}}{sid[4:]}"
            )  # gone at once, as if expired
    assert db.scard(f"{redis_prefix}identity:{tagged('o1')}") <= PRUNE_SAMPLE + 1
    client.close()


async def test_a_stored_session_that_is_not_one_is_ignored(
    stack: Stack, redis_store: Deployment, redis_prefix: str, db: redis.Redis
) -> None:
    stack.emulator(auto_approve=True)
    cookie = await logged_in(stack, stored(stack, redis_store, redis_prefix))
    (key,) = keys(db, redis_prefix + "session:*")
    for junk in (b"{not json", b'["v", "o1"]', b"[]"):
        db.set(key, junk)
        async with stack.phone(
            stored(stack, redis_store, redis_prefix), user_agent=CHROME_UA
        ) as phone:
            phone.cookies.set("wxauth_session", cookie)
            page = await phone.get("/whoami")
            assert page.status_code == 200
            assert page.json()["user"] is None


# -- the store is down ------------------------------------------------------------------------


async def test_a_session_cannot_be_checked_while_the_store_is_down(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    stack.emulator(auto_approve=True)
    cookie = await logged_in(stack, stored(stack, redis_server, redis_prefix))
    down = stack.middleware(redis_url=closed_store_url(), redis_prefix=redis_prefix)
    async with stack.phone(down) as phone:
        phone.cookies.set("wxauth_session", cookie)
        page = await phone.get("/whoami")
        assert page.status_code == 503
        assert "Login is unavailable for a moment" in page.text
        assert "Traceback" not in page.text
        assert "set-cookie" not in page.headers  # the session cookie is left as it is
        api = await phone.get("/whoami", headers=API_HEADERS)
        assert api.status_code == 503
        assert api.json()["error"] == "store_unavailable"
        # Logging out cannot be done either: said, not pretended.
        out = await phone.post("/wxauth/logout", headers={"origin": APP_ORIGIN})
        assert out.status_code == 503
        assert "set-cookie" not in out.headers


async def test_without_a_session_cookie_the_store_is_not_needed(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    stack.emulator(auto_approve=True)
    down = stack.middleware(redis_url=closed_store_url(), redis_prefix=redis_prefix)
    async with stack.phone(down, user_agent=CHROME_UA) as desktop:
        page = await desktop.get("/whoami")
        assert page.json() == {"user": None, "path": "/whoami"}
        # A forged or foreign session cookie is refused by its signature, before any lookup.
        desktop.cookies.set("wxauth_session", "forged.value.sig")
        assert (await desktop.get("/whoami")).json()["user"] is None
    async with stack.phone(down) as phone:
        phone.cookies.set("wxauth_session", "forged.value.sig")
        assert location(await phone.get("/page")).startswith(stack.authorize_url)


async def test_a_login_completing_while_the_store_is_down_fails_clearly(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    emulator = stack.emulator(auto_approve=True)
    down = stack.middleware(redis_url=closed_store_url(), redis_prefix=redis_prefix)
    async with stack.phone(down) as phone:
        start = await phone.get("/page")
        callback = await shown(phone, location(await phone.get(location(start))))
        assert callback.status_code == 503
        assert "wxauth_session=" not in callback.headers.get("set-cookie", "")
        assert emulator.calls == []  # the code is not spent: a retry later can use it


async def test_websockets_get_the_stored_user_and_are_refused_while_the_store_is_down(
    asgi_stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    asgi_stack.emulator(auto_approve=True)
    cookie = await logged_in(asgi_stack, stored(asgi_stack, redis_server, redis_prefix))
    up = WeChatAuthMiddleware(
        inner_app(),
        **middleware_options(
            asgi_stack.wechat_url, redis_url=redis_server.url, redis_prefix=redis_prefix
        ),
    )
    sent = await websocket_messages(up, "/ws", f"wxauth_session={cookie}")
    assert sent[0]["type"] == "websocket.accept"
    assert json.loads(sent[1]["text"])["user"]["openid"]
    down = WeChatAuthMiddleware(
        inner_app(),
        **middleware_options(
            asgi_stack.wechat_url, redis_url=closed_store_url(), redis_prefix=redis_prefix
        ),
    )
    sent = await websocket_messages(down, "/ws", f"wxauth_session={cookie}")
    assert sent == [{"type": "websocket.close", "code": 1011, "reason": "store down"}]
    await up.aclose()
    await down.aclose()


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"redis_url": "http://127.0.0.1:6379"}, "redis://"),
        ({"redis_url": "redis://127.0.0.1:notaport/0"}, "not a valid Redis URL"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "redis_prefix": "has space"}, "redis_prefix"),
        ({"keep_tokens": True}, "keep_tokens=True needs redis_url"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "keep_tokens": "yes"}, "True or False"),
    ],
)
def test_store_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WeChatAuthMiddleware(inner_app(), **middleware_options("http://127.0.0.1:1", **options))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://:hunter2@127.0.0.1:6379", "must be a redis://"),
        ("redis://:hunter2@127.0.0.1:notaport/0", "not a valid Redis URL"),
        ("redis://:hunter2@127.0.0.1:6379/0?nonsense=1", "unknown option 'nonsense'"),
        ("rediss://:hunter2@127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379", "names the service"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379,127.0.0.1:x/s", "is not host:port"),
        ("redis+sentinel://:hunter2@127.0.0.1:26379/s/0/1", "names the service"),
        ("redis+cluster://:hunter2@127.0.0.1:7000/0", "a cluster has no database number"),
        ("redis+cluster://:hunter2@127.0.0.1:7000?db=1", "a cluster has no database number"),
        ("redis+cluster://:hunter2@127.0.0.1:70000", "is not host:port"),
        ("unix://:hunter2@/run/redis.sock?db=x", "not a valid Redis URL"),
    ],
)
def test_a_bad_redis_url_is_refused_without_its_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as refused:
        WeChatAuthMiddleware(inner_app(), **middleware_options("http://127.0.0.1:1", redis_url=url))
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:hunter2@127.0.0.1:26379,[::1]:26380/mymaster/2?socket_timeout=0.5",
        "redis+cluster://:hunter2@127.0.0.1:7000,127.0.0.1:7001?socket_timeout=0.5",
        "redis+cluster://:hunter2@127.0.0.1",
    ],
)
def test_sentinel_and_cluster_urls_are_accepted(url: str) -> None:
    middleware = WeChatAuthMiddleware(
        inner_app(), **middleware_options("http://127.0.0.1:1", redis_url=url)
    )
    assert "hunter2" not in repr(middleware)
    assert middleware.config.redis_url == url


def test_the_redis_url_is_not_in_the_repr() -> None:
    middleware = WeChatAuthWSGIMiddleware(
        lambda environ, start_response: [],
        **middleware_options(
            "http://127.0.0.1:1", redis_url="redis://:hunter2-password@127.0.0.1:6379/0"
        ),
    )
    assert "hunter2" not in repr(middleware)
    assert SECRET_KEY not in repr(middleware)
    assert urlsplit(middleware.config.redis_url or "").password == "hunter2-password"
