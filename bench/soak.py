"""A bounded load and soak test: many WeChat browsers logging in and browsing the demo, with
upstream latency and faults injected, for a fixed time; errors classified, memory watched.

    python bench/soak.py            # 50 browsers for 60 s (about 65 s in all)
    python bench/soak.py --quick    # 10 browsers for 10 s (about 12 s)
    python bench/soak.py --duration 600 --browsers 100    # a longer soak
    python bench/soak.py --redis    # the same, sessions in Redis (a redis-server of its own)

The server is the demo (`python -m wxauth_middleware.demo --port P --auto-approve`), one uvicorn
process on 127.0.0.1 with the WeChat emulator embedded at /_wechat (the middleware calls it
in-process). With --redis, the script also starts its own `redis-server` (found on PATH; exit
status 2 without it) on a free 127.0.0.1 port, in a temporary directory, without persistence
(`--save "" --appendonly no`), and the demo gets `--redis-url redis://127.0.0.1:R/0`: sessions
live in Redis (the cookie holds a signed id), a log-out deletes the stored session, duplicate
callbacks are answered from Redis.

Through the emulator's control API (POST /_wechat/_emulator/faults) the script injects, until
the end: a latency on every WeChat API call (default 50 ms), errcode -1 on a share of the
access_token calls (default 3%; the middleware retries those), HTTP 502 on a share of the
userinfo calls (2%), and a malformed (truncated JSON) body on a share of the access_token calls
(1%).

Each "browser" is its own httpx.AsyncClient (WeChat's user agent, its own cookie jar and
connection) and loops until the deadline: log in (a page -> 302 to the emulator's authorize ->
302 to /wxauth/callback -> 302 back to the page -> the page, logged in), browse a few pages
(/, /profile, /api/me with Accept: application/json), sometimes log out (POST /logout, which
goes through the middleware's logout_path) and log in again. Every response is checked (status,
Location on this site and where it should point, the page says who is logged in) and every
failure classified by kind, and as EXPLAINED by the injected faults (a 502 login error page
when 502 or malformed answers are injected,
a 503 after errcode -1 outlasted the retries) or
UNEXPLAINED (anything else: a 500, a redirect loop, a Location off-site, a lost session, a
client-side timeout, a connection error, a traceback or an unknown warning in the server's log).
The server's log is read at the end: its login failures by reason, cross-checked against what
the browsers saw. Nothing injects a Redis fault: with --redis, a 503 store_unavailable, or the
middleware's "session store failed" warning in the log, is unexplained.

The server's resident memory (VmRSS from /proc/<pid>/status) is sampled every few seconds and
printed as it goes; the growth from the first sample after the warm-up to the last one is
"flat" when under 5 MiB or under 5%, and is also given per login. That process holds the
emulator too, which keeps by design every code and token it issues (up to 100,000 per table)
and its last 10,000 API calls, about 3 KB per login until those caps; the middleware's own
per-login state is its 1024-entry cache of verified session cookies. So a short run grows by
roughly 3.5 KB per login whatever the middleware does; compare runs per login, and see
bench/inprocess.py for the middleware alone.

With --redis, the store's memory is watched too: Redis's used_memory (INFO memory) and its number
of keys (DBSIZE) at the start, with every RSS sample, and at the end, with the keys by kind, the
longest time to live of each kind and the largest identity index, and the growth per login.
What the store holds is bounded by time, not by the number of logins: a `code:` key per login
lives for the code's 5 minutes, a `session:` key until its log-out or `max_age` (the demo keeps
the default, 14 days; a browser that starts over after a failure or is still logged in at the
end leaves its session behind, as a real browser does), one `identity:` set per user (the
demo's auto-approve logs everyone in as the same persona, so there is one set, holding an entry
per live session and per code of the last 5 minutes). A run shorter than 5 minutes therefore
grows by about one key per login; a longer one levels off. One user logging in ~20 times a
second is the worst case for that index; each login checks a bounded sample of it for entries
that expired, so the server's ms/request should stay level over the run, as without --redis.

Bounded: every request has a timeout (--timeout), no request starts after the deadline, the
requests still in flight then get the request timeout to finish and are cancelled after it, and
the server (and redis-server with --redis, after it) is always terminated (SIGTERM, wait,
SIGKILL). Exit status 1 when any error is unexplained (or the server or redis-server dies), 2
when the server or redis-server cannot be started (or is not installed) or the emulator refuses
the faults, 0 otherwise.

This machine is shared: the browsers run in this one Python process and compete with the
server for the same cores, so requests/s and latencies are those of this setup, not of the
middleware alone (bench/logins.py and bench/inprocess.py measure those).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import random
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import httpx
from _common import (
    WECHAT_UA,
    RedisServer,
    free_port,
    machine_lines,
    percentile,
    print_table,
    running_redis,
    stop_process,
    wait_for_port,
)

if TYPE_CHECKING:
    import redis
    import redis.asyncio

ROOT = Path(__file__).resolve().parent.parent
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON = "application/json"
PAGES = ("/", "/profile", "/api/me")
CALLBACK_PATH = "/wxauth/callback"
AUTHORIZE_PATH = "/_wechat/connect/oauth2/authorize"
# After logging out, a WeChat visitor sees so on every page, with one tap to log in again.
_LOG_IN_AGAIN = re.compile(r'<a class=button href="([^"]+)" id="log-in-again">')
SESSION_COOKIE = "wxauth_session"
# The login-state cookie (the logins in progress), over http and over https.
STATE_COOKIES = ("wxauth_session_login", "__Host-wxauth_session_login")
# A truncated token answer: what a proxy cutting WeChat's body short would deliver.
MALFORMED_BODY = '{"access_token":"ACCESS_TOKEN","expires_in":7200,"refresh_token":'
FLAT_MIB = 5.0
FLAT_SHARE = 0.05
_ERROR_CODE = re.compile(r'id="error-code">([^<]+)<')
_ERRCODE = re.compile(r"WeChat errcode (-?\d+)")
_LOGGED_IN = 'data-logged-in="true"'
_LOGIN_FAILED = re.compile(r"wxauth login failed (.*?)(?: rid=\S*)? duration_ms=\d+")
_DURATION = re.compile(r"duration_ms=(\d+)")
_RETRY = re.compile(r"wxauth retrying WeChat (\S+) in [\d.]+s \(attempt \d+\): (\S+)")
REDIS_PREFIX = "wxauth:"  # the demo keeps the middleware's default redis_prefix
_EXPECTED_LOG = re.compile(
    r"^(INFO|WARNING\s+wxauth: not talking to WeChat itself|wxauth-middleware demo|  )"
)


# The middleware's defaults (README, options table), which the demo keeps.
HTTP_TIMEOUT = 10.0
LOGIN_TIMEOUT = 20.0
RETRIES = 2


# -- the injected faults, and what they can explain --------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One `WeChatEmulator.inject` call, as the control API takes it (times: until the end)."""

    endpoint: str
    latency: float = 0.0
    errcode: int | None = None
    http_status: int | None = None
    body: str | None = None
    probability: float = 1.0

    def payload(self) -> dict[str, object]:
        data: dict[str, object] = {"endpoint": self.endpoint, "times": None}
        if self.latency:
            data["latency"] = self.latency
        if self.errcode is not None:
            data["errcode"] = self.errcode
        if self.http_status is not None:
            data["http_status"] = self.http_status
        if self.body is not None:
            data["body"] = self.body
        if self.probability < 1:
            data["probability"] = self.probability
        return data

    def hits(self, endpoint: str | None) -> bool:
        """Whether it targets `endpoint` ("access_token", ...; None: any endpoint)."""
        return endpoint is None or self.endpoint in ("*", endpoint)

    def describe(self) -> str:
        what = []
        if self.latency:
            what.append(f"+{self.latency * 1000:g} ms")
        if self.errcode is not None:
            what.append(f"errcode {self.errcode}")
        if self.http_status is not None:
            what.append(f"HTTP {self.http_status}")
        if self.body is not None:
            what.append(f"malformed body {self.body[:24]!r}...")
        share = "every call" if self.probability >= 1 else f"{self.probability:.0%} of calls"
        return f"{self.endpoint}: {', '.join(what)} on {share}"


