"""The relay (`WeChatAuthRelay`, `WeChatAuthRelayWSGI`): one registered domain logging in the
WeChat visitors of several sites, through both adapters, against the emulator and a real
redis-server over HTTP, the relay itself served by a real server. Each safeguard has a test of
the attack it stops: the open-relay attack (a victim's login delivered to an attacker), a
tampered or foreign start link, a ticket replayed, late, of another site or without the
browser's binding, and WeChat's double callback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import redis

from wxauth_middleware import (
    ConfigurationError,
    RelaySite,
    Rule,
    WeChatAuthMiddleware,
    WeChatAuthRelay,
    WeChatAuthRelayWSGI,
    WeChatAuthWSGIMiddleware,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator
from wxauth_middleware.emulator.wecom_state import WeComCorp
from wxauth_middleware.relay.links import StartLink, binding_of, redemption, start_url

from .redis_support import RedisServer
from .support import (
    CHROME_UA,
    WECHAT_UA,
    WECOM_UA,
    Stack,
    ThreadedWSGITransport,
    approve_consent,
    inner_app,
    inner_wsgi_app,
    lifespan,
    served,
)
from .wecom_support import AGENT, CORP, SECRET, wecom_app

pytestmark = pytest.mark.anyio

SHOP = "http://localhost:8000"
NEWS = "http://news.localhost:8000"
SHOP_SECRET = "shop-secret-" + "s" * 32
NEWS_SECRET = "news-secret-" + "n" * 32
RELAY_KEY = "relay-key-" + "r" * 32
# What must never be in a URL the relay or a site sends a browser to.
SECRET_PARAMS = {"code", "openid", "unionid", "access_token", "refresh_token"}


@dataclass
class Relayed:
    """A relay served over HTTP, its emulator, and two sites in process (shop and news)."""

    kind: str
    relay: WeChatAuthRelay | WeChatAuthRelayWSGI
    relay_url: str
    wechat_url: str
    emulator: WeChatEmulator
    sites: dict[str, Any]
    db: redis.Redis
    prefix: str
    visited: list[tuple[str, httpx.Response]] = field(default_factory=list)

    def browser(self, user_agent: str = WECHAT_UA) -> httpx.AsyncClient:
        """A phone's browser: the sites in process, the relay and WeChat over the network."""
        mounts: dict[str, httpx.AsyncBaseTransport] = {}
        for origin, site in self.sites.items():
            if isinstance(site, WeChatAuthWSGIMiddleware):
                mounts[origin] = ThreadedWSGITransport(site)
            else:
                mounts[origin] = httpx.ASGITransport(app=site)
        return httpx.AsyncClient(
            mounts=mounts, headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"}
        )

    async def walk(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        persona: str = "xiaoming",
        stop: str = "",
        allow: bool = True,
    ) -> httpx.Response:
        """Follow `url`'s redirects as a browser does, through the emulator's consent (as
        `persona`, allowing or refusing), recording each step; stops before a URL starting
        with `stop`."""
        for _ in range(20):
            if stop and url.startswith(stop):
                return httpx.Response(302, headers={"location": url})
            response = await client.get(url)
            self.visited.append((url, response))
            if response.status_code == 200 and url.startswith(self.wechat_url):
                response = await approve_consent(client, response, persona=persona, allow=allow)
                self.visited.append((url, response))
            if response.status_code not in (301, 302, 303, 307):
                return response
            url = str(httpx.URL(url).join(response.headers["location"]))
        raise AssertionError("too many redirects")

    def redirects_from_us(self) -> list[str]:
        """Every Location the relay and the sites sent."""
        ours = (self.relay_url, *self.sites)
        return [
            str(httpx.URL(url).join(r.headers["location"]))
            for url, r in self.visited
            if url.startswith(ours) and "location" in r.headers
        ]

    def keys(self, kind: str) -> list[str]:
        return [k.decode() for k in self.db.scan_iter(match=f"{self.prefix}relay:{kind}:*")]


def relay_options(wechat_url: str, redis_url: str, prefix: str, **more: Any) -> dict[str, Any]:
    return {
        "app_id": DEFAULT_APP_ID,
        "app_secret": DEFAULT_APP_SECRET,
        "secret_key": RELAY_KEY,
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "authorize_url": f"{wechat_url}/connect/oauth2/authorize",
        "api_base_url": wechat_url,
        "sites": [
            RelaySite(site_id="shop", secret=SHOP_SECRET, callback_url=SHOP + "/wxauth/callback"),
            RelaySite(site_id="news", secret=NEWS_SECRET, callback_url=NEWS + "/wxauth/callback"),
        ],
        **more,
    }


