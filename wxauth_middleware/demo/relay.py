"""The relay demo (``python -m wxauth_middleware.demo --relay``): a `WeChatAuthRelay` and two
sites that log their WeChat visitors in through it, on loopback host names of one port.

Layout of the one Starlette app `create_relay_demo` returns, by the Host the browser names::

    BrowseAsWeChatMiddleware          demo only: the "Browse as WeChat" cookie rewrites the UA
    ├── auth.localhost                the relay (WeChatAuthRelay): the only registered domain
    ├── shop.localhost, news.localhost
    │   ├── POST /logout, /logged-out, POST /_demo/as-wechat   as in the main demo
    │   └── everything else           WeChatAuthMiddleware with relay_url, relay_site_id,
    │                                 relay_secret (each site its own secret, key and session)
    └── any other (127.0.0.1, localhost)
        ├── /                         the demo's index: where to go
        └── /_wechat/...              the WeChat emulator, its account registering
                                      auth.localhost only

One port, several host names: browsers resolve every ``*.localhost`` name to this machine and
keep cookies per host name (not per port), so each site has its own session and the relay its
own login-state cookie, as on separate domains. Python's resolver does not know those names:
the server-to-server calls (a site redeeming its ticket at the relay, the relay calling WeChat)
go in-process, through the `transport` option of each, as `httpx.ASGITransport`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Host, Mount, Route, Router

from wxauth_middleware import (
    RelaySite,
    WeChatAuthMiddleware,
    WeChatAuthRelay,
    WeChatUser,
    get_wechat_user,
    is_wechat_browser,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator
from wxauth_middleware.emulator.app import is_loopback_host

from .app import (
    EMULATOR_API_BASE,
    EMULATOR_PREFIX,
    LOGGED_OUT_PATH,
    LOGOUT_PATH,
    SESSION_COOKIE,
    as_wechat_switch,
    demo_error_response,
    logged_out,
    logout,
)
from .as_wechat import BrowseAsWeChatMiddleware, is_browsing_as_wechat
from .pages import AS_WECHAT_BANNER, IN_WECHAT_BANNER, _e, as_wechat_form, layout

__all__ = [
    "RELAY_HOST",
    "RELAY_SITES",
    "DemoSite",
    "create_relay_demo",
    "relay_index_page",
    "relay_site_page",
]

#: The relay's host: the one 网页授权域名 the emulated account registers.
RELAY_HOST = "auth.localhost"


@dataclass(frozen=True, slots=True)
class DemoSite:
    """One of the demo's sites: its id on the relay, its host, its name in both languages."""

    site_id: str
    host: str
    name_zh: str
    name_en: str


#: The two sites, each on a host name the account has not registered.
RELAY_SITES = (
    DemoSite("shop", "shop.localhost", "商店", "Shop"),
    DemoSite("news", "news.localhost", "新闻", "News"),
)