@dataclass(frozen=True)
class FaultPlan:
    faults: tuple[Fault, ...]
    http_timeout: float = HTTP_TIMEOUT
    login_timeout: float = LOGIN_TIMEOUT

    def http_status(self, status: int, endpoint: str | None = None) -> bool:
        return any(f.http_status == status and f.hits(endpoint) for f in self.faults)

    def any_http_error(self) -> bool:
        return any(f.http_status not in (None, 200) for f in self.faults)

    def body(self, endpoint: str | None = None) -> bool:
        return any(f.body is not None and f.hits(endpoint) for f in self.faults)

    def errcode(self, errcode: int, endpoint: str | None = None) -> bool:
        return any(f.errcode == errcode and f.hits(endpoint) for f in self.faults)

    def timeout(self) -> bool:
        """Whether the injected latency alone can exceed a call's or a login's time limit."""
        per_call = max(
            (
                sum(f.latency for f in self.faults if f.hits(e))
                for e in ("access_token", "userinfo")
            ),
            default=0.0,
        )
        return per_call >= self.http_timeout or 2 * per_call >= self.login_timeout

    def expected_failure_share(self) -> float:
        """The share of logins the faults should fail (errcode -1 retried `retries` times)."""
        retries = RETRIES
        busy = malformed = bad_gateway = 0.0
        for f in self.faults:
            if f.errcode == -1 and f.hits("access_token"):
                busy = 1 - (1 - busy) * (1 - f.probability)
            elif f.body is not None and f.hits("access_token"):
                malformed = 1 - (1 - malformed) * (1 - f.probability)
            elif f.http_status is not None and f.hits("userinfo"):
                bad_gateway = 1 - (1 - bad_gateway) * (1 - f.probability)
        # An attempt at access_token: busy first (injected first), else malformed.
        exhausted = busy ** (retries + 1)
        token_ok = (1 - exhausted) * (1 - malformed)
        return 1 - token_ok * (1 - bad_gateway)