@contextmanager
def relay_world(
    stack: Stack,
    redis_server: RedisServer,
    prefix: str,
    *,
    relay: dict[str, Any] | None = None,
    wecom: bool = False,
    **site_options: Any,
) -> Iterator[Relayed]:
    # Only the relay's domain is registered: the sites could not log anyone in alone.
    emulator = stack.emulator(domains=("127.0.0.1",))
    door = _Door() if stack.kind == "wsgi" else _AsgiDoor()
    with served(door) if stack.kind == "wsgi" else _served_asgi(door) as relay_url:
        options = relay_options(stack.wechat_url, redis_server.url, prefix, **(relay or {}))
        if wecom:
            # The corp trusts the relay's host (WeCom: exactly, port included), the app
            # logs its staff in there.
            host = urlsplit(relay_url).netloc
            corp = WeComCorp(CORP, {AGENT: SECRET}, time.time, trusted_domains=(host,))
            emulator = stack.emulator(wecom=corp, domains=("127.0.0.1",), auto_approve=True)
            options["wecom"] = wecom_app(stack, hosts=[])
        cls = WeChatAuthRelay if stack.kind == "asgi" else WeChatAuthRelayWSGI
        door.relay = cls(public_url=relay_url, **options)
        sites = {
            SHOP: site(stack.kind, relay_url, "shop", SHOP_SECRET, **site_options),
            NEWS: site(stack.kind, relay_url, "news", NEWS_SECRET, **site_options),
        }
        with redis_server.client() as db:
            yield Relayed(
                stack.kind,
                door.relay,
                relay_url,
                stack.wechat_url,
                emulator,
                sites,
                db,
                prefix,
            )


class _Door:
    """The relay (WSGI), served before it exists (its public_url is the server's address)."""

    relay: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.relay(environ, start_response)

    def close(self) -> None:
        self.relay.close()


class _AsgiDoor(_Door):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # type: ignore[override]
        await self.relay(scope, receive, send)


@contextmanager
def _served_asgi(app: Any) -> Iterator[str]:
    from .support import serve

    with serve(app) as url:
        yield url


def site(kind: str, relay_url: str, site_id: str, secret: str, **options: Any) -> Any:
    options = {
        "secret_key": "site-key-" + site_id * 8,
        "relay_url": relay_url,
        "relay_site_id": site_id,
        "relay_secret": secret,
        **options,
    }
    if kind == "asgi":
        return WeChatAuthMiddleware(inner_app(), **options)
    return WeChatAuthWSGIMiddleware(inner_wsgi_app, **options)


@pytest.fixture
def world(stack: Stack, redis_server: RedisServer, redis_prefix: str) -> Iterator[Relayed]:
    with relay_world(stack, redis_server, redis_prefix) as relayed:
        yield relayed


@asynccontextmanager
async def phone(world: Relayed, user_agent: str = WECHAT_UA) -> AsyncIterator[httpx.AsyncClient]:
    async with world.browser(user_agent) as client:
        yield client


def whoami(response: httpx.Response) -> dict[str, Any] | None:
    assert response.status_code == 200, response.text
    user: dict[str, Any] | None = response.json()["user"]
    return user


# -- logging in through the relay ------------------------------------------------------------


async def test_a_visitor_of_two_sites_logs_in_on_each_through_the_relay(world: Relayed) -> None:
    async with phone(world) as client:
        shop = whoami(await world.walk(client, SHOP + "/page"))
        news = whoami(await world.walk(client, NEWS + "/article"))
        again = whoami(await world.walk(client, SHOP + "/other"))
    assert shop is not None
    assert news is not None
    assert again == {**shop}
    # One account: one openid, on both sites.
    assert shop["openid"] == news["openid"]
    assert world.keys("ticket") == []
    assert world.keys("start") == []
    # The browser went through the relay (twice: each site's own session after that).
    starts = [url for url, _ in world.visited if "/wxauth/relay/start" in url]
    assert len(starts) == 2


