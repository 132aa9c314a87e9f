"""Two instances of a site, one Redis: the session store as a load balancer sees it.

Two real uvicorn processes serve `tests.redis_site:app` (configured from `WXAUTH_*` variables)
against one real redis-server and the WeChat emulator, itself a process (`--auto-approve`). A
"phone" is a synchronous httpx client with WeChat's user agent that follows no redirect by
itself: each step is sent by hand to the instance the scenario wants, as a load balancer might.
Cookies of 127.0.0.1 are shared across ports, so both instances see the same cookies, as they
would behind one public address.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from wxauth_middleware import WeChatAuthWSGIMiddleware
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET
from wxauth_middleware.emulator.personas import DEFAULT_PERSONAS

from .redis_support import RedisServer
from .servers import (
    ServerProcess,
    distinct_ports,
    printed_on_failure,
    python_command,
    start_deployment,
    uvicorn_sites,
)
from .support import (
    CHROME_UA,
    SECRET_KEY,
    WECHAT_UA,
    authorize_params,
    clean_address,
    inner_wsgi_app,
    location,
)

SESSION_COOKIE = "wxauth_session"
CALLBACK_PATH = "/wxauth/callback"
# The emulator's --auto-approve logs everyone in as its default persona.
OPENID = DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON_ACCEPT = "application/json"
HTTP_TIMEOUT_S = 10.0
# Variables of this environment the site processes must not inherit: another WXAUTH_* would
# configure them differently from the test's options; a proxy would take their calls to the
# emulator elsewhere.
INHERITED_UNSET = tuple(
    name
    for name in os.environ
    if name.startswith("WXAUTH_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy")
)


@dataclass
class Cluster:
    """The emulator and the two instances of the site, and the Redis they share."""

    emulator: ServerProcess
    site_a: ServerProcess
    site_b: ServerProcess
    redis: RedisServer
    prefix: str
    env: dict[str, str]

    @property
    def a(self) -> str:
        return self.site_a.url

    @property
    def b(self) -> str:
        return self.site_b.url

    @property
    def servers(self) -> tuple[ServerProcess, ...]:
        return (self.emulator, self.site_a, self.site_b)

    @property
    def authorize_url(self) -> str:
        return f"{self.emulator.url}/connect/oauth2/authorize"

    def keys(self, kind: str) -> set[str]:
        """The store's keys of one kind (session, code, identity...) under the test's prefix."""
        with self.redis.client() as client:
            return {key.decode() for key in client.scan_iter(match=f"{self.prefix}{kind}:*")}

    def get(self, key: str) -> bytes | None:
        with self.redis.client() as client:
            value: bytes | None = client.get(key)
            return value

    def assert_no_tracebacks(self) -> None:
        """Nothing blew up inside the servers: a failure they handled is a log line, never an
        unhandled exception."""
        for server in self.servers:
            output = server.output()
            assert "Traceback" not in output, server.describe()
            assert "Exception in ASGI application" not in output, server.describe()


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    """The emulator and two uvicorn instances of `tests.redis_site:app`, started at once."""
    emulator_port, port_a, port_b = distinct_ports(3)
    emulator = ServerProcess(
        "emulator",
        python_command(
            "-m",
            "wxauth_middleware.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(emulator_port),
            "--auto-approve",
        ),
        port=emulator_port,
        unset=INHERITED_UNSET,
    )
    # A prefix of this module's own: the Redis server is shared by the whole test session.
    prefix = f"wxauth-multi-{secrets.token_hex(4)}:"
    env = {
        "WXAUTH_APP_ID": DEFAULT_APP_ID,
        "WXAUTH_APP_SECRET": DEFAULT_APP_SECRET,
        "WXAUTH_SECRET_KEY": SECRET_KEY,
        "WXAUTH_AUTHORIZE_URL": f"{emulator.url}/connect/oauth2/authorize",
        "WXAUTH_API_BASE_URL": emulator.url,
        "WXAUTH_REDIS_URL": redis_server.url,
        "WXAUTH_REDIS_PREFIX": prefix,
    }
    sites = uvicorn_sites("tests.redis_site:app", (port_a, port_b), env, INHERITED_UNSET)
    with ExitStack() as stack:
        # All three start at once (nothing needs another at startup); each is always stopped.
        start_deployment(stack, emulator, sites)
        yield Cluster(emulator, sites[0], sites[1], redis_server, prefix, env)
        with suppress(redis.RedisError), redis_server.client() as client:
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)


# -- the phone -------------------------------------------------------------------------------


@contextmanager
def phone(cookies: httpx.Cookies | None = None) -> Iterator[httpx.Client]:
    """WeChat's in-app browser (with a copy of `cookies`), following no redirect by itself."""
    with httpx.Client(
        headers={"user-agent": WECHAT_UA, "accept": PAGE_ACCEPT},
        cookies=cookies,
        trust_env=False,
        follow_redirects=False,
        timeout=HTTP_TIMEOUT_S,
    ) as client:
        yield client