# -- what the browsers see ------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    ok_pages: int = 0
    logins: int = 0
    login_attempts: int = 0
    logouts: int = 0
    cut_off: int = 0  # browsers stopped mid-request at the end (not errors)
    stopped_mid_login: int = 0  # logins the deadline interrupted (not errors)
    page_ms: list[float] = field(default_factory=list)
    login_ms: list[float] = field(default_factory=list)
    errors: Counter[tuple[str, bool]] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    max_cookie_bytes: int = 0
    max_state_cookies: int = 0
    openid: str | None = None

    def error(self, kind: str, explained: bool, example: str = "") -> None:
        self.errors[(kind, explained)] += 1
        if example and kind not in self.examples:
            self.examples[kind] = example[:160]

    def unexplained(self) -> int:
        return sum(n for (_, explained), n in self.errors.items() if not explained)

    def explained(self) -> int:
        return sum(n for (_, explained), n in self.errors.items() if explained)


class _Stop(Exception):
    """The deadline passed: the browser stops."""


class _Failed(Exception):
    """This request went wrong (already counted); the browser starts over."""


@dataclass
class Browser:
    number: int
    base: str
    client: httpx.AsyncClient
    stats: Stats
    plan: FaultPlan
    deadline: float
    logout_share: float
    rng: random.Random

    async def request(
        self, method: str, url: str, step: str, accept: str, fetch_site: str | None = None
    ) -> httpx.Response:
        if time.monotonic() >= self.deadline:
            raise _Stop
        self.stats.requests += 1
        try:
            response = await self.client.request(
                method,
                url,
                headers={
                    "accept": accept,
                    **({"sec-fetch-site": fetch_site} if fetch_site else {}),
                },
            )
        except httpx.TimeoutException as exc:
            self.stats.error(f"client-side timeout on {step}", False, f"{type(exc).__name__}")
            raise _Failed from exc
        except httpx.TransportError as exc:
            kind = f"connection error on {step}: {type(exc).__name__}"
            self.stats.error(kind, False, str(exc))
            raise _Failed from exc
        location = response.headers.get("location")
        if location is not None:
            netloc = urlsplit(location).netloc
            if netloc and netloc != urlsplit(self.base).netloc:
                self.stats.error(f"redirect off-site on {step}", False, location)
                raise _Failed
        return response

    def unexpected(self, step: str, response: httpx.Response, what: str = "") -> _Failed:
        kind = f"unexpected {response.status_code} on {step}" + (f" ({what})" if what else "")
        example = response.headers.get("location") or response.text[:160]
        self.stats.error(kind, False, example)
        return _Failed()

    async def run(self) -> None:
        logged_in = False
        while True:
            try:
                if not logged_in:
                    logged_in = await self.login()
                else:
                    for _ in range(self.rng.randint(1, 4)):
                        await self.browse(self.rng.choice(PAGES))
                    if self.rng.random() < self.logout_share:
                        await self.logout()
                        logged_in = False
            except _Failed:
                # Start over from a clean browser: no half-state from the failure carries on.
                self.client.cookies.clear()
                logged_in = False

    async def login(self) -> bool:
        """One login from an anonymous page visit; True when the page shows the user."""
        try:
            return await self._login()
        except _Stop:
            self.stats.stopped_mid_login += 1
            raise

    async def _login(self) -> bool:
        page = self.rng.choice(("/", "/profile"))
        began = time.perf_counter()
        self.stats.login_attempts += 1
        start = await self.request("GET", self.base + page, "page (anonymous)", HTML)
        again = _LOG_IN_AGAIN.search(start.text) if start.status_code == 200 else None
        if again is not None:
            # Logged out before: the visitor taps "重新登录" (login_path?next=the page).
            login_url = html.unescape(again.group(1))
            if not login_url.startswith(("http://", "https://")):
                login_url = self.base + login_url
            start = await self.request("GET", login_url, "log in again", HTML)
        authorize = start.headers.get("location", "")
        parts = urlsplit(authorize)
        if start.status_code != 302 or parts.path != AUTHORIZE_PATH:
            raise self.unexpected("page (anonymous)", start, "not sent to WeChat's authorize")
        query = dict(parse_qsl(parts.query))
        state = query.get("state", "")
        if query.get("redirect_uri") != self.base + CALLBACK_PATH or not state:
            raise self.unexpected("page (anonymous)", start, "bad authorize link")
        approved = await self.request("GET", authorize.split("#")[0], "authorize", HTML)
        callback = approved.headers.get("location", "")
        parts = urlsplit(callback)
        if (
            approved.status_code != 302
            or parts.path != CALLBACK_PATH
            or dict(parse_qsl(parts.query)).get("state") != state
        ):
            raise self.unexpected("authorize", approved, "not sent back to the callback")
        back = await self.request("GET", callback, "callback", HTML)
        self._cookies(back)
        if back.status_code != 302:
            self.login_failed(back)
            return False
        target = back.headers.get("location", "")
        if urlsplit(target).path == AUTHORIZE_PATH:
            raise self.unexpected("callback", back, "login restarted")
        if target != page:
            raise self.unexpected("callback", back, f"not back to {page}")
        if SESSION_COOKIE not in self.client.cookies:
            raise self.unexpected("callback", back, "no session cookie")
        landed = await self.request("GET", self.base + target, "page after login", HTML)
        if landed.status_code == 302:
            location = landed.headers.get("location", "")
            if urlsplit(location).path == AUTHORIZE_PATH:
                self.stats.error("redirect loop: sent to WeChat again right after a login", False)
                raise _Failed
        if landed.status_code != 200 or _LOGGED_IN not in landed.text:
            raise self.unexpected("page after login", landed, "not logged in")
        self.stats.logins += 1
        self.stats.login_ms.append((time.perf_counter() - began) * 1000)
        return True

    def _cookies(self, response: httpx.Response) -> None:
        sent = response.request.headers.get("cookie", "")
        self.stats.max_cookie_bytes = max(self.stats.max_cookie_bytes, len(sent))
        states = sum(1 for cookie in self.client.cookies.jar if cookie.name in STATE_COOKIES)
        self.stats.max_state_cookies = max(self.stats.max_state_cookies, states)

    def login_failed(self, response: httpx.Response) -> None:
        """The callback answered an error page: classify it, explained or not."""
        status = response.status_code
        found = _ERROR_CODE.search(response.text)
        code = found.group(1) if found else "no error code"
        plan = self.plan
        if code == "upstream_bad_response" and status == 502:
            kind = "login failed: 502 upstream_bad_response (WeChat's answer unusable)"
            explained = plan.any_http_error() or plan.body()
        elif code == "wechat_error":
            number = _ERRCODE.search(response.text)
            errcode = int(number.group(1)) if number else 0
            busy = " (busy after the retries)" if errcode == -1 else ""
            kind = f"login failed: {status} wechat_error errcode {errcode}{busy}"
            explained = plan.errcode(errcode)
        elif code == "upstream_timeout" and status == 504:
            kind = "login failed: 504 upstream_timeout"
            explained = plan.timeout()
        else:
            kind = f"login failed: {status} {code}"
            explained = False
        self.stats.error(kind, explained, response.text[-160:] if not explained else "")

    async def browse(self, path: str) -> None:
        began = time.perf_counter()
        accept = JSON if path == "/api/me" else HTML
        response = await self.request("GET", self.base + path, f"logged-in GET {path}", accept)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code == 302:
            self.stats.error(f"session lost: logged-in GET {path} sent to WeChat", False)
            raise _Failed
        if response.status_code != 200:
            raise self.unexpected(f"logged-in GET {path}", response)
        if accept == JSON:
            try:
                data = response.json()
                openid = data["user"]["openid"] if data.get("logged_in") is True else None
            except (ValueError, KeyError, TypeError, AttributeError):
                openid = None
            if not isinstance(openid, str):
                raise self.unexpected(f"logged-in GET {path}", response, "no user in the JSON")
            if self.stats.openid is None:
                self.stats.openid = openid
            elif openid != self.stats.openid:
                raise self.unexpected(f"logged-in GET {path}", response, "another user")
        elif _LOGGED_IN not in response.text:
            raise self.unexpected(f"logged-in GET {path}", response, "page not logged in")
        self.stats.ok_pages += 1
        self.stats.page_ms.append(elapsed)

    async def logout(self) -> None:
        # The log-out button's form post, from the site's own page.
        response = await self.request(
            "POST", self.base + "/logout", "logout", HTML, fetch_site="same-origin"
        )
        if response.status_code != 303 or response.headers.get("location") != "/logged-out":
            raise self.unexpected("logout", response)
        if SESSION_COOKIE in self.client.cookies:
            raise self.unexpected("logout", response, "session cookie kept")
        self.stats.logouts += 1