async def test_no_code_token_or_openid_in_any_url_and_relay_pages_leak_no_referrer(
    world: Relayed,
) -> None:
    async with phone(world) as client:
        user = whoami(await world.walk(client, SHOP + "/page"))
    assert user is not None
    openid = user["openid"]
    sent = world.redirects_from_us()
    assert any("ticket=" in url for url in sent)
    for url in sent:
        names = set(parse_qs(urlsplit(url).query))
        assert not names & SECRET_PARAMS, url
        assert openid not in url
    relay_answers = [r for url, r in world.visited if url.startswith(world.relay_url)]
    assert relay_answers
    for response in relay_answers:
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"


async def test_the_profile_scope_goes_through_the_relay(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    rules = [Rule("/profile", scope="snsapi_userinfo")]
    with relay_world(stack, redis_server, redis_prefix, rules=rules) as world:
        async with phone(world) as client:
            base = whoami(await world.walk(client, SHOP + "/page"))
            profile = whoami(await world.walk(client, SHOP + "/profile"))
    assert base is not None
    assert base["nickname"] is None
    assert profile is not None
    assert profile["nickname"]
    assert profile["scope"] == "snsapi_userinfo"
    assert profile["openid"] == base["openid"]


async def test_a_refused_profile_is_remembered_by_the_site(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    rules = [Rule("/profile", scope="snsapi_userinfo")]
    with relay_world(stack, redis_server, redis_prefix, rules=rules) as world:
        async with phone(world) as client:
            base = whoami(await world.walk(client, SHOP + "/page"))
            refused = whoami(await world.walk(client, SHOP + "/profile", allow=False))
            starts = len([url for url, _ in world.visited if "/relay/start" in url])
            again = whoami(await world.walk(client, SHOP + "/profile"))
            assert len([url for url, _ in world.visited if "/relay/start" in url]) == starts
        async with phone(world) as stranger:
            declined = await world.walk(stranger, SHOP + "/profile", allow=False)
    # Back on the page, logged in as before, and not asked again.
    assert base is not None
    assert refused == base
    assert again == base
    # Someone without a session who refuses is told so on the site, with the way back.
    assert declined.status_code == 403
    assert "你已拒绝微信登录" in declined.text
    assert 'href="/profile"' in declined.text
    assert str(declined.url).startswith(SHOP)


async def test_wecom_staff_and_wechat_visitors_log_in_through_one_relay(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    """A relay with an Official Account and a WeCom app, sites sending it both browsers:
    each browser logs in with its own kind of account, at the relay's one address."""
    with relay_world(stack, redis_server, redis_prefix, wecom=True, relay_browsers="both") as world:
        async with phone(world, WECOM_UA) as staff:
            member = whoami(await world.walk(staff, SHOP + "/reports"))
        async with phone(world) as visitor:
            wechat = whoami(await world.walk(visitor, NEWS + "/article"))
    assert member == {
        "wecom": True,
        "identity": "ZhangWei",
        "userid": "ZhangWei",
        "openid": None,
        "mobile": None,
        "scope": "snsapi_base",
    }
    assert wechat is not None
    assert wechat["openid"]
    assert "wecom" not in wechat
    for url in world.redirects_from_us():
        assert not set(parse_qs(urlsplit(url).query)) & SECRET_PARAMS, url


async def test_a_site_of_a_wecom_relay_leaves_wechat_visitors_to_other_browsers(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    wecom_only = {"app_id": None, "app_secret": None}
    with relay_world(
        stack,
        redis_server,
        redis_prefix,
        relay=wecom_only,
        wecom=True,
        relay_browsers="wecom",
        other_browsers="refuse",
    ) as world:
        async with phone(world, WECOM_UA) as staff:
            member = whoami(await world.walk(staff, SHOP + "/reports"))
        async with phone(world) as visitor:
            refused = await visitor.get(SHOP + "/reports")
    assert member is not None
    assert member["userid"] == "ZhangWei"
    # Asked to open the page in WeCom, not sent to a relay that cannot log them in.
    assert refused.status_code == 403, refused.text
    assert "企业微信" in refused.text


# -- the open-relay attack, and what it would take --------------------------------------------


async def test_a_start_link_opened_by_a_victim_logs_in_neither_of_them(world: Relayed) -> None:
    """The attack public relays allow: the attacker starts a login on the site, sends the
    relay link to a victim, who logs in silently; the attacker hopes to use what comes back.
    Here the victim's browser burns the ticket (its site cookie has no such login), and the
    attacker, who never sees a code or a ticket, is not logged in."""
    async with phone(world) as attacker, phone(world) as victim:
        page = await attacker.get(SHOP + "/page")
        relay_link = page.headers["location"]
        assert relay_link.startswith(world.relay_url)
        landed = await world.walk(victim, relay_link, persona="lily")
        assert landed.status_code == 400
        assert "登录链接已失效" in landed.text
        assert "lily" not in landed.text.lower()
        # The ticket the victim's browser carried is spent, whatever comes next.
        assert world.keys("ticket") == []
        mine = await attacker.get(SHOP + "/whoami", headers={"accept": "application/json"})
        assert mine.status_code == 401  # still anonymous
    tickets = [u for u in world.redirects_from_us() if "ticket=" in u]
    assert len(tickets) == 1


async def test_a_leaked_ticket_is_spent_before_anyone_else_can_redeem_it(world: Relayed) -> None:
    """Were the ticket of the attack above copied out of the victim's address bar, it is
    already spent: the attacker's browser, whose cookie holds the login's nonce, gets no
    user with it."""
    async with phone(world) as attacker, phone(world) as victim:
        page = await attacker.get(SHOP + "/page")
        await world.walk(victim, page.headers["location"], persona="lily")
        (ticket_url,) = [u for u in world.redirects_from_us() if "ticket=" in u]
        stolen = await attacker.get(ticket_url)
        assert stolen.status_code == 400
        assert "登录链接已失效" in stolen.text
        assert "wxauth_session" not in stolen.headers.get("set-cookie", "")


async def test_the_wechat_link_of_someone_elses_login_reaches_no_site(world: Relayed) -> None:
    """The relay's own login is bound to the browser that opened the start link: WeChat's
    authorize link of the attacker's login, opened by a victim, ends at the relay."""
    async with phone(world) as attacker, phone(world) as victim:
        page = await attacker.get(SHOP + "/page")
        start = await attacker.get(page.headers["location"])
        wechat_link = start.headers["location"]
        assert wechat_link.startswith(world.wechat_url)
        await world.walk(victim, wechat_link, persona="lily")
    # The relay found no login of the victim's browser: nothing for any site.
    assert not [u for u in world.redirects_from_us() if "ticket=" in u]
    assert not [url for url, _ in world.visited if url.startswith((SHOP, NEWS)) and "ticket" in url]
    assert world.keys("ticket") == []


# -- start links the relay refuses ------------------------------------------------------------


async def start_link(world: Relayed, client: httpx.AsyncClient) -> str:
    page = await client.get(SHOP + "/page")
    link = page.headers["location"]
    assert link.startswith(world.relay_url + "/wxauth/relay/start?")
    return link


def with_param(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


@pytest.mark.parametrize(
    "change",
    [
        {"scope": "snsapi_userinfo"},
        {"return": NEWS + "/wxauth/callback"},
        {"return": "https://evil.example/wxauth/callback"},
        {"binding": "0" * 64},
        {"ts": str(int(time.time()) + 1)},
        {"site": "news"},
        {"sig": "0" * 64},
        {"sig": ""},
    ],
)
async def test_a_tampered_start_link_reaches_neither_wechat_nor_a_site(
    world: Relayed, change: dict[str, str]
) -> None:
    async with phone(world) as client:
        link = with_param(await start_link(world, client), **change)
        refused = await client.get(link)
    assert refused.status_code in (400, 403), refused.text
    assert "location" not in refused.headers
    assert "登录链接无效" in refused.text
    assert refused.headers["referrer-policy"] == "no-referrer"
    assert world.keys("start") == []


async def test_an_unsigned_start_and_an_unknown_site_are_refused(world: Relayed) -> None:
    async with phone(world) as client:
        bare = await client.get(world.relay_url + "/wxauth/relay/start?site=shop")
        unknown = await client.get(
            world.relay_url + "/wxauth/relay/start?site=nobody&scope=snsapi_base"
        )
    assert bare.status_code == 400
    assert "location" not in bare.headers
    assert unknown.status_code == 404
    assert "location" not in unknown.headers
    assert world.keys("start") == []


async def test_a_relayed_sites_callback_takes_no_code(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    """A site of a relay (here with an account of its own, for its JS-SDK) never exchanges a
    code itself, even one that comes with the state of its browser's login."""
    own: dict[str, Any] = {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET}
    with relay_world(stack, redis_server, redis_prefix, **own) as world:
        async with phone(world) as client:
            page = await client.get(SHOP + "/page")
            assert page.status_code == 302
            nonce = site_nonce(world, client)
            refused = await client.get(f"{SHOP}/wxauth/callback?code=CODE&state={nonce}")
    assert refused.status_code == 400
    assert world.emulator.calls == []  # WeChat was never asked


async def test_an_old_start_link_is_refused(world: Relayed) -> None:
    old = int(time.time()) - 601
    link = StartLink("shop", "snsapi_base", binding_of("n" * 32), SHOP + "/wxauth/callback", old)
    async with phone(world) as client:
        refused = await client.get(start_url(world.relay_url, SHOP_SECRET.encode(), link))
    assert refused.status_code == 403
    assert "location" not in refused.headers


async def test_a_site_whose_callback_is_not_the_registered_one_is_told(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    with relay_world(stack, redis_server, redis_prefix) as world:
        # The shop served on another address than the one registered with the relay.
        other = "http://127.0.0.1:8000"
        world.sites[other] = world.sites[SHOP]
        async with phone(world) as client:
            page = await client.get(other + "/page")
            refused = await client.get(page.headers["location"])
    assert refused.status_code == 400
    assert "location" not in refused.headers
    assert SHOP + "/wxauth/callback" in refused.text  # the registered one, in the details


# -- tickets the relay gives no user for -----------------------------------------------------


async def redeem(
    world: Relayed, site_id: str, secret: str, ticket: str, nonces: list[str]
) -> httpx.Response:
    body = redemption(secret.encode(), site_id, ticket, nonces, int(time.time()))
    async with httpx.AsyncClient() as server:
        return await server.post(world.relay_url + "/wxauth/relay/redeem", json=body)


async def ticket_and_nonce(world: Relayed, client: httpx.AsyncClient) -> tuple[str, str]:
    """A login of the shop walked up to its callback: the ticket, and the browser's nonce."""
    stopped = await world.walk(client, SHOP + "/page", stop=SHOP + "/wxauth/callback")
    ticket = parse_qs(urlsplit(stopped.headers["location"]).query)["ticket"][0]
    return ticket, site_nonce(world, client)


def site_nonce(world: Relayed, client: httpx.AsyncClient) -> str:
    """The nonce of the shop's one login in progress in this browser (its login-state cookie)."""
    (value,) = [
        c.value for c in client.cookies.jar if c.name.endswith("_login") and "localhost" in c.domain
    ]
    (login,) = world.sites[SHOP].core.callback._logins.decode(value)
    return str(login.state)


async def test_a_ticket_is_redeemed_once(world: Relayed) -> None:
    async with phone(world) as client:
        ticket, nonce = await ticket_and_nonce(world, client)
    first = await redeem(world, "shop", SHOP_SECRET, ticket, [nonce])
    second = await redeem(world, "shop", SHOP_SECRET, ticket, [nonce])
    assert first.status_code == 200
    assert first.json()["user"]["openid"]
    assert second.status_code == 410
    assert second.json()["error"] == "relay_ticket_refused"


async def test_another_sites_ticket_is_refused_and_spent(world: Relayed) -> None:
    async with phone(world) as client:
        ticket, nonce = await ticket_and_nonce(world, client)
    foreign = await redeem(world, "news", NEWS_SECRET, ticket, [nonce])
    own = await redeem(world, "shop", SHOP_SECRET, ticket, [nonce])
    assert foreign.status_code == 403
    assert "user" not in foreign.json()
    assert own.status_code == 410


async def test_a_ticket_without_the_browsers_nonce_gives_no_user(world: Relayed) -> None:
    async with phone(world) as client:
        ticket, nonce = await ticket_and_nonce(world, client)
    unbound = await redeem(world, "shop", SHOP_SECRET, ticket, ["f" * 32, nonce[::-1]])
    assert unbound.status_code == 403
    assert "user" not in unbound.json()
    assert (await redeem(world, "shop", SHOP_SECRET, ticket, [nonce])).status_code == 410


async def test_a_late_ticket_gives_no_user(world: Relayed) -> None:
    async with phone(world) as client:
        ticket, nonce = await ticket_and_nonce(world, client)
    later = time.time() + 61
    for service in world.relay.services:
        service._clock = lambda: later  # the ticket's minute has passed
    late = await redeem(world, "shop", SHOP_SECRET, ticket, [nonce])
    assert late.status_code == 410
    assert "user" not in late.json()


async def test_a_redemption_signed_with_another_secret_is_refused(world: Relayed) -> None:
    async with phone(world) as client:
        ticket, nonce = await ticket_and_nonce(world, client)
    forged = await redeem(world, "shop", NEWS_SECRET, ticket, [nonce])
    assert forged.status_code == 403
    assert forged.json()["error"] == "relay_refused"
    # Refused before the ticket was looked at: the shop can still redeem it.
    assert (await redeem(world, "shop", SHOP_SECRET, ticket, [nonce])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"site": "shop"}', json.dumps({"site": 1}).encode()],
)
async def test_a_malformed_redemption_is_a_clear_400(world: Relayed, body: bytes) -> None:
    async with httpx.AsyncClient() as server:
        answer = await server.post(world.relay_url + "/wxauth/relay/redeem", content=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


# -- WeChat's double callback ----------------------------------------------------------------


async def test_wechats_double_callback_ends_with_one_ticket(world: Relayed) -> None:
    async with phone(world) as client:
        page = await client.get(SHOP + "/page")
        start = await client.get(page.headers["location"])
        authorize = await world.walk(client, start.headers["location"], stop=world.relay_url)
        callback = authorize.headers["location"]
        # WeChat opens the callback twice, at once.
        first, second = await asyncio.gather(client.get(callback), client.get(callback))
        finishes = [str(httpx.URL(callback).join(r.headers["location"])) for r in (first, second)]
        assert all("/wxauth/relay/finish" in url for url in finishes), (first.text, second.text)
        # Both finishing requests carry the session cookie the callbacks set.
        relay_host = urlsplit(world.relay_url).hostname or ""
        cookie = "; ".join(
            f"{c.name}={c.value}" for c in client.cookies.jar if c.domain.startswith(relay_host)
        )
        async with httpx.AsyncClient(headers={"user-agent": WECHAT_UA, "cookie": cookie}) as tab:
            one, two = await asyncio.gather(tab.get(finishes[0]), tab.get(finishes[1]))
        back = {one.headers["location"], two.headers["location"]}
        assert len(back) == 1  # the same ticket
        landed = await world.walk(client, back.pop())
    assert whoami(landed) is not None


# -- limits, the log ---------------------------------------------------------------------------


async def test_a_site_over_its_rate_gets_429(
    stack: Stack, redis_server: RedisServer, redis_prefix: str
) -> None:
    sites = [
        RelaySite(
            site_id="shop",
            secret=SHOP_SECRET,
            callback_url=SHOP + "/wxauth/callback",
            max_logins_per_minute=2,
        ),
        RelaySite(site_id="news", secret=NEWS_SECRET, callback_url=NEWS + "/wxauth/callback"),
    ]
    with relay_world(stack, redis_server, redis_prefix, relay={"sites": sites}) as world:
        async with phone(world) as client:
            answers = [(await client.get(await start_link(world, client))) for _ in range(3)]
            news = await client.get((await client.get(NEWS + "/page")).headers["location"])
    assert [a.status_code for a in answers] == [302, 302, 429]
    assert answers[2].headers["retry-after"] == "60"
    assert news.status_code == 302  # another site's budget is its own


async def test_each_login_is_one_audit_line_without_secrets(
    world: Relayed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wxauth_middleware")
    async with phone(world) as client:
        user = whoami(await world.walk(client, SHOP + "/page"))
    assert user is not None
    relay_lines = [r.getMessage() for r in caplog.records if "wxauth relay" in r.getMessage()]
    assert "wxauth relay start site=shop scope=snsapi_base" in relay_lines
    assert "wxauth relay login site=shop outcome=ticket" in relay_lines
    assert "wxauth relay redeem site=shop outcome=ok" in relay_lines
    ticket_urls = [u for u in world.redirects_from_us() if "ticket=" in u]
    ticket = parse_qs(urlsplit(ticket_urls[0]).query)["ticket"][0]
    for line in relay_lines:
        for secret in (user["openid"], ticket, SHOP_SECRET, RELAY_KEY, DEFAULT_APP_SECRET):
            assert secret not in line


async def test_other_paths_of_the_relay_are_not_found_for_any_browser(world: Relayed) -> None:
    async with phone(world, CHROME_UA) as desktop:
        missing = await desktop.get(world.relay_url + "/admin")
        home = await desktop.get(world.relay_url + "/")
    assert missing.status_code == 404
    assert "找不到该页面" in missing.text
    assert home.status_code == 200
    assert "微信登录中转" in home.text
    assert missing.headers["referrer-policy"] == "no-referrer"


async def test_the_relay_answers_its_domain_verification_file_and_a_lifespan(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    options = relay_options("https://api.weixin.qq.com", redis_server.url, redis_prefix)
    relay = WeChatAuthRelay(
        public_url="https://auth.example.com",
        verify_files={"MP_verify_abc123.txt": "abc123"},
        **options,
    )
    async with (
        lifespan(relay),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=relay), base_url="https://auth.example.com"
        ) as client,
    ):
        verify = await client.get("/MP_verify_abc123.txt")
    assert verify.status_code == 200
    assert verify.text == "abc123"
    assert verify.headers["referrer-policy"] == "no-referrer"


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"relay_site_id": "shop", "relay_secret": SHOP_SECRET}, "relay_url missing"),
        ({"relay_url": "https://auth.example.com", "relay_site_id": "shop"}, "relay_secret"),
        (
            {
                "relay_url": "http://auth.example.com",
                "relay_site_id": "shop",
                "relay_secret": SHOP_SECRET,
            },
            "https",
        ),
        (
            {
                "relay_url": "https://auth.example.com",
                "relay_site_id": "shop",
                "relay_secret": "short",
            },
            "at least 32",
        ),
        (
            {
                "relay_url": "https://auth.example.com",
                "relay_site_id": "shop",
                "relay_secret": SHOP_SECRET,
                "other_browsers": "qrconnect",
                "website_app_id": "wx" + "1" * 16,
                "website_app_secret": "x",
            },
            "'pass' or 'refuse'",
        ),
    ],
)
def test_site_relay_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WeChatAuthMiddleware(inner_app(), secret_key="k" * 32, **options)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"redis_url": None}, "redis_url is required"),
        ({"app_id": None, "app_secret": None}, "Official Account .* WeCom app"),
        ({"wecom": "ww0123"}, "WeComApp"),
        ({"public_url": "http://auth.example.com"}, "https"),
        ({"sites": []}, "non-empty list"),
        (
            {"sites": [RelaySite(site_id="a", secret=SHOP_SECRET, callback_url=SHOP + "/cb")] * 2},
            "given twice",
        ),
    ],
)
def test_relay_options_are_checked(
    change: dict[str, Any], message: str, redis_server: RedisServer
) -> None:
    options = relay_options("https://api.weixin.qq.com", redis_server.url, "x:")
    options["public_url"] = "https://auth.example.com"
    options.update(change)
    with pytest.raises(ConfigurationError, match=message):
        WeChatAuthRelay(**options)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"site_id": "a b"}, "site_id"),
        ({"secret": "short"}, "at least 32"),
        ({"callback_url": "https://shop.example.com"}, "callback"),
        ({"callback_url": "http://shop.example.com/wxauth/callback"}, "https"),
        ({"callback_url": "https://*.example.com/wxauth/callback"}, "http"),
        ({"max_logins_per_minute": 0}, "max_logins_per_minute"),
    ],
)
def test_relay_sites_are_checked(fields: dict[str, Any], message: str) -> None:
    site_fields: dict[str, Any] = {
        "site_id": "shop",
        "secret": SHOP_SECRET,
        "callback_url": "https://shop.example.com/wxauth/callback",
        **fields,
    }
    with pytest.raises(ConfigurationError, match=message):
        RelaySite(**site_fields)


def test_a_relayed_site_without_an_account_serves_no_jssdk() -> None:
    site_app = WeChatAuthMiddleware(
        inner_app(),
        secret_key="k" * 32,
        relay_url="https://auth.example.com",
        relay_site_id="shop",
        relay_secret=SHOP_SECRET,
    )
    assert "/wxauth/jssdk" not in site_app.core._sessionless
