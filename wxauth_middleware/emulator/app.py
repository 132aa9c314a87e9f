"""The emulator as an ASGI app: its configuration, the front door that routes each request,
and the helpers tests and scripts call. What it serves lives beside it, one module each: WeChat's
own pages (oauth_pages), the /sns/ APIs (sns_api), the /cgi-bin/ credential APIs (cgi_api), the
JS-SDK stand-in (jssdk_routes) and the fault controls (admin), over the shared state (base) and
the API dispatch (dispatch)."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from .admin import FAULTS_PATH, FaultsAdmin
from .authorize import QRCONNECT_SCOPE, SCOPES
from .base import RecordedCall, route_path
from .cgi_api import CgiBinAPI
from .credentials import CredentialStore
from .dispatch import API_PREFIXES, APIDispatch, Endpoint
from .faults import FaultPlan
from .golive import GoLive, QuotaCounter
from .grants import GrantStore
from .jssdk import AGENT_VERIFY_PATH, JSSDK_PATH, VERIFY_PATH
from .jssdk_routes import JSSDKRoutes
from .oauth_pages import PERSONA_COOKIE, SNAPSHOT_CANNOT_SCAN, OAuthPages
from .personas import DEFAULT_PERSONAS, Persona
from .platform_api import CONSENT_PATH, PUSH_PATH, UNAUTHORIZE_PATH, PlatformAPI
from .platform_state import EmulatedPlatform
from .protocol import API_CONTENT_TYPE, CGI_CONTENT_TYPE, USERINFO_CONTENT_TYPE
from .sns_api import SnsAPI
from .wecom_api import WeComAPI
from .wecom_state import WeComCorp

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_APP_SECRET",
    "DEFAULT_WEBSITE_APP_ID",
    "DEFAULT_WEBSITE_APP_SECRET",
    "PERSONA_COOKIE",
    "RecordedCall",
    "WeChatEmulator",
]

DEFAULT_APP_ID = "wx8e6a2d5c0b1f4a37"
# A published, made-up secret for the emulator only: it unlocks nothing real.
DEFAULT_APP_SECRET = "3f2a9c0e5b7d41a68e0c2f9b4d1a7e63"  # noqa: S105
#: The Open Platform "website app" (网站应用) for QR-code login: another appid, another secret.
DEFAULT_WEBSITE_APP_ID = "wxb7c3f1e9d2a4605e"
DEFAULT_WEBSITE_APP_SECRET = "9d41c7e2a05b38f6d1e8a4c0b7f2653e"  # noqa: S105


def is_loopback_host(host: str) -> bool:
    """Whether `host` (an address, bracketed or not, or "localhost") is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _is_loopback(client: Any) -> bool:
    if client is None:
        return True  # some test transports give no client at all
    host = str(client[0])
    # Starlette's TestClient says "testclient"; a network server always reports an address.
    return host == "testclient" or (host != "localhost" and is_loopback_host(host))


