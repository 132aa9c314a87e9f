"""The ASGI middleware: a thin driver around the decision core."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, unquote

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._http.http11 import proxied
from ._http.pool import Pool
from .decisions import Forward
from .drivers import drive_async, load_account_async, running_loop
from .effects import Flow
from .errors import AccountUnavailable, ConfigurationError, StoreUnavailable
from .messages import FORM_TOO_LARGE, MAX_FORM_BYTES, HTTPRequest, HTTPResponse
from .options import MiddlewareOptions
from .pages import error_response
from .storage.redis_client import async_redis_client
from .urls import PATH_SAFE
from .user import USER_KEY, User

if TYPE_CHECKING:
    from .core import LoginCore
    from .platform.events import PlatformEvents
    from .storage.redis_client import AsyncClient

__all__ = ["WeChatAuthMiddleware"]

T = TypeVar("T")


class WeChatAuthMiddleware(MiddlewareOptions[ASGIApp]):
    """Log WeChat users in, for any ASGI application.

    Puts the user (a `WeChatUser`, or None) at `scope[USER_KEY]` of every HTTP and
    WebSocket scope; answers the login callback itself; redirects WeChat-browser page visits
    without a session to WeChat. Lifespan scopes pass through; the outbound HTTP client is
    closed at lifespan shutdown when the server sends one.
    """

    _transport_type = httpx.AsyncBaseTransport
    _client: httpx.AsyncClient | Pool | None = None
    _client_loop: object = None
    _outbound: anyio.Semaphore | None = None
    _store: AsyncClient | None = None

    @classmethod
    def _failed(cls, error: ConfigurationError, caller: FrameType) -> Any:
        # Starlette and FastAPI build their middleware (`add_middleware`, `middleware=[...]`)
        # on the first ASGI call, the server's lifespan startup. An exception there is taken
        # by uvicorn's default lifespan="auto" for "lifespan unsupported": it logs that at INFO
        # and serves a 500 to every request. Built there, the middleware fails the startup
        # instead, with the error: the server says so and exits.
        if caller.f_code.co_name == "build_middleware_stack":
            return _FailedStartup(error)
        raise error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            if scope["type"] == "lifespan":
                send = self._lifespan_send(send)
            await self.app(scope, receive, send)
            return
        events = self.router.events  # a third-party platform's pushes: on any host
        if events is not None and scope["type"] == "http" and _is_events_path(self, scope):
            await self._platform_event(events, scope, receive, send)
            return
        # The account serving the request's host: the one, or by its Host header.
        core = self._single
        if core is None:
            host = _host(scope)
            try:
                # A dict lookup (the loader only on a miss); on a host of an Official Account
                # and a WeCom app, the browser chooses.
                agent = _user_agent(scope) if self.router.shared else ""
                found = self.router.find(host, agent)
                core = await load_account_async(self.router, host) if found is False else found
            except AccountUnavailable as exc:
                await self._unavailable(scope, send, exc)
                return
            if core is None:  # a host no account serves: untouched
                scope[USER_KEY] = None
                await self.app(scope, receive, send)
                return
        if scope["type"] == "http":
            # The common requests (another browser, a logged-in user) straight to the app.
            user = self._quick(core, scope)
            if user is not False:
                scope[USER_KEY] = user
                await self.app(scope, receive, send)
            else:
                await self._http(core, scope, receive, send)
            return
        cookie = _headers(scope["headers"]).get("cookie", "")
        try:
            scope[USER_KEY] = await self._drive(
                core.session_user(cookie, scope.get("scheme", "ws"))
            )
        except StoreUnavailable:
            # Closing before accepting refuses the handshake (HTTP 403).
            await send({"type": "websocket.close", "code": 1011, "reason": "store down"})
            return
        await self.app(scope, receive, send)

    async def _unavailable(self, scope: Scope, send: Send, error: AccountUnavailable) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": "account unavailable"})
            return
        response = error_response(self.config.on_error, error, _request(scope))
        await _send_response(response, send, head=scope["method"] == "HEAD")

    async def _http(self, core: LoginCore, scope: Scope, receive: Receive, send: Send) -> None:
        request = _request(scope)
        if request.method == "POST" and request.path in core.form_paths:
            # One of the middleware's own forms: the app never sees this request.
            body = await _read_body(receive)
            if body is None:
                await _send_response(FORM_TOO_LARGE, send, head=False)
                return
            request = replace(request, body=body)
        decision = core.handle(request)
        if not isinstance(decision, (Forward, HTTPResponse)):
            decision = await self._drive(decision)
        if isinstance(decision, Forward):
            if decision.target is not None:
                scope = _retarget(scope, decision.target)
            scope[USER_KEY] = decision.user
            await self.app(scope, receive, send)
            return
        await _send_response(decision, send, head=scope["method"] == "HEAD")

    async def _platform_event(
        self, events: PlatformEvents, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = _request(scope)
        body = await _read_body(receive) if request.method == "POST" else b""
        if body is None:
            await _send_response(FORM_TOO_LARGE, send, head=False)
            return
        answer = events(replace(request, body=body))
        if not isinstance(answer, HTTPResponse):
            answer = await self._drive(answer)
        await _send_response(answer, send, head=scope["method"] == "HEAD")

    async def platform_authorize_url(
        self, redirect_uri: str, *, component_appid: str | None = None
    ) -> str:
        """The link an Official Account's admin opens to authorize the platform (WeChat's
        componentloginpage, with a fresh pre_auth_code); WeChat sends them back to
        `redirect_uri?auth_code=...`. `component_appid`: which platform's, when several."""
        platform = self.router.platform(component_appid, "platform_authorize_url")
        return await self._drive(platform.authorize_url(redirect_uri))

    async def platform_authorized(
        self, auth_code: str, *, component_appid: str | None = None
    ) -> str:
        """Completes an admin's authorization with the `auth_code` WeChat sent back: keeps
        the account's refresh token (in Redis with redis_url) and returns its AppID."""
        platform = self.router.platform(component_appid, "platform_authorized")
        return await self._drive(platform.authorized(auth_code))

    def _quick(self, core: LoginCore, scope: Scope) -> User | Literal[False] | None:
        # Most requests are another browser without a session, or a logged-in user: decided
        # from two raw headers, without decoding the rest.
        raw = scope["headers"]
        headers = dict(raw)
        cookie = headers.get(b"cookie", b"")
        if cookie and not (isinstance(raw, list) and len(headers) == len(raw)):
            # A name may have come twice: HTTP/2 may split the Cookie header: join them all.
            cookie = b"; ".join(value for name, value in raw if name == b"cookie")
        path: str = scope["path"]  # (_full_path, without its call)
        root_path: str = scope.get("root_path", "")
        if root_path and not path.startswith(root_path):
            path = root_path + path
        return core.quick_user(
            path,
            headers.get(b"user-agent", b""),
            cookie.decode("latin-1"),
            scope.get("scheme", "http"),
        )

    async def revoke(self, identity: str, *, app_id: str | None = None) -> int:
        """Log `identity` (an openid; a unionid with identity='unionid') out everywhere: end
        all of its sessions on every instance, drop its kept tokens. Needs redis_url.
        Returns how many sessions ended. `app_id`: the account's, with several accounts."""
        core = self.router.by_app_id(app_id, "revoke")
        return await self._drive(core.account.revoke(identity))

    async def user_access_token(self, openid: str, *, app_id: str | None = None) -> str:
        """A valid WeChat access_token (the user's, of the web authorization) for calling
        WeChat on the user's behalf, renewed with the kept refresh_token when needed.
        Needs keep_tokens=True; raises TokenUnavailable when the user must log in again.
        `app_id`: the account's, with several accounts."""
        core = self.router.by_app_id(app_id, "user_access_token")
        return await self._drive(core.account.user_access_token(openid))

    async def access_token(self, rejected: str | None = None, *, app_id: str | None = None) -> str:
        """The Official Account's server access_token, for the application's own calls to
        WeChat's API in the account's name (cached; shared through Redis with redis_url).
        Pass `rejected=token` when WeChat just refused `token` (errcode 40001/42001).
        `app_id`: which account's, required with several accounts (ValueError without)."""
        core = self.router.by_app_id(app_id, "access_token")
        return await self._drive(core.credentials.access_token(rejected))

    async def jssdk_config(self, url: str) -> dict[str, object]:
        """`wx.config`'s appId, timestamp, nonceStr and signature for the page at `url`
        (absolute; any #fragment dropped), signed by the account serving the URL's host.
        ValueError for a URL that is not absolute http(s), on a host no account serves, or
        (with public_url) not on the site's origin."""
        core = self._single
        if core is None:
            host = self.router.url_host(url)
            try:
                found = self.router.find(host)
                core = await load_account_async(self.router, host) if found is False else found
            except AccountUnavailable as exc:
                raise ConfigurationError(f"jssdk_config: {exc}") from exc
            if core is None:
                raise ConfigurationError(f"jssdk_config: no account serves the host of {url!r}.")
        return await self._drive(core.credentials.jssdk_config(url, core.config.public_url))

    async def follows(self, openid: str, *, app_id: str | None = None) -> bool:
        """Whether the user `openid` follows the Official Account (/cgi-bin/user/info).
        `app_id`: which account's, required with several accounts."""
        core = self.router.by_app_id(app_id, "follows")
        return await self._drive(core.credentials.follows(openid))

    async def _drive(self, flow: Flow[T]) -> T:
        client = self._http_client()
        return await drive_async(flow, client, self._outbound, self._store)

    def _http_client(self) -> httpx.AsyncClient | Pool:
        # Created on first use, in the running event loop, and reused for every login. Its
        # pooled connections belong to that loop: a server that runs the app on another loop
        # later (without a lifespan to close it) gets a new client rather than a broken one.
        # The same goes for the session store's client.
        loop = running_loop()
        if self._client is None or self._client_loop is not loop:
            if self.config.redis_url is not None:
                self._store = async_redis_client(self.config.redis_url)
            if self.config.transport is None and loop is not None and not proxied():
                # On asyncio, without a transport of the application's or a proxy: a pool
                # of its own, a tenth of httpx's CPU per call (docs/performance.md).
                self._client = Pool(
                    self.config.api_base_url,
                    self.config.max_connections,
                    self.config.http_timeout,
                )
                self._outbound = None
            else:
                self._client = httpx.AsyncClient(
                    timeout=self.config.http_timeout,
                    limits=self._limits,
                    transport=self.config.transport,  # type: ignore[arg-type]
                )
                # At most max_connections calls at once: the others wait here, in order,
                # rather than in the pool's queue, which httpcore rescans on every release.
                self._outbound = anyio.Semaphore(self.config.max_connections)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the outbound HTTP client and the store's (done at lifespan shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.aclose()
            await send(message)

        return lifespan_send