# -- the server's side ------------------------------------------------------------------------


def proc_status(pid: int) -> tuple[int, float]:
    """(VmRSS in KiB, CPU seconds user + system) of process `pid`."""
    rss = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, cpu


@dataclass
class Sample:
    t: float
    rss_kib: int
    cpu_s: float  # the server's CPU seconds so far
    driver_cpu_s: float  # this process's (the browsers')
    requests: int
    logins: int
    redis_used: int | None = None  # Redis's used_memory, bytes (with --redis)
    redis_keys: int | None = None  # its DBSIZE


def driver_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def store_sample(store: redis.asyncio.Redis | None) -> tuple[int | None, int | None]:
    """(used_memory, DBSIZE) of the Redis store, or (None, None) without one (or if it fails:
    the browsers' errors tell what a failing store did)."""
    if store is None:
        return None, None
    import redis

    try:
        memory = await store.info("memory")
        keys = await store.dbsize()
    except redis.RedisError:
        return None, None
    return int(memory["used_memory"]), int(keys)


async def take_sample(
    pid: int, stats: Stats, began: float, store: redis.asyncio.Redis | None
) -> Sample:
    """The server's RSS and CPU (OSError if it is gone), the run's counts, the store's figures."""
    rss, cpu = proc_status(pid)
    used, keys = await store_sample(store)
    return Sample(
        time.monotonic() - began,
        rss,
        cpu,
        driver_cpu(),
        stats.requests,
        stats.logins,
        used,
        keys,
    )