def on(site: str, url: str) -> str:
    """`url` (a path and query of the site) sent to the instance at `site`."""
    parts = urlsplit(url)
    return f"{site}{parts.path}?{parts.query}" if parts.query else site + parts.path


def start_login(cluster: Cluster, client: httpx.Client, site: str, path: str) -> str:
    """Open `path` on `site` without a session: to WeChat, which approves at once; returns the
    callback URL WeChat sends the phone back to (not visited yet)."""
    start = client.get(site + path)
    to_wechat = location(start)
    params = authorize_params(to_wechat, cluster.authorize_url)
    assert params["appid"] == DEFAULT_APP_ID
    assert params["redirect_uri"] == site + CALLBACK_PATH
    approved = client.get(to_wechat)
    callback = location(approved)
    assert callback.startswith(f"{site}{CALLBACK_PATH}?code="), callback
    return callback


def assert_logged_in_by(answer: httpx.Response, return_to: str) -> str:
    """`answer` is a callback's success: back to `return_to` with a new session cookie (whose
    value is returned), never back to WeChat (what a spent code, 40163, would bring)."""
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"] == return_to
    sessions = [
        header.partition(";")[0].partition("=")[2]
        for header in answer.headers.get_list("set-cookie")
        if header.startswith(SESSION_COOKIE + "=")
    ]
    assert len(sessions) == 1, answer.headers
    assert sessions[0], answer.headers
    return sessions[0]


def whoami(client: httpx.Client, site: str) -> str | None:
    """The openid the instance at `site` sees on a page load (None: another browser, anonymous);
    the page must have been served by the app."""
    answer = client.get(site + "/whoami")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-app"] == "reached"
    user: dict[str, Any] | None = answer.json()["user"]
    return None if user is None else str(user["openid"])


def assert_logged_out(cluster: Cluster, client: httpx.Client, site: str) -> None:
    """A page load on `site` is sent to WeChat for a login; an API call gets a 401."""
    page = client.get(site + "/whoami")
    authorize_params(location(page), cluster.authorize_url)
    api = client.get(site + "/whoami", headers={"accept": JSON_ACCEPT})
    assert api.status_code == 401, api.text
    assert api.json()["error"] == "login_required"


def login(cluster: Cluster, client: httpx.Client, start_on: str, back_on: str) -> None:
    """A whole login: started on `start_on`, the callback delivered to `back_on`."""
    callback = start_login(cluster, client, start_on, "/whoami")
    assert_logged_in_by(client.get(on(back_on, callback)), "/whoami")


# -- the scenarios ---------------------------------------------------------------------------


def test_login_on_one_instance_is_a_session_on_the_other(cluster: Cluster) -> None:
    with printed_on_failure(*cluster.servers):
        before = cluster.keys("session")
        with phone() as client:
            callback = start_login(cluster, client, cluster.a, "/whoami")
            value = assert_logged_in_by(client.get(callback), "/whoami")
            # Logged in on A; the other instance knows the session as well.
            assert whoami(client, cluster.b) == OPENID
            assert whoami(client, cluster.a) == OPENID
            # The cookie is an opaque id; the session itself is in Redis, one key of it.
            assert client.cookies[SESSION_COOKIE] == value
            assert OPENID not in value
            created = cluster.keys("session") - before
            assert len(created) == 1, created
            (key,) = created
            stored = cluster.get(key)
            assert stored is not None
            assert OPENID in stored.decode()
            # The cookie is worth nothing without that key: deleted, both instances log the
            # phone in again.
            with cluster.redis.client() as store:
                assert store.delete(key) == 1
            assert_logged_out(cluster, client, cluster.a)
            assert_logged_out(cluster, client, cluster.b)
        cluster.assert_no_tracebacks()