class WeChatEmulator(
    OAuthPages, PlatformAPI, SnsAPI, CgiBinAPI, JSSDKRoutes, FaultsAdmin, WeComAPI, APIDispatch
):
    """WeChat's web-page authorization servers, played locally, quirks included.

    One registered Official Account (`app_id` / `app_secret`), more with `accounts`
    ((app_id, app_secret) pairs; a persona has another openid in each, one unionid in all),
    their web authorization `domains`, and one Open-Platform website app (`website_app_id` /
    `website_app_secret`; None disables it) for QR-code login at ``/connect/qrconnect``, bound
    to the same Open Platform account: a persona's unionid is the same for all, its openids
    differ. All apps share `domains`. Any other appid or secret gets WeChat's error answers.
    It answers loopback clients only unless `allow_remote` is true. `clock` is injectable so
    tests can expire codes and tokens instantly.

    The account's go-live settings, each off (None) by default: `ip_allowlist` (addresses or
    networks; token calls from elsewhere get 40164), `js_domains` (the JS接口安全域名: the JS-SDK
    stand-in's ``wx.config`` on a page elsewhere fails with ``config:invalid url domain``),
    `daily_quota` and `minute_quota` (calls of each API before 45009 / 45011).

    `wecom` plays a WeCom (企业微信) corp beside the Official Accounts: its apps' tokens, logins
    (the authorize link with the corp id and an agentid, and wwlogin/sso/login), members and
    a non-member, trusted domain and IPs, and JS-SDK tickets (see `wecom_state.WeComCorp`).
    `platform` (component_appid, secret, token, EncodingAESKey) plays a third-party platform
    that the accounts may authorize; its encrypted events go to `platform_events_url` (at the
    server's startup, every 10 minutes, and when asked).
    """

    def __init__(
        self,
        app_id: str = DEFAULT_APP_ID,
        app_secret: str = DEFAULT_APP_SECRET,
        domains: Sequence[str] = ("127.0.0.1", "localhost"),
        auto_approve: bool = False,
        personas: Sequence[Persona] = DEFAULT_PERSONAS,
        default_persona: str | None = None,
        clock: Callable[[], float] = time.time,
        allow_remote: bool = False,
        website_app_id: str | None = DEFAULT_WEBSITE_APP_ID,
        website_app_secret: str | None = DEFAULT_WEBSITE_APP_SECRET,
        ip_allowlist: Sequence[str] | None = None,
        js_domains: Sequence[str] | None = None,
        daily_quota: int | None = None,
        minute_quota: int | None = None,
        accounts: Sequence[tuple[str, str]] = (),
        wecom: WeComCorp | None = None,
        platform: tuple[str, str, str, str] | None = None,
        platform_events_url: str | None = None,
    ) -> None:
        if not app_id or not app_secret:
            raise ValueError("app_id and app_secret must be non-empty strings")
        more = _more_accounts(accounts, (app_id, website_app_id))
        if website_app_id is not None:
            if not website_app_id or not website_app_secret:
                raise ValueError(
                    "website_app_id and website_app_secret must be non-empty strings "
                    "(website_app_id=None disables the website app)"
                )
            if website_app_id == app_id:
                raise ValueError(
                    "website_app_id must differ from app_id: WeChat gives the website app "
                    "its own appid"
                )
        go_live = GoLive.from_options(ip_allowlist, js_domains, daily_quota, minute_quota)
        if isinstance(domains, str):
            raise ValueError("domains must be a sequence of hostnames, e.g. ('localhost',)")
        self.domains = tuple(_normalise_domain(d) for d in domains)
        if not self.domains:
            raise ValueError("domains must name at least one hostname")
        if not personas:
            raise ValueError("personas must contain at least one Persona")
        self._personas = {p.key: p for p in personas}
        if len(self._personas) != len(personas):
            raise ValueError("persona keys must be unique")
        if default_persona is None:
            default_persona = personas[0].key
        if default_persona not in self._personas:
            raise ValueError(
                f"default_persona {default_persona!r} is not one of {', '.join(self._personas)}"
            )
        self.app_id = app_id
        self.official_app_ids = (app_id, *more)
        self.website_app_id = website_app_id
        # appid -> AppSecret, for every app the token APIs answer.
        self._secrets = {app_id: app_secret, **more}
        if website_app_id is not None and website_app_secret is not None:
            self._secrets[website_app_id] = website_app_secret
        self.auto_approve = auto_approve
        self.personas: tuple[Persona, ...] = tuple(personas)
        # Snapshot-mode users exist only inside WeChat's in-app browser: they never scan.
        self._scanners = {p.key: p for p in personas if not p.snapshot}
        self.default_persona = default_persona
        self.allow_remote = allow_remote
        self._clock = clock
        # Deliberate server state, shared by all requests; each part guards itself or is
        # guarded by _calls_lock, since tests and the demo touch it from other threads.
        self._grants = GrantStore(clock)
        self._credentials = CredentialStore(clock)
        self._faults = FaultPlan()
        self.go_live = go_live
        self._quotas = QuotaCounter(go_live)
        self._calls_lock = threading.Lock()
        self.calls: list[RecordedCall] = []
        self.platform = (
            None if platform is None else EmulatedPlatform(platform, platform_events_url, clock)
        )
        self._tasks = set()
        # The Official Accounts' followers and non-followers, by (account, openid).
        self._by_openid = {
            (account, p.openid_for(account)): p
            for account in self.official_app_ids
            for p in personas
        }
        self._apis = {
            "/sns/oauth2/access_token": Endpoint(
                "access_token", self._handle_access_token, "GET", API_CONTENT_TYPE, True
            ),
            "/sns/oauth2/refresh_token": Endpoint(
                "refresh_token", self._handle_refresh_token, "GET", API_CONTENT_TYPE, True
            ),
            "/sns/userinfo": Endpoint(
                "userinfo", self._handle_userinfo, "GET", USERINFO_CONTENT_TYPE, True
            ),
            "/sns/auth": Endpoint("auth", self._handle_auth, "GET", API_CONTENT_TYPE, True),
            "/cgi-bin/stable_token": Endpoint(
                "stable_token",
                self._handle_stable_token,
                "POST",
                CGI_CONTENT_TYPE,
                ip_checked=True,
            ),
            "/cgi-bin/token": Endpoint(
                "token", self._handle_token, "GET", CGI_CONTENT_TYPE, ip_checked=True
            ),
            "/cgi-bin/clear_quota": Endpoint(
                "clear_quota", self._handle_clear_quota, "POST", CGI_CONTENT_TYPE
            ),
            "/cgi-bin/ticket/getticket": Endpoint(
                "getticket", self._handle_getticket, "GET", CGI_CONTENT_TYPE
            ),
            "/cgi-bin/user/info": Endpoint(
                "user_info", self._handle_user_info, "GET", CGI_CONTENT_TYPE
            ),
        }
        self.wecom = wecom
        if wecom is not None:
            self._apis.update(self.wecom_endpoints())
        if self.platform is not None:
            self._apis.update(self._platform_apis())
        self._router = Router(
            routes=[
                Route("/connect/oauth2/authorize/wecom", self._wecom_confirm, methods=["POST"]),
                Route("/wwlogin/sso/login", self._wecom_sso, methods=["GET"]),
                Route("/wwlogin/sso/login/confirm", self._wecom_sso_confirm, methods=["POST"]),
                Route("/", self._index, methods=["GET"]),
                Route("/connect/oauth2/authorize", self._authorize, methods=["GET"]),
                Route("/connect/oauth2/authorize/confirm", self._confirm, methods=["POST"]),
                Route("/connect/qrconnect", self._qrconnect, methods=["GET"]),
                Route("/connect/qrconnect/confirm", self._qrconnect_confirm, methods=["POST"]),
                Route(JSSDK_PATH, self._jssdk, methods=["GET"]),
                Route(VERIFY_PATH, self._jsapi_verify, methods=["GET"]),
                Route(AGENT_VERIFY_PATH, self._agent_verify, methods=["GET"]),
                Route(FAULTS_PATH, self._faults_api, methods=["POST", "DELETE"]),
                Route(CONSENT_PATH, self._component_login_page, methods=["GET"]),
                Route(CONSENT_PATH + "/confirm", self._component_login_confirm, methods=["POST"]),
                Route(PUSH_PATH, self._push_route, methods=["POST"]),
                Route(UNAUTHORIZE_PATH, self._unauthorize_route, methods=["POST"]),
            ]
        )

    def __repr__(self) -> str:
        # The secrets stay out of logs and tracebacks.
        return (
            f"WeChatEmulator(app_id={self.app_id!r}, website_app_id={self.website_app_id!r}, "
            f"domains={self.domains!r})"
        )

    @property
    def app_secret(self) -> str:
        """The Official Account's AppSecret (a made-up one: the emulator guards nothing real)."""
        return self._secrets[self.app_id]

    @property
    def website_app_secret(self) -> str | None:
        """The website app's AppSecret, or None without a website app."""
        return None if self.website_app_id is None else self._secrets[self.website_app_id]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not self.allow_remote
            and not _is_loopback(scope.get("client"))
        ):
            response = PlainTextResponse(
                "Forbidden: the WeChat emulator only answers clients on this machine "
                f"(loopback); this request came from {scope['client'][0]}. It is a development "
                "tool: pass allow_remote=True (CLI: --allow-remote) only on a trusted network.",
                status_code=403,
            )
            await response(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path = route_path(scope) if scope["type"] == "http" else ""
        if path.startswith(API_PREFIXES) and not path.startswith(CONSENT_PATH):
            answer = await self._api(Request(scope, receive))
            await answer(scope, receive, send)
            return
        await self._router(scope, receive, send)

    # -- public helpers -------------------------------------------------------------------

    def call_count(self, path: str) -> int:
        """How many calls to WeChat's API `path` (e.g. "/cgi-bin/stable_token") were received,
        among the recorded `calls`."""
        with self._calls_lock:
            return sum(1 for call in self.calls if call.path == path)

    def invalidate_account_tokens(self, app_id: str | None = None) -> None:
        """Make every server access_token of an Official Account (`app_id`, by default the
        first) invalid (40001), as resetting the AppSecret does; the next stable_token call
        issues a new one. (Expiry comes with the clock: a token lives 7200 s.)"""
        self._credentials.invalidate_tokens(app_id or self.app_id)

    def issue_code(
        self, persona: str | None = None, scope: str = "snsapi_base", app_id: str | None = None
    ) -> str:
        """Mint a code as if `persona` (default: the default persona) had authorized `scope`.

        snsapi_base and snsapi_userinfo codes are an Official Account's (`app_id`, by default
        the first); an snsapi_login code
        is the website app's, as if the persona had scanned its QR code (not possible for a
        snapshot-mode persona, nor without a website app: ValueError).
        """
        key = self.default_persona if persona is None else persona
        if key not in self._personas:
            raise ValueError(f"unknown persona {key!r}; known: {', '.join(self._personas)}")
        if scope == QRCONNECT_SCOPE:
            if self.website_app_id is None:
                raise ValueError(
                    "snsapi_login codes belong to the website app, and this emulator has none "
                    "(website_app_id=None)"
                )
            if key not in self._scanners:
                raise ValueError(SNAPSHOT_CANNOT_SCAN.format(key=key))
            return self._grants.issue_code(self.website_app_id, key, scope)
        if scope not in SCOPES:
            raise ValueError(
                f"scope must be one of {', '.join((*SCOPES, QRCONNECT_SCOPE))}; got {scope!r}"
            )
        if app_id is not None and app_id not in self.official_app_ids:
            raise ValueError(f"{app_id} is not one of {', '.join(self.official_app_ids)}")
        return self._grants.issue_code(app_id or self.app_id, key, scope)


def _more_accounts(
    accounts: Sequence[tuple[str, str]], taken: tuple[str | None, ...]
) -> dict[str, str]:
    """The Official Accounts registered besides the first, checked: appid -> AppSecret."""
    more: dict[str, str] = {}
    for entry in accounts:
        if not isinstance(entry, tuple) or len(entry) != 2 or not all(entry):
            raise ValueError(f"accounts holds (app_id, app_secret) pairs, not {entry!r}")
        app_id, secret = entry
        if app_id in taken or app_id in more:
            raise ValueError(f"the appid {app_id} is registered twice")
        more[app_id] = secret
    return more


def _normalise_domain(domain: str) -> str:
    host = domain.strip().lower()
    if not host or any(c in host for c in "/?#@ ") or host.startswith("["):
        raise ValueError(f"domain {domain!r} must be a bare hostname such as 'localhost'")
    if ":" in host:
        # Only an IPv6 literal may contain ':'; a port is not part of the domain.
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"domain {domain!r} must be a bare hostname without a port (ports are ignored)"
            ) from None
    return host