async def sample_memory(
    pid: int,
    stats: Stats,
    began: float,
    every: float,
    stop: asyncio.Event,
    out: list[Sample],
    store: redis.asyncio.Redis | None,
) -> None:
    """Sample the server (and the store) every `every` seconds until `stop`, printing each."""
    while True:
        try:
            sample = await take_sample(pid, stats, began, store)
        except OSError:
            return  # the server is gone; the caller reports it
        rss, cpu, used, keys = sample.rss_kib, sample.cpu_s, sample.redis_used, sample.redis_keys
        line = f"  t={sample.t:5.1f} s  RSS {rss / 1024:6.1f} MiB"
        if out and sample.t > out[-1].t:
            last = out[-1]
            span = sample.t - last.t
            served = sample.requests - last.requests
            line += (
                f"  CPU server {(cpu - last.cpu_s) / span:4.0%} "
                f"driver {(sample.driver_cpu_s - last.driver_cpu_s) / span:4.0%}"
                f"  server {1000 * (cpu - last.cpu_s) / max(served, 1):4.2f} ms/request"
                f"  {served / span:4.0f} requests/s"
            )
        if used is not None:
            line += f"  Redis {used / 1024 / 1024:5.2f} MiB {keys:6d} keys"
        out.append(sample)
        print(
            f"{line}  logins {stats.logins:5d}  errors {stats.explained()} explained, "
            f"{stats.unexplained()} unexplained",
            flush=True,
        )
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except asyncio.TimeoutError:  # not the built-in TimeoutError before Python 3.11
            continue


def inject(base: str, plan: FaultPlan) -> None:
    url = f"{base}/_wechat/_emulator/faults"
    with httpx.Client(timeout=5) as client:
        client.delete(url).raise_for_status()
        for count, fault in enumerate(plan.faults, 1):
            answer = client.post(url, json=fault.payload())
            if answer.status_code != 200 or answer.json() != {"ok": True, "active": count}:
                raise RuntimeError(f"the emulator refused {fault.payload()}: {answer.text}")


@dataclass
class ServerLog:
    failures: Counter[tuple[str, bool]] = field(default_factory=Counter)
    retries: Counter[tuple[str, bool]] = field(default_factory=Counter)
    logins_ok: int = 0
    login_ms: list[float] = field(default_factory=list)  # the middleware's own login times
    unexpected: list[str] = field(default_factory=list)  # the lines themselves
    events: int = 0  # unexpected lines, a traceback counting once


def explain_log_failure(reason: str, plan: FaultPlan) -> bool:
    """Whether a 'wxauth login failed ...' line's reason is one the faults can cause."""
    endpoint = "userinfo" if "sns/userinfo" in reason else "access_token"
    status = re.search(r"answered HTTP (\d+)", reason)
    if status:
        return plan.http_status(int(status.group(1)), endpoint)
    if "not JSON" in reason or "JSON that is not an object" in reason:
        return plan.body(endpoint)
    errcode = re.search(r"errcode=(-?\d+)", reason)
    if errcode:
        return plan.errcode(int(errcode.group(1)), endpoint)
    if "upstream_timeout" in reason:
        return plan.timeout()
    return False


def read_server_log(path: Path, plan: FaultPlan) -> ServerLog:
    log = ServerLog()
    in_traceback = False
    for line in path.read_text("utf-8", "replace").splitlines():
        failed = _LOGIN_FAILED.search(line)
        retry = _RETRY.search(line)
        if "wxauth login ok " in line:
            log.logins_ok += 1
            took = _DURATION.search(line)
            if took:
                log.login_ms.append(float(took.group(1)))
        elif failed:
            reason = re.sub(r"\(\d+ bytes\)", "(N bytes)", failed.group(1))
            log.failures[(reason, explain_log_failure(reason, plan))] += 1
        elif retry:
            endpoint, code = retry.groups()
            key = f"{endpoint} {code}"
            explained = code == "wechat_error" and plan.errcode(-1, endpoint.split("/")[-1])
            log.retries[(key, explained)] += 1
        elif line.startswith("Traceback") or in_traceback:
            # Tracebacks: the header, its indented frames, and the exception line.
            log.events += line.startswith("Traceback")
            in_traceback = line.startswith(("Traceback", " "))
            log.unexpected.append(line)
        elif not _EXPECTED_LOG.match(line):
            log.events += 1
            log.unexpected.append(line)
    return log


def start_server(port: int, log_path: Path, redis_url: str | None) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "wxauth_middleware.demo",
        "--port",
        str(port),
        "--auto-approve",
    ]
    if redis_url is not None:
        command += ["--redis-url", redis_url]
    with open(log_path, "wb") as log:
        return subprocess.Popen(  # noqa: S603
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT
        )


@dataclass
class StoreFigures:
    """What the store holds at one moment."""

    used_memory: int  # bytes, INFO memory
    keys: int  # DBSIZE
    by_kind: Counter[str] = field(default_factory=Counter)  # "session", "code", ...
    max_ttl: dict[str, int] = field(default_factory=dict)  # the longest TTL seen per kind, s
    largest_index: int = 0  # members of the largest identity:<...> set
    no_ttl: int = 0  # keys that never expire (a leak, if any)

    def describe_kinds(self) -> str:
        if not self.by_kind:
            return "none"
        return ", ".join(f"{kind} {n}" for kind, n in sorted(self.by_kind.items()))

    def describe_ttls(self) -> str:
        ttls = ", ".join(f"{kind} {_duration(t)}" for kind, t in sorted(self.max_ttl.items()))
        return f"{ttls or '-'}; keys that never expire: {self.no_ttl}"