def create_relay_demo(
    *,
    public_url: str,
    redis_url: str,
    auto_approve: bool = False,
    at_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """The relay demo served at `public_url`, a loopback origin such as
    "http://127.0.0.1:8000" (its port is the port of every host name); the relay keeps its
    records in the Redis at `redis_url`. `auto_approve` makes the emulator log in as the
    default persona without a consent page; `at_shutdown` is called once the app has shut
    down (the demo stops its private Redis there). A bad `public_url` or `redis_url` is a
    ValueError.
    """
    parts = urlsplit(public_url)
    if parts.scheme != "http" or not parts.hostname or not is_loopback_host(parts.hostname):
        raise ValueError(
            "public_url must be a loopback http origin such as 'http://127.0.0.1:8000' (the "
            f"relay demo's host names are this machine's only), not {public_url!r}"
        )
    public_url = public_url.rstrip("/")
    port = f":{parts.port}" if parts.port else ""
    relay_url = f"http://{RELAY_HOST}{port}"
    site_urls = {site.site_id: f"http://{site.host}{port}" for site in RELAY_SITES}
    emulator = WeChatEmulator(
        app_id=DEFAULT_APP_ID,
        app_secret=DEFAULT_APP_SECRET,
        # As on a live account: the relay's domain is registered, the sites' are not.
        domains=(RELAY_HOST,),
        auto_approve=auto_approve,
    )
    secret_of = {site.site_id: secrets.token_urlsafe(32) for site in RELAY_SITES}
    relay = WeChatAuthRelay(
        app_id=DEFAULT_APP_ID,
        app_secret=DEFAULT_APP_SECRET,
        # A fresh key per start, as in the main demo.
        secret_key=secrets.token_urlsafe(),
        redis_url=redis_url,
        public_url=relay_url,
        sites=[
            RelaySite(
                site_id=site.site_id,
                secret=secret_of[site.site_id],
                callback_url=f"{site_urls[site.site_id]}/wxauth/callback",
            )
            for site in RELAY_SITES
        ],
        authorize_url=f"{public_url}{EMULATOR_PREFIX}/connect/oauth2/authorize",
        api_base_url=EMULATOR_API_BASE,
        # httpx before 0.28 types its ASGI app with plain dicts: typed loosely for both.
        transport=httpx.ASGITransport(app=cast("Any", emulator)),
    )
    sites = {
        site.host: _site_app(site, site_urls, relay_url, secret_of[site.site_id], relay)
        for site in RELAY_SITES
    }

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Mounted apps get no lifespan events: close the clients here.
        yield
        for site in sites.values():
            await site.state.auth.aclose()
        await relay.aclose()
        if at_shutdown is not None:
            at_shutdown()

    index = Router(
        routes=[Route("/", _index, methods=["GET"]), Mount(EMULATOR_PREFIX, app=emulator)]
    )
    app = Starlette(
        routes=[
            Host(RELAY_HOST, app=relay),
            *(Host(host, app=site) for host, site in sites.items()),
            Mount("", app=index),
        ],
        middleware=[Middleware(BrowseAsWeChatMiddleware)],
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    app.state.relay = relay
    app.state.relay_url = relay_url
    app.state.site_urls = site_urls
    return app


def _site_app(
    site: DemoSite,
    site_urls: dict[str, str],
    relay_url: str,
    secret: str,
    relay: WeChatAuthRelay,
) -> Starlette:
    """One site: its page behind the middleware configured for the relay, and the demo's
    controls (Browse as WeChat, log out) as in the main demo."""
    auth = WeChatAuthMiddleware(
        Router(routes=[Route("/", _site_home, methods=["GET"])]),
        # Each site its own key: its session means nothing on the other site.
        secret_key=secrets.token_urlsafe(),
        # Optional on a relayed site; given, it names the relay's account in WeChatUser.app_id
        # on every request (and is checked against the user the relay sends).
        app_id=DEFAULT_APP_ID,
        public_url=site_urls[site.site_id],
        relay_url=relay_url,
        relay_site_id=site.site_id,
        relay_secret=secret,
        scope="snsapi_userinfo",
        snapshot_users="app",
        session_cookie=SESSION_COOKIE,
        on_error=demo_error_response,
        logout_path=LOGOUT_PATH,
        # The redemption, server to server: in-process (Python does not resolve *.localhost).
        transport=httpx.ASGITransport(app=cast("Any", relay)),
    )
    app = Starlette(
        routes=[
            Route("/logout", logout, methods=["POST"]),
            Route(LOGGED_OUT_PATH, logged_out, methods=["GET"]),
            Route("/_demo/as-wechat", as_wechat_switch, methods=["POST"]),
            Mount("", app=auth),
        ]
    )
    app.state.auth = auth
    app.state.site = site
    app.state.others = [
        (other, site_urls[other.site_id] + "/") for other in RELAY_SITES if other != site
    ]
    app.state.relay_url = relay_url
    return app


async def _site_home(request: Request) -> StarletteResponse:
    user = get_wechat_user(request)
    page = relay_site_page(
        request.app.state.site,
        user if isinstance(user, WeChatUser) else None,
        as_wechat=is_browsing_as_wechat(request.cookies),
        in_wechat=is_wechat_browser(request.headers.get("user-agent", "")),
        relay_url=request.app.state.relay_url,
        others=request.app.state.others,
    )
    return HTMLResponse(page, headers={"cache-control": "no-store"})


async def _index(request: Request) -> StarletteResponse:
    state = request.app.state
    page = relay_index_page(state.relay_url, state.site_urls)
    return HTMLResponse(page, headers={"cache-control": "no-store"})


def relay_site_page(
    site: DemoSite,
    user: WeChatUser | None,
    *,
    as_wechat: bool,
    in_wechat: bool,
    relay_url: str,
    others: list[tuple[DemoSite, str]],
) -> str:
    """A site's page: who is logged in here, and how the login went through the relay."""
    title = f"{site.name_zh} · {site.name_en}"
    relay_host = _e(urlsplit(relay_url).netloc)
    intro = (
        f'<div class="card"><h1 id="site-name">{_e(title)}</h1>'
        f"<p>本站 <code>{_e(site.host)}</code> 的域名没有登记为网页授权域名。微信里的访客先被送到"
        f"中转 <code>{relay_host}</code>（唯一登记的域名），中转向微信完成授权、自己用 code 换取"
        "用户，再带着一张一次性票据把访客送回本站；本站的服务器向中转兑换票据，建立自己的会话。"
        "网址里从不出现 code 和 openid。</p>"
        f'<p class="muted" lang="en">This site\'s host, <code>{_e(site.host)}</code>, is not a '
        "registered domain. WeChat visitors go to the relay "
        f"<code>{relay_host}</code> (the one registered domain), which logs them in with WeChat, "
        "exchanges the code itself and sends them back here with a one-time ticket; this "
        "site's server redeems the ticket at the relay and sets its own session. No code or "
        "openid is ever in a URL.</p></div>"
    )
    if user is None:
        status = (
            '<div class="card"><h2>登录状态 · Login status</h2>'
            '<p id="login-status" data-logged-in="false">未登录 · Not logged in</p>'
            "<p>按<strong>以微信身份浏览</strong>，在模拟的授权页上选择一个身份，再按"
            "<strong>允许</strong>。</p>"
            '<p class="muted" lang="en">Press <strong>Browse as WeChat</strong>, choose a persona '
            "on the emulated consent page, press <strong>允许 / Allow</strong>.</p>"
        )
    else:
        status = (
            '<div class="card"><h2>登录状态 · Login status</h2>'
            '<p id="login-status" data-logged-in="true">已通过中转登录 · Logged in through the '
            "relay</p><dl>"
            f'<dt>昵称 · nickname</dt><dd id="nickname">{_e(user.nickname or "—")}</dd>'
            f'<dt>openid</dt><dd><code id="openid">{_e(user.openid)}</code></dd>'
            f'<dt>app_id</dt><dd><code id="app-id">{_e(user.app_id or "—")}</code></dd>'
            f'<dt>scope</dt><dd><code id="scope">{_e(user.scope)}</code></dd></dl>'
            '<p class="muted">openid 属于中转的公众号，所以在每个网站上都一样。The openid is the '
            "relay's account's: the same on every site.</p>"
        )
    actions = (
        as_wechat_form(as_wechat=as_wechat, next_path="/") if as_wechat or not in_wechat else ""
    )
    if user is not None:
        actions += (
            '<form method="post" action="/logout"><button type="submit" class="danger" '
            'id="logout">退出本站 · Log out of this site</button></form>'
        )
    status += f'<div class="actions">{actions}</div></div>'
    links = "".join(
        f'<li><a href="{_e(url)}" id="site-{_e(other.site_id)}">{_e(other.name_zh)} · '
        f"{_e(other.name_en)}</a>：另一个网站，它有自己的会话，登录再经过一次中转 · another site, "
        "with a session of its own: its login goes through the relay again</li>"
        for other, url in others
    )
    more = f'<div class="card"><h2>看看 · Look around</h2><ul class="links">{links}</ul></div>'
    banner = AS_WECHAT_BANNER if as_wechat else IN_WECHAT_BANNER if in_wechat else ""
    return layout(title, intro + status + more, banner=banner)


def relay_index_page(relay_url: str, site_urls: dict[str, str]) -> str:
    """The demo's index (on 127.0.0.1 and localhost): the relay, the two sites, the emulator."""
    items = "".join(
        f'<li><a href="{_e(site_urls[site.site_id])}/" id="index-{_e(site.site_id)}">'
        f"{_e(site.name_zh)} · {_e(site.name_en)}</a>：<code>{_e(site.host)}</code>，"
        f"<code>relay_site_id=&quot;{_e(site.site_id)}&quot;</code></li>"
        for site in RELAY_SITES
    )
    body = (
        '<div class="card"><h1>中转登录演示 · Relay demo</h1>'
        f"<p>一个中转 <code>{_e(relay_url)}</code> 为两个网站办理微信登录。模拟的公众号只登记了"
        f"<code>{_e(RELAY_HOST)}</code>；两个网站的域名都没有登记，它们的访客经中转登录。</p>"
        f'<p class="muted" lang="en">One relay, <code>{_e(relay_url)}</code>, logs WeChat '
        f"visitors in for two sites. The emulated account registers <code>{_e(RELAY_HOST)}</code> "
        "only; neither site's host is registered: their visitors log in through the relay.</p>"
        f'<ul class="links">{items}</ul>'
        "<p>打开一个网站，按“以微信身份浏览”。Open a site and press “Browse as WeChat”.</p>"
        f'<p class="muted"><a href="{EMULATOR_PREFIX}/">{EMULATOR_PREFIX}/</a>：微信模拟器 · '
        "the WeChat emulator</p></div>"
    )
    return layout("中转登录演示 · Relay demo", body)
