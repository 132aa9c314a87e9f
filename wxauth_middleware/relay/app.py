"""The relay as an application: `WeChatAuthRelay` (ASGI) and `WeChatAuthRelayWSGI`, served on
the account's registered domain (its 网页授权域名) for the sites it lists.

Each is the middleware (its login, sessions, pools, Redis client), configured for the relay,
with the relay's paths answered by its core (`relay/service.py`) and every response marked
`Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..asgi import WeChatAuthMiddleware
from ..config import Lang
from ..cookies import wall_clock
from ..errors import ConfigurationError
from ..messages import HTTPResponse
from ..pages import bilingual_page
from ..rules import Rule
from ..urls import check_origin
from ..useragent import is_wecom_browser
from ..wecom.app import WeComApp
from ..wsgi import WeChatAuthWSGIMiddleware
from .links import RELAY_PATHS
from .records import RelayRecords
from .service import RelayService, declined_back
from .sites import RelaySite, check_relay_url, checked_sites

if TYPE_CHECKING:
    import httpx
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from starlette.types import Message, Receive, Scope, Send

    from ..core import LoginCore

__all__ = ["WeChatAuthRelay", "WeChatAuthRelayWSGI"]

# Every relay response: no Referer leaves a relay page (its address names a login), and no
# cache keeps one.
_HEADERS = (("referrer-policy", "no-referrer"), ("cache-control", "no-store"))
_REPLACED = frozenset(name for name, _ in _HEADERS)
# The relay's session lives from its callback to its finish hop: a redirect.
_SESSION_LIFE = 300


def _options(
    account: Mapping[str, Any],
    secret_key: str | bytes | Sequence[str | bytes],
    redis_url: str | None,
    public_url: str,
    session_cookie: str,
    more: Mapping[str, Any],
) -> dict[str, Any]:
    """The middleware's options that make it a relay's, for `account` (an Official
    Account's app_id/app_secret, or a WeCom app's accounts=[...])."""
    if redis_url is None:
        raise ConfigurationError(
            "redis_url is required: the relay keeps its logins and tickets in Redis, shared "
            "by every instance and taken once."
        )
    origin = check_origin("public_url", public_url)
    check_relay_url("public_url", origin)
    return {
        **account,
        "secret_key": secret_key,
        "redis_url": redis_url,
        "public_url": origin,
        **more,
        "callback_path": RELAY_PATHS["callback"],
        "session_cookie": session_cookie,
        "max_age": _SESSION_LIFE,
        "login_path": None,
        "logout_path": None,
        "jssdk_path": None,
        "platform_events_path": None,
        # Its own paths are the core's; anything else is not found, whatever the browser.
        "rules": [Rule("/**", exempt=True)],
        "other_browsers": "refuse",
        "on_error": declined_back,
    }


def _serve(core: LoginCore, sites: Mapping[str, RelaySite]) -> RelayService:
    config = core.config
    records = RelayRecords(config.redis_prefix, config.login_max_age)
    service = RelayService(core, sites, records, wall_clock)
    core.serve(service.own_paths(), forms=(RELAY_PATHS["redeem"],))
    return service


def _not_found_page() -> HTTPResponse:
    from ..messages import HTTPRequest

    request = HTTPRequest("GET", "https", "/", "/", "", {})
    return bilingual_page(
        request,
        404,
        ("找不到该页面", "Not found"),
        [("微信登录中转服务没有这个页面。", "The WeChat login relay has no such page.")],
    )


_NOT_FOUND = _not_found_page()


class _Relay:
    """The options of both relays, written once; each builds its adapter's middleware: one
    for the Official Account, one for the WeCom app, or both (the browser chooses)."""

    _official: Any = None
    _wecom: Any = None

    def __init__(
        self,
        *,
        app_id: str | None = None,
        app_secret: str | None = None,
        wecom: WeComApp | None = None,
        secret_key: str | bytes | Sequence[str | bytes],
        redis_url: str,
        public_url: str,
        sites: Sequence[RelaySite],
        authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize",
        api_base_url: str = "https://api.weixin.qq.com",
        lang: Lang = "zh_CN",
        http_timeout: float = 10.0,
        login_timeout: float = 20.0,
        retries: int = 2,
        max_connections: int = 20,
        transport: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
        login_max_age: int = 600,
        redis_prefix: str = "wxauth:",
        verify_files: Mapping[str, str] | None = None,
    ) -> None:
        more = {
            "authorize_url": authorize_url,
            "api_base_url": api_base_url,
            "lang": lang,
            "http_timeout": http_timeout,
            "login_timeout": login_timeout,
            "retries": retries,
            "max_connections": max_connections,
            "transport": transport,
            "login_max_age": login_max_age,
            "redis_prefix": redis_prefix,
            "verify_files": verify_files,
        }
        if app_id is None and app_secret is None and wecom is None:
            raise ConfigurationError(
                "the relay logs visitors in with an Official Account (app_id, app_secret), a "
                "WeCom app (wecom=WeComApp(...)), or both: give one."
            )
        by_id = checked_sites(sites)
        common = (secret_key, redis_url, public_url)
        if wecom is not None:
            if not isinstance(wecom, WeComApp):
                raise ConfigurationError(f"wecom must be a WeComApp(...), not {wecom!r}.")
            # The app serves the relay's one host, at the relay's address.
            app = replace(wecom, hosts=(), public_url=None)
            options = _options({"accounts": [app]}, *common, "wxauth_relay_wecom", more)
            self._wecom = self._adapter(options)
        if app_id is not None or app_secret is not None:
            account = {"app_id": app_id, "app_secret": app_secret}
            self._official = self._adapter(_options(account, *common, "wxauth_relay", more))
        self.services = [_serve(m.core, by_id) for m in self._middlewares]

    @property
    def _middlewares(self) -> list[Any]:
        return [m for m in (self._official, self._wecom) if m is not None]

    def _for(self, user_agent: str) -> Any:
        """The middleware of the visitor's browser: WeCom's, or the Official Account's (which
        also answers the sites' redemptions and other browsers)."""
        if self._wecom is not None and (self._official is None or is_wecom_browser(user_agent)):
            return self._wecom
        return self._official

    def _adapter(self, options: dict[str, Any]) -> Any:
        raise NotImplementedError  # each relay's own