def _duration(seconds: int) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds} s"


def store_figures(server: RedisServer, detail: bool) -> StoreFigures:
    """used_memory and DBSIZE; with `detail`, the keys by kind (from a SCAN), each kind's
    longest TTL and the largest identity index too."""
    with server.client() as client:
        figures = StoreFigures(int(client.info("memory")["used_memory"]), int(client.dbsize()))
        if not detail:
            return figures
        for raw in client.scan_iter(match=REDIS_PREFIX + "*", count=1000):
            key = raw.decode("utf-8", "replace")
            kind = key[len(REDIS_PREFIX) :].partition(":")[0]
            figures.by_kind[kind] += 1
            ttl = int(client.ttl(key))
            if ttl == -1:
                figures.no_ttl += 1
            elif ttl >= 0:  # (-2: expired meanwhile)
                figures.max_ttl[kind] = max(figures.max_ttl.get(kind, ttl), ttl)
            if kind == "identity":
                figures.largest_index = max(figures.largest_index, int(client.scard(key)))
    return figures


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    browsers: int
    timeout: float
    every: float
    warmup: float
    logout_share: float
    seed: int


async def drive(
    base: str,
    pid: int,
    plan: FaultPlan,
    options: Options,
    stats: Stats,
    samples: list[Sample],
    redis_server: RedisServer | None,
) -> float:
    """Run the browsers until the deadline; return the seconds the load lasted."""
    context = ssl.create_default_context()  # one for all (plain http anyway: no handshakes)
    store = redis_server.async_client() if redis_server is not None else None
    began = time.monotonic()
    deadline = began + options.duration
    stop = asyncio.Event()
    sampler = asyncio.create_task(
        sample_memory(pid, stats, began, options.every, stop, samples, store)
    )
    clients = [
        httpx.AsyncClient(
            headers={"user-agent": WECHAT_UA, "accept-language": "zh-CN,zh;q=0.9"},
            timeout=options.timeout,
            verify=context,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for _ in range(options.browsers)
    ]
    try:
        browsers = [
            Browser(
                n,
                base,
                client,
                stats,
                plan,
                deadline,
                options.logout_share,
                random.Random(options.seed * 100_003 + n),  # noqa: S311 - not security
            )
            for n, client in enumerate(clients)
        ]
        tasks = [asyncio.create_task(_until_stopped(b)) for b in browsers]
        # No request starts after the deadline; those in flight get their timeout, then go.
        _, pending = await asyncio.wait(tasks, timeout=options.duration + options.timeout + 5)
        for task in pending:
            task.cancel()
        stats.cut_off += len(pending)
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                stats.error(f"driver bug: {type(exc).__name__}", False, str(exc))
        ended = time.monotonic() - began
    finally:
        stop.set()
        await sampler
        with contextlib.suppress(OSError):  # the server is gone; the caller reports it
            samples.append(await take_sample(pid, stats, began, store))
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
        if store is not None:
            await store.aclose()
    return ended


async def _until_stopped(browser: Browser) -> None:
    try:
        await browser.run()
    except _Stop:
        return


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f}" if values else "-"


