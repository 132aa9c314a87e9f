"""Every page a visitor can be shown, rendered: the middleware's (login errors of every kind
and errcode, the logout and logged-out pages, open-in-WeChat, the snapshot interstitial, the
scan login's pages), the emulator's (WeChat's consent and error pages, played) and the demo's.
The punctuation test reads them all; the phone-size screenshots are taken of them."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import httpx

from wxauth_middleware import WeChatUser, errors
from wxauth_middleware.demo import create_demo_app
from wxauth_middleware.demo.pages import error_page, home_page, logged_out_page, profile_page
from wxauth_middleware.demo.relay import RELAY_SITES, relay_index_page, relay_site_page
from wxauth_middleware.drivers import drive_sync
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_PERSONAS, WeChatEmulator
from wxauth_middleware.errors import (
    ConfigurationError,
    HostMismatch,
    InvalidRequest,
    LoginDeclined,
    LoginStateError,
    LoginVetoed,
    ScanLoginError,
    StoreUnavailable,
    TokenUnavailable,
    UpstreamResponseError,
    UpstreamTimeout,
    UpstreamUnavailable,
    WeChatAPIError,
    WeChatAuthError,
)
from wxauth_middleware.messages import HTTPRequest, HTTPResponse
from wxauth_middleware.pages import (
    continue_page,
    default_error_response,
    logout_page,
    open_in_wechat_response,
    qr_code,
    snapshot_response,
)
from wxauth_middleware.pages import (
    logged_out_page as middleware_logged_out_page,
)
from wxauth_middleware.scan.pages import confirm_page, decided_page, desktop_page
from wxauth_middleware.wechat.errcodes import ERRCODES

from .emulator_support import authorize_path, authorize_query

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI Language/{}"
)
DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
XIAOMING = next(p for p in DEFAULT_PERSONAS if p.key == "xiaoming")


def visitor(lang: str = "zh_CN", user_agent: str = WECHAT_UA) -> HTTPRequest:
    headers = {
        "user-agent": user_agent.format(lang),
        "accept": "text/html",
        "accept-language": "en-US,en" if lang == "en" else "zh-CN,zh",
    }
    return HTTPRequest("GET", "https", "/orders", "/orders", "", headers)


def every_error() -> list[WeChatAuthError]:
    """One of each error class, and a WeChat error for every errcode the middleware knows."""
    found: list[WeChatAuthError] = [
        LoginStateError("unknown state"),
        HostMismatch("www.example.com", "example.com", "https://example.com"),
        LoginDeclined("no code"),
        LoginVetoed("vetoed"),
        ConfigurationError("bad"),
        InvalidRequest("bad host"),
        UpstreamUnavailable("refused"),
        UpstreamTimeout("slow"),
        UpstreamResponseError("not JSON"),
        StoreUnavailable("redis down"),
        TokenUnavailable("none kept"),
        WeChatAPIError(99999, "unknown, rid: 6561e6d3-1b2c3d4e", endpoint="access_token"),
    ]
    found += [ScanLoginError(code, code) for code in errors._SCAN_FAILURES]
    found += [
        WeChatAPIError(errcode, f"errmsg, rid: 6561e6d3-{errcode}", endpoint="access_token")
        for errcode in ERRCODES
    ]
    return found


def error_name(error: WeChatAuthError) -> str:
    if isinstance(error, WeChatAPIError):
        return f"errcode-{error.errcode}".replace("--", "-minus-")
    return error.code.replace("_", "-")


def middleware_pages(lang: str = "zh_CN") -> dict[str, Callable[[], HTTPResponse]]:
    """The middleware's own pages, as WeChat's visitor (or, for open-in-WeChat and the scan
    login's desktop page, a desktop visitor) in `lang` sees them."""
    phone = visitor(lang)
    desktop = visitor(lang, DESKTOP_UA)
    url = "https://www.example.com/orders/2024/11/a-rather-long-page-name?tab=all&page=3"
    phone_url = "https://www.example.com/wxauth/scan/phone?t=Zq3xM0dPp1uKcW7nT5rB9aYe"
    pages: dict[str, Callable[[], HTTPResponse]] = {
        "open-in-wechat": lambda: drive_sync(open_in_wechat_response(desktop, url), httpx.Client()),
        "snapshot": lambda: snapshot_response(phone, "/orders"),
        "logout": lambda: logout_page(phone, "/wxauth/logout?next=%2Forders"),
        "logged-out": lambda: middleware_logged_out_page(phone, "/wxauth/login?next=%2Forders"),
        # Its refresh goes on at once: to a loopback address nothing serves (and the browser
        # test blocks every request anyway).
        "continue": lambda: continue_page("http://127.0.0.1:9/connect/oauth2/authorize", ()),
        "scan-desktop": lambda: desktop_page(
            phone_url=phone_url, qr=qr_code(phone_url), status_url="/s", renew_url="/r", max_age=180
        ),
        "scan-confirm": lambda: confirm_page(
            site="www.example.com",
            desktop="Chrome · Windows",
            user=_user(),
            csrf="x" * 32,
        ),
        "scan-confirmed": lambda: decided_page(confirmed=True, desktop="Chrome · Windows"),
        "scan-cancelled": lambda: decided_page(confirmed=False, desktop="Chrome · Windows"),
    }
    for error in every_error():
        pages[f"error-{error_name(error)}"] = lambda error=error: default_error_response(  # type: ignore[misc]
            error.leading_back_to("/orders"), phone
        )
    return pages


def _user() -> WeChatUser:
    return WeChatUser(
        openid=XIAOMING.openid_for(DEFAULT_APP_ID), nickname=XIAOMING.nickname, scope="snsapi_base"
    )


def demo_page_texts() -> dict[str, str]:
    """The demo's pages, as functions render them (every state they show)."""
    user = WeChatUser(
        openid=XIAOMING.openid_for(DEFAULT_APP_ID),
        nickname=XIAOMING.nickname,
        scope="snsapi_userinfo",
    )
    snapshot = WeChatUser(openid="o" + "s" * 27, scope="snsapi_userinfo", is_snapshot_user=True)
    origin = "http://127.0.0.1:8000"
    pages = {
        "demo-home": home_page(None, as_wechat=False, in_wechat=False, public_url=origin),
        "demo-home-as-wechat": home_page(user, as_wechat=True, in_wechat=False, public_url=origin),
        "demo-home-in-wechat": home_page(user, as_wechat=False, in_wechat=True, public_url=origin),
        "demo-home-snapshot": home_page(
            snapshot, as_wechat=False, in_wechat=True, public_url=origin
        ),
        "demo-profile": profile_page(user, as_wechat=True, in_wechat=False),
        "demo-profile-anonymous": profile_page(None, as_wechat=False, in_wechat=False),
        "demo-logged-out": logged_out_page(as_wechat=True),
    }
    for error in every_error():
        pages[f"demo-error-{error_name(error)}"] = error_page(
            error.leading_back_to("/"), as_wechat=True
        )
    return {**pages, **_relay_demo_pages(user)}


def _relay_demo_pages(user: WeChatUser) -> dict[str, str]:
    """The relay demo's pages (`demo --relay`): its index, and a site's in each state."""
    relay_url = "http://auth.localhost:8000"
    site_urls = {site.site_id: f"http://{site.host}:8000" for site in RELAY_SITES}
    shop, news = RELAY_SITES
    others = [(news, site_urls[news.site_id] + "/")]
    pages = {"demo-relay-index": relay_index_page(relay_url, site_urls)}
    for name, who, as_wechat, in_wechat in (
        ("anonymous", None, False, False),
        ("as-wechat", user, True, False),
        ("in-wechat", user, False, True),
    ):
        pages[f"demo-relay-site-{name}"] = relay_site_page(
            shop, who, as_wechat=as_wechat, in_wechat=in_wechat, relay_url=relay_url, others=others
        )
    return pages


async def served_page_texts() -> dict[str, str]:
    """The pages the demo and the emulator serve over HTTP: the share and desktop pages, the
    emulator's index, consent pages and WeChat's error pages for bad links."""
    origin = "http://127.0.0.1:8000"
    pages: dict[str, str] = {}
    demo = create_demo_app(public_url=origin)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=demo), base_url=origin) as c:
        for name, path, agent in (
            ("demo-share", "/share", DESKTOP_UA),
            ("demo-desktop", "/desktop", DESKTOP_UA),
        ):
            answer = await c.get(path, headers={"user-agent": agent, "accept": "text/html"})
            assert answer.status_code == 200, (path, answer.status_code)
            pages[name] = answer.text
    emulator = WeChatEmulator()
    callback = quote("http://localhost:8000/wxauth/callback", safe="")
    requests = {
        "emulator-index": "/",
        "emulator-consent": authorize_path(authorize_query(scope="snsapi_userinfo")),
        "emulator-consent-base": authorize_path(authorize_query(scope="snsapi_base")),
        "emulator-error-10003": authorize_path(authorize_query(redirect_uri="https://e.com/cb")),
        "emulator-error-10005": authorize_path(authorize_query(scope="snsapi_login")),
        "emulator-error-10010": authorize_path(authorize_query(scope="")),
        "emulator-error-10011": authorize_path(authorize_query(redirect_uri="")),
        "emulator-error-10012": authorize_path(authorize_query(appid="")),
        "emulator-error-40013": authorize_path(authorize_query(appid="wx0000000000000000")),
        "emulator-error-link": authorize_path(f"appid={DEFAULT_APP_ID}&redirect_uri={callback}"),
        "emulator-error-state": authorize_path(authorize_query(state="ab-cd")),
        "emulator-error-response-type": authorize_path(authorize_query(response_type="token")),
        "emulator-qrconnect": "/connect/qrconnect?appid=x&redirect_uri=y",
    }
    transport = httpx.ASGITransport(app=emulator, client=("127.0.0.1", 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8400") as c:
        for name, path in requests.items():
            answer = await c.get(path, headers={"user-agent": WECHAT_UA.format("zh_CN")})
            assert answer.headers["content-type"].startswith("text/html"), (name, answer.text)
            pages[name] = answer.text
    return pages