def _host(scope: Scope) -> str:
    """The request's Host header (HTTP/2's :authority, which servers put there), or ""."""
    for name, value in scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return ""


def _user_agent(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"user-agent":
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return ""


def _is_events_path(middleware: WeChatAuthMiddleware, scope: Scope) -> bool:
    return _full_path(scope) == middleware.config.platform_events_path


def _full_path(scope: Scope) -> str:
    # Paths as the browser sees them: servers put the mount prefix (root_path) in `path`
    # nowadays; older ones did not.
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and not path.startswith(root_path):
        return root_path + path
    return path


class _FailedStartup:
    """Stands for a middleware whose options are wrong: fails the lifespan startup with the
    error, and raises it to any other scope (a server that sends no lifespan)."""

    def __init__(self, error: ConfigurationError) -> None:
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and (await receive())["type"] == "lifespan.startup":
            # As Starlette's own lifespan does: say the startup failed, then raise.
            await send({"type": "lifespan.startup.failed", "message": str(self.error)})
        raise self.error


def _headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    raw = raw_headers if isinstance(raw_headers, list) else list(raw_headers)
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
    if len(headers) == len(raw):
        return headers
    # A name came more than once: its values joined, as HTTP says (Cookie's with "; ").
    headers = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    return headers


def _request(scope: Scope) -> HTTPRequest:
    root_path = scope.get("root_path", "")
    path = _full_path(scope)
    raw_path = scope.get("raw_path")
    if raw_path is not None and not root_path:
        target = raw_path.decode("latin-1")
    else:
        target = quote(path, safe=PATH_SAFE)
    query = scope["query_string"].decode("latin-1")
    return HTTPRequest(
        method=scope["method"],
        scheme=scope.get("scheme", "http"),
        path=path,
        target=f"{target}?{query}" if query else target,
        query_string=query,
        headers=_headers(scope["headers"]),
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The request's body, or None if it is larger than a form of the middleware's can be."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away: an empty form, refused as such
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _retarget(scope: Scope, target: str) -> Scope:
    """A copy of `scope` for another path and query of the same site."""
    path, _, query = target.partition("?")
    return {
        **scope,
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
    }


async def _send_response(response: HTTPResponse, send: Send, *, head: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.status != 304:  # a 304's length would be its 200's (RFC 9110): none is sent
        headers.append((b"content-length", str(len(response.body)).encode("latin-1")))
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": headers,
            "trailers": False,
        }
    )
    await send(
        {"type": "http.response.body", "body": b"" if head else response.body, "more_body": False}
    )