def report(
    stats: Stats,
    samples: list[Sample],
    log: ServerLog,
    plan: FaultPlan,
    options: Options,
    seconds: float,
    store: tuple[StoreFigures, StoreFigures] | None = None,
) -> bool:
    """Print the tables; True when memory stayed flat."""
    after_warmup = [s for s in samples if s.t >= options.warmup] or samples
    first, last = after_warmup[0], samples[-1]
    peak = max(s.rss_kib for s in samples)
    logins_since = last.logins - first.logins
    growth_mib = (last.rss_kib - first.rss_kib) / 1024
    growth_share = growth_mib * 1024 / first.rss_kib if first.rss_kib else 0.0
    flat = growth_mib < FLAT_MIB or growth_share < FLAT_SHARE
    span = max(last.t - samples[0].t, 1e-9)
    server_cpu = (last.cpu_s - samples[0].cpu_s) / span
    driver = (last.driver_cpu_s - samples[0].driver_cpu_s) / span
    failed_logins = sum(
        n for (kind, _), n in stats.errors.items() if kind.startswith("login failed")
    )
    finished = stats.logins + failed_logins
    rows: list[list[object]] = [
        ["browsers x seconds", f"{options.browsers} x {seconds:.1f}"],
        ["requests", stats.requests],
        ["requests/s", f"{stats.requests / seconds:.0f}"],
        ["ok logged-in pages (/, /profile, /api/me)", stats.ok_pages],
        ["logins completed", stats.logins],
        ["logins/s", f"{stats.logins / seconds:.1f}"],
        [
            "logins failed: error page at the callback (share; expected from the faults)",
            f"{failed_logins} ({failed_logins / max(finished, 1):.1%}; "
            f"~{plan.expected_failure_share():.1%})",
        ],
        ["logouts", stats.logouts],
        ["page latency p50 / p90 / p99 ms", " / ".join(ms(stats.page_ms, q) for q in (50, 90, 99))],
        [
            "login latency p50 / p90 / p99 ms (4 requests)",
            " / ".join(ms(stats.login_ms, q) for q in (50, 90, 99)),
        ],
        ["errors explained by the faults", stats.explained()],
        ["errors UNEXPLAINED (seen by the browsers)", stats.unexplained()],
        ["server RSS first (after warm-up) MiB", f"{first.rss_kib / 1024:.1f} (t={first.t:.0f} s)"],
        ["server RSS last MiB", f"{last.rss_kib / 1024:.1f} (t={last.t:.0f} s)"],
        ["server RSS max MiB", f"{peak / 1024:.1f}"],
        [
            "server RSS growth",
            f"{growth_mib:+.1f} MiB ({growth_share:+.1%}) -> {'flat' if flat else 'GROWS'}",
        ],
        [
            "server RSS growth per login after warm-up",
            f"{growth_mib * 1024 * 1024 / max(logins_since, 1):.0f} bytes ({logins_since} logins)",
        ],
        ["server CPU / driver CPU (of one core)", f"{server_cpu:.0%} / {driver:.0%}"],
        *store_rows(store, samples, stats.logins),
        [
            "largest Cookie header sent to the callback",
            f"{stats.max_cookie_bytes} bytes ({stats.max_state_cookies} login-state cookies "
            "in one jar)",
        ],
        [
            "logins the deadline interrupted / browsers cancelled (not errors)",
            f"{stats.stopped_mid_login} / {stats.cut_off}",
        ],
    ]
    print_table(["soak result", "value"], rows, "Summary")

    error_rows = [
        [kind, count, "explained" if explained else "UNEXPLAINED", stats.examples.get(kind, "")]
        for (kind, explained), count in sorted(
            stats.errors.items(), key=lambda item: (item[0][1], -item[1])
        )
    ]
    if error_rows:
        print_table(
            ["error kind (seen by the browsers)", "count", "verdict", "example (unexplained)"],
            error_rows,
            "Errors by kind",
        )
    else:
        print("\nErrors by kind: none")

    log_rows: list[list[object]] = [
        ["login ok", log.logins_ok, ""],
        [
            "login ok: the middleware's own time p50 / p90 / p99 ms (callback, WeChat calls)",
            " / ".join(ms(log.login_ms, q) for q in (50, 90, 99)),
            "",
        ],
    ]
    log_rows += [
        [f"login failed {reason}", count, "explained" if explained else "UNEXPLAINED"]
        for (reason, explained), count in log.failures.most_common()
    ]
    log_rows += [
        [f"retried {key} (hidden from the browser)", count, "explained" if ok else "UNEXPLAINED"]
        for (key, ok), count in log.retries.most_common()
    ]
    log_rows.append(
        [
            "other lines (tracebacks, errors, unknown warnings)",
            log.events,
            "UNEXPLAINED" if log.events else "",
        ]
    )
    print_table(["server log", "count", "verdict"], log_rows, "The server's log")
    for line in log.unexpected[:20]:
        print(f"    {line[:200]}")
    return flat