class WeChatAuthRelay(_Relay):
    """The relay, an ASGI application: logs WeChat visitors in for the `sites` with the
    account `app_id`, on `public_url` (the account's registered 网页授权域名), keeping its
    records in Redis (`redis_url`). The other options are the middleware's of the same name
    (`transport` an asynchronous httpx one)."""

    def _adapter(self, options: dict[str, Any]) -> WeChatAuthMiddleware:
        return WeChatAuthMiddleware(_not_found, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        agent = next((v for n, v in scope["headers"] if n == b"user-agent"), b"")
        middleware = self._for(agent.decode("latin-1"))
        if scope["type"] != "http":
            await middleware(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message["headers"] if n.lower() not in _BYTES]
                message = {**message, "headers": headers + _BYTES_HEADERS}
            await send(message)

        await middleware(scope, receive, marked)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close the outbound HTTP clients and the Redis clients (done at lifespan shutdown)."""
        for middleware in self._middlewares:
            await middleware.aclose()


class WeChatAuthRelayWSGI(_Relay):
    """The relay, a WSGI application: takes the same options as `WeChatAuthRelay`
    (`transport` a synchronous httpx one)."""

    def _adapter(self, options: dict[str, Any]) -> WeChatAuthWSGIMiddleware:
        return WeChatAuthWSGIMiddleware(_not_found_wsgi, **options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def marked(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(n, v) for n, v in headers if n.lower() not in _REPLACED]
            return start_response(status, kept + list(_HEADERS), exc_info)

        middleware = self._for(environ.get("HTTP_USER_AGENT", ""))
        return middleware(environ, marked)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the outbound HTTP clients and the Redis clients."""
        for middleware in self._middlewares:
            middleware.close()


_BYTES = frozenset(name.encode() for name in _REPLACED)
_BYTES_HEADERS = [(name.encode(), value.encode()) for name, value in _HEADERS]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # a websocket: refused
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in _NOT_FOUND.headers]
    headers.append((b"content-length", str(len(_NOT_FOUND.body)).encode()))
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": _NOT_FOUND.body})


def _not_found_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    headers = [*_NOT_FOUND.headers, ("content-length", str(len(_NOT_FOUND.body)))]
    start_response("404 Not Found", headers)
    return [_NOT_FOUND.body]