def test_duplicate_callback_is_answered_on_either_instance(cluster: Cluster) -> None:
    with printed_on_failure(*cluster.servers):
        codes_before = cluster.keys("code")
        with phone() as client:
            callback = start_login(cluster, client, cluster.a, "/page?x=1")
            # The phone's cookies as WeChat sends it back: the login's state, not yet used.
            original = httpx.Cookies(client.cookies)
        # The callback reaches A, then its duplicate reaches B; both with those cookies (so
        # B does not see the "done" marker A's answer set: a real double delivery).
        values = []
        for site, other in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
            with phone(original) as delivery:
                values.append(assert_logged_in_by(delivery.get(on(site, callback)), "/page?x=1"))
                assert whoami(delivery, other) == OPENID
                assert whoami(delivery, site) == OPENID
        # Two sessions (each delivery its own), one code's result remembered in Redis.
        assert values[0] != values[1]
        codes = cluster.keys("code") - codes_before
        assert len(codes) == 1, codes
        (code_key,) = codes
        result = cluster.get(code_key)
        assert result is not None
        assert OPENID in result.decode()

        # Both deliveries at once, on both instances, while WeChat is slow to exchange the
        # code: one exchanges it, the other waits for its result.
        with phone() as client:
            callback = start_login(cluster, client, cluster.b, "/whoami")
            original = httpx.Cookies(client.cookies)
        faults = f"{cluster.emulator.url}/_emulator/faults"
        slow = {"endpoint": "access_token", "latency": 0.8, "times": 1}
        injected = httpx.post(faults, json=slow, trust_env=False, timeout=HTTP_TIMEOUT_S)
        assert injected.status_code == 200, injected.text
        barrier = threading.Barrier(2)
        answers: dict[str, tuple[httpx.Response, httpx.Cookies]] = {}
        failures: list[BaseException] = []

        def deliver(site: str) -> None:
            try:
                with phone(original) as delivery:
                    barrier.wait(timeout=HTTP_TIMEOUT_S)
                    answer = delivery.get(on(site, callback))
                    answers[site] = (answer, httpx.Cookies(delivery.cookies))
            except BaseException as exc:
                failures.append(exc)

        try:
            threads = [threading.Thread(target=deliver, args=(s,)) for s in (cluster.a, cluster.b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=3 * HTTP_TIMEOUT_S)
            assert not any(thread.is_alive() for thread in threads)
        finally:
            httpx.delete(faults, trust_env=False, timeout=HTTP_TIMEOUT_S)
        assert not failures, failures
        assert set(answers) == {cluster.a, cluster.b}
        values = []
        for site, other in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
            answer, cookies = answers[site]
            values.append(assert_logged_in_by(answer, "/whoami"))
            with phone(cookies) as delivery:
                assert whoami(delivery, other) == OPENID
        assert values[0] != values[1]
        # The one that exchanged the code waited for WeChat; so did the other, for its result.
        assert min(answer.elapsed.total_seconds() for answer, _ in answers.values()) > 0.3
        cluster.assert_no_tracebacks()


def _assert_store_error(answer: httpx.Response, session_value: str) -> None:
    """A clear 503 that changes nothing of the browser's session and shows no internals."""
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("x-app") is None  # the app was not called
    assert answer.headers["cache-control"] == "no-store"
    for header in answer.headers.get_list("set-cookie"):
        assert not header.startswith(SESSION_COOKIE + "="), header
    for leak in ("Traceback", "ConnectionError", "redis://", session_value):
        assert leak not in answer.text


def test_redis_restarted_mid_run(cluster: Cluster) -> None:
    store = cluster.redis
    running = True
    with printed_on_failure(*cluster.servers):
        try:
            with phone() as client:
                login(cluster, client, cluster.a, cluster.b)
                value = client.cookies[SESSION_COOKIE]
                sessions = cluster.keys("session")
                assert whoami(client, cluster.a) == OPENID
                assert whoami(client, cluster.b) == OPENID

                # A quick restart between two requests: each instance's pooled connection is
                # dead, and the very next request must succeed all the same.
                running = False
                store.stop()
                store.start()
                running = True
                assert whoami(client, cluster.a) == OPENID
                assert whoami(client, cluster.b) == OPENID

                # Redis down. A page load with a session: an error page saying so, not a login
                # (that would loop) and not an anonymous page.
                with phone() as newcomer:
                    pending = start_login(cluster, newcomer, cluster.b, "/page")
                    pending_cookies = httpx.Cookies(newcomer.cookies)
                running = False
                store.stop()
                for site in (cluster.a, cluster.b):
                    page = client.get(site + "/whoami")
                    _assert_store_error(page, value)
                    assert page.headers["content-type"].startswith("text/html")
                    assert "session store" in page.text
                    api = client.get(site + "/whoami", headers={"accept": JSON_ACCEPT})
                    _assert_store_error(api, value)
                    assert api.headers["content-type"].startswith("application/json")
                    assert api.json()["error"] == "store_unavailable"
                    # Another browser without a session needs no store: it passes.
                    desktop = httpx.get(
                        site + "/whoami",
                        headers={"user-agent": CHROME_UA, "accept": PAGE_ACCEPT},
                        trust_env=False,
                        timeout=HTTP_TIMEOUT_S,
                    )
                    assert desktop.status_code == 200, desktop.text
                    assert desktop.json()["user"] is None
                # A callback now cannot be recorded: a clear error, and the code is not spent.
                with phone(pending_cookies) as newcomer:
                    failed = newcomer.get(on(cluster.a, pending))
                    _assert_store_error(failed, value)
                    assert "session store" in failed.text
                    # The page puts an address without the code and state in the address bar,
                    # which shows the same page again.
                    clean = clean_address(failed.text)
                    assert clean is not None
                    assert "code=" not in clean
                    _assert_store_error(newcomer.get(on(cluster.a, clean)), value)
                # The phone still has its session cookie, untouched.
                assert client.cookies[SESSION_COOKIE] == value

                store.start()
                running = True
                # Back: the same session, on both instances, from the first request on.
                assert whoami(client, cluster.a) == OPENID
                assert whoami(client, cluster.b) == OPENID
                assert cluster.keys("session") >= sessions
                # The failed callback, delivered again, logs the newcomer in.
                with phone(pending_cookies) as newcomer:
                    assert_logged_in_by(newcomer.get(on(cluster.b, pending)), "/page")
                    assert whoami(newcomer, cluster.a) == OPENID
        finally:
            if not running:
                store.start()  # the session's Redis is shared with the other tests
        # Nothing half-done was left behind: no code claimed for good by a failed request,
        # every stored session readable.
        for key in cluster.keys("code"):
            assert cluster.get(key), key
        for key in cluster.keys("session"):
            stored = cluster.get(key)
            assert stored is not None
            assert OPENID in stored.decode(), stored
        cluster.assert_no_tracebacks()


def test_revoke_ends_the_sessions_on_every_instance(cluster: Cluster) -> None:
    with printed_on_failure(*cluster.servers), phone() as first, phone() as second:
        login(cluster, first, cluster.a, cluster.a)
        callback = start_login(cluster, second, cluster.b, "/whoami")
        before_callback = httpx.Cookies(second.cookies)
        assert_logged_in_by(second.get(callback), "/whoami")
        for client in (first, second):
            assert whoami(client, cluster.a) == OPENID
            assert whoami(client, cluster.b) == OPENID
        tag = hashlib.sha256(OPENID.encode()).hexdigest()[:4]  # the identity's hash tag
        index = f"{cluster.prefix}identity:{{{tag}}}{OPENID}"
        with cluster.redis.client() as store:
            members = {member.decode() for member in store.smembers(index)}
        listed = {member for member in members if member.startswith("s:")}
        assert len(listed) >= 2, members

        # An operator's script, configured like the site (the same environment), revokes.
        revoker = WeChatAuthWSGIMiddleware.from_env(inner_wsgi_app, environ=cluster.env)
        try:
            assert revoker.revoke(OPENID) == len(listed)
            assert revoker.revoke(OPENID) == 0
        finally:
            revoker.close()
        # Every session of the module is this user's: none is left, nor the user's index.
        assert not cluster.keys("session")
        assert not cluster.keys("identity")
        for client in (first, second):
            assert_logged_out(cluster, client, cluster.a)
            assert_logged_out(cluster, client, cluster.b)
        # A duplicate of a revoked login's callback does not log the user back in: its
        # remembered result went with the revocation, and the code is spent at WeChat, so the
        # login starts over there.
        with phone(before_callback) as duplicate:
            replayed = duplicate.get(on(cluster.a, callback))
            authorize_params(location(replayed), cluster.authorize_url)
            for header in replayed.headers.get_list("set-cookie"):
                assert not header.startswith(SESSION_COOKIE + "="), header
            assert_logged_out(cluster, duplicate, cluster.b)
        # Revoked is not banned: a new login works, across instances again.
        login(cluster, first, cluster.b, cluster.a)
        assert whoami(first, cluster.a) == OPENID
        assert whoami(first, cluster.b) == OPENID
        cluster.assert_no_tracebacks()