def store_rows(
    store: tuple[StoreFigures, StoreFigures] | None, samples: list[Sample], logins: int
) -> list[list[object]]:
    """The summary's rows about the Redis store (none without --redis)."""
    if store is None:
        return []
    start, end = store
    mib = 1024 * 1024
    peak = max([s.redis_used for s in samples if s.redis_used is not None] + [end.used_memory])
    grown = end.used_memory - start.used_memory
    added = end.keys - start.keys
    return [
        [
            "Redis used_memory start / end / max MiB",
            f"{start.used_memory / mib:.2f} / {end.used_memory / mib:.2f} / {peak / mib:.2f} "
            f"({grown / mib:+.2f} MiB)",
        ],
        ["Redis keys start / end (DBSIZE)", f"{start.keys} / {end.keys}"],
        [
            "Redis growth per completed login",
            f"{added / max(logins, 1):.2f} keys, {grown / max(logins, 1):.0f} bytes "
            f"({logins} logins)",
        ],
        ["Redis keys at the end, by kind", end.describe_kinds()],
        ["Redis longest time to live at the end, by kind", end.describe_ttls()],
        ["Redis largest identity index (members)", end.largest_index],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded load and soak test of the demo.")
    parser.add_argument("--quick", action="store_true", help="10 s with 10 browsers")
    parser.add_argument("--duration", type=float, help="seconds of load (default 60)")
    parser.add_argument("--browsers", type=int, help="concurrent browsers (default 50)")
    parser.add_argument("--timeout", type=float, default=15.0, help="per request, s (15)")
    parser.add_argument("--every", type=float, help="RSS sample interval, s (5; quick 2)")
    parser.add_argument("--warmup", type=float, help="s before the first RSS sample counted")
    parser.add_argument("--latency", type=float, default=0.05, help="per API call, s (0.05)")
    parser.add_argument("--busy", type=float, default=0.03, help="errcode -1 share (0.03)")
    parser.add_argument("--bad-gateway", type=float, default=0.02, help="502 share (0.02)")
    parser.add_argument("--malformed", type=float, default=0.01, help="bad body share (0.01)")
    parser.add_argument("--logout", type=float, default=0.3, help="log-out share per visit")
    parser.add_argument("--seed", type=int, default=1, help="the browsers' random choices")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="sessions in Redis: start a redis-server of its own (from PATH) and give the "
        "demo --redis-url",
    )
    args = parser.parse_args(argv)
    duration = args.duration or (10.0 if args.quick else 60.0)
    browsers = args.browsers or (10 if args.quick else 50)
    every = args.every or (2.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else min(10.0, duration / 4)
    if duration <= 0 or browsers < 1 or args.timeout <= 0 or every <= 0:
        parser.error("--duration, --browsers, --timeout and --every must be positive")
    options = Options(duration, browsers, args.timeout, every, warmup, args.logout, args.seed)
    redis_program = shutil.which("redis-server") if args.redis else None
    if args.redis:
        if redis_program is None:
            print(
                "soak.py: error: --redis needs redis-server on PATH "
                "(Debian: apt-get install redis-server)",
                file=sys.stderr,
            )
            return 2
        try:
            import redis  # noqa: F401 - the store's figures are read with redis-py
        except ImportError:
            print(
                "soak.py: error: --redis needs redis-py: pip install -e '.[test]'",
                file=sys.stderr,
            )
            return 2
    faults = [Fault("*", latency=args.latency)] if args.latency > 0 else []
    if args.busy > 0:
        faults.append(Fault("access_token", errcode=-1, probability=args.busy))
    if args.bad_gateway > 0:
        faults.append(Fault("userinfo", http_status=502, probability=args.bad_gateway))
    if args.malformed > 0:
        faults.append(Fault("access_token", body=MALFORMED_BODY, probability=args.malformed))
    plan = FaultPlan(tuple(faults))

    print("wxauth-middleware soak: WeChat browsers logging in and browsing the demo, with faults")
    for line in machine_lines():
        print("  " + line)
    print(
        f"  {browsers} browsers for {duration:g} s; request timeout {args.timeout:g} s; "
        f"RSS every {every:g} s, warm-up {warmup:g} s; log-out after {args.logout:.0%} of visits"
    )
    store_flag = " --redis-url redis://127.0.0.1:R/0" if args.redis else ""
    print(
        f"  server: python -m wxauth_middleware.demo --port P --auto-approve{store_flag} "
        "(uvicorn, 1 process)"
    )
    print("  injected (times: until the end):")
    for fault in plan.faults:
        print(f"    {fault.describe()}")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stats = Stats()
    samples: list[Sample] = []
    store: tuple[StoreFigures, StoreFigures] | None = None
    redis_died: int | None = None
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="wxauth-soak-"))
        log_path = Path(tmp) / "server.log"
        redis_server = None
        if redis_program is not None:
            redis_dir = Path(tmp) / "redis"
            redis_dir.mkdir()
            try:
                # Entered before the demo, so stopped after it: the demo never sees its store
                # go away under it.
                redis_server, version = stack.enter_context(running_redis(redis_program, redis_dir))
            except RuntimeError as exc:
                print(f"cannot start redis-server: {exc}", file=sys.stderr)
                return 2
            print(
                f"  store: redis-server {version} ({redis_program}) on "
                f"127.0.0.1:{redis_server.port}, --save '' --appendonly no, in a temp dir"
            )
        server = start_server(
            port, log_path, redis_server.url if redis_server is not None else None
        )
        try:
            try:
                wait_for_port(port, timeout=20, alive=lambda: server.poll() is None)
                inject(base, plan)
            except (RuntimeError, httpx.HTTPError) as exc:
                print(f"cannot start: {exc}", file=sys.stderr)
                print(log_path.read_text("utf-8", "replace")[-2000:], file=sys.stderr)
                return 2
            if redis_server is not None:
                first = store_figures(redis_server, detail=False)
                print(
                    f"  store at the start: used_memory {first.used_memory / 1024 / 1024:.2f}"
                    f" MiB, {first.keys} keys"
                )
            print(f"\nload (the server's RSS and CPU every {every:g} s):", flush=True)
            seconds = asyncio.run(
                drive(base, server.pid, plan, options, stats, samples, redis_server)
            )
            died = server.poll()
            if redis_server is not None:
                redis_died = redis_server.process.poll()
                if redis_died is None:
                    store = (first, store_figures(redis_server, detail=True))
        finally:
            stop_process(server)
        log = read_server_log(log_path, plan)
    if died is not None:
        stats.error(f"the server exited with status {died} during the run", False)
    if redis_died is not None:
        stats.error(f"redis-server exited with status {redis_died} during the run", False)
    if not samples:
        print("no memory sample: the server was gone", file=sys.stderr)
        return 1
    flat = report(stats, samples, log, plan, options, seconds, store)
    seen = stats.unexplained()
    logged = log.events + sum(n for (_, ok), n in log.failures.items() if not ok)
    logged += sum(n for (_, ok), n in log.retries.items() if not ok)
    unexplained = seen + logged
    print(
        f"\nverdict: {'FAIL' if unexplained else 'pass'}: {seen} unexplained error(s) seen by "
        f"the browsers, {logged} in the server's log; memory {'flat' if flat else 'GROWS'} "
        f"(flat: growth < {FLAT_MIB:g} MiB or < {FLAT_SHARE:.0%})"
    )
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
