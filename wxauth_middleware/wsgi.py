"""The WSGI middleware: the same core and login flow as the ASGI one, driven synchronously.

No event loop and no async bridge: the login flow's calls to WeChat are made with blocking
sockets through the middleware's own pool (`_http/sync_pool.py`; httpx's synchronous client with a
`transport=` or a proxy), shared by all of the server's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

import httpx

from ._http.http11 import proxied
from ._http.sync_pool import SyncPool
from .decisions import Decision, Forward
from .drivers import drive_sync, load_account_sync
from .effects import Flow
from .errors import AccountUnavailable, ConfigurationError
from .messages import FORM_TOO_LARGE, MAX_FORM_BYTES, HTTPRequest, HTTPResponse
from .options import MiddlewareOptions
from .pages import error_response
from .storage.redis_client import SyncClient, redis_client
from .urls import PATH_SAFE
from .user import USER_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .core import LoginCore
else:
    StartResponse = WSGIApplication = WSGIEnvironment = Any

__all__ = ["WeChatAuthWSGIMiddleware"]

T = TypeVar("T")


class WeChatAuthWSGIMiddleware(MiddlewareOptions["WSGIApplication"]):
    """Log WeChat users in, for any WSGI application (Flask, Django, ...).

    Puts the user (a `WeChatUser`, or None) at `environ[USER_KEY]`; answers the login
    callback itself; redirects WeChat-browser page visits without a session to WeChat. Takes
    the same options as `WeChatAuthMiddleware`; `transport` must be a synchronous httpx one.
    """

    _transport_type = httpx.BaseTransport
    _client: httpx.Client | SyncPool | None = None
    _outbound: threading.Semaphore | None = None
    _store: SyncClient | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        events = self.router.events  # a third-party platform's pushes: on any host
        if events is not None and _is_events_path(environ, self.config.platform_events_path):
            request = _request(environ, frozenset((self.config.platform_events_path or "",)))
            answer = FORM_TOO_LARGE if request is None else events(request)
            if not isinstance(answer, HTTPResponse):
                answer = self._drive(answer)
            return self._respond(environ, start_response, answer)
        # The account serving the request's host: the one, or by its Host header.
        core = self._single
        if core is None:
            try:
                core = self._host_core(
                    environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
                    environ.get("HTTP_USER_AGENT", ""),
                )
            except AccountUnavailable as exc:
                # What the error page needs of the request (its body is the app's, unread).
                request = _request(environ)
                assert request is not None
                return self._respond(
                    environ, start_response, error_response(self.config.on_error, exc, request)
                )
            if core is None:  # a host no account serves: untouched
                environ[USER_KEY] = None
                return self.app(environ, start_response)
        # Most requests are another browser without a session, or a logged-in user: decided
        # from two environ entries. (Own paths are ASCII, so the latin-1 path compares right.)
        user = core.quick_user(
            environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            environ.get("HTTP_USER_AGENT", ""),
            environ.get("HTTP_COOKIE", ""),
            environ.get("wsgi.url_scheme", "http"),
        )
        if user is not False:
            environ[USER_KEY] = user
            return self.app(environ, start_response)
        request = _request(environ, core.form_paths)
        decision: Decision = FORM_TOO_LARGE if request is None else core.handle(request)
        if not isinstance(decision, (Forward, HTTPResponse)):
            decision = self._drive(decision)
        if isinstance(decision, Forward):
            if decision.target is not None:
                _retarget(environ, decision.target)
            environ[USER_KEY] = decision.user
            return self.app(environ, start_response)
        return self._respond(environ, start_response, decision)

    def _respond(
        self, environ: WSGIEnvironment, start_response: StartResponse, response: HTTPResponse
    ) -> Iterable[bytes]:
        headers = list(response.headers)
        if response.status != 304:  # a 304's length would be its 200's (RFC 9110): none is sent
            headers.append(("content-length", str(len(response.body))))
        start_response(f"{response.status} {_reason(response.status)}", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [response.body]

    def _host_core(self, host: str, user_agent: str = "") -> LoginCore | None:
        # On a host of an Official Account and a WeCom app, the browser chooses.
        found = self.router.find(host, user_agent)
        return load_account_sync(self.router, host) if found is False else found

    def revoke(self, identity: str, *, app_id: str | None = None) -> int:
        """Log `identity` (an openid; a unionid with identity='unionid') out everywhere: end
        all of its sessions on every instance, drop its kept tokens. Needs redis_url.
        Returns how many sessions ended. `app_id`: the account's, with several accounts."""
        core = self.router.by_app_id(app_id, "revoke")
        return self._drive(core.account.revoke(identity))

    def user_access_token(self, openid: str, *, app_id: str | None = None) -> str:
        """A valid WeChat access_token (the user's, of the web authorization) for calling
        WeChat on the user's behalf, renewed with the kept refresh_token when needed.
        Needs keep_tokens=True; raises TokenUnavailable when the user must log in again.
        `app_id`: the account's, with several accounts."""
        core = self.router.by_app_id(app_id, "user_access_token")
        return self._drive(core.account.user_access_token(openid))

    def access_token(self, rejected: str | None = None, *, app_id: str | None = None) -> str:
        """The Official Account's server access_token, for the application's own calls to
        WeChat's API in the account's name (cached; shared through Redis with redis_url).
        Pass `rejected=token` when WeChat just refused `token` (errcode 40001/42001).
        `app_id`: which account's, required with several accounts (ValueError without)."""
        core = self.router.by_app_id(app_id, "access_token")
        return self._drive(core.credentials.access_token(rejected))

    def platform_authorize_url(
        self, redirect_uri: str, *, component_appid: str | None = None
    ) -> str:
        """The link an Official Account's admin opens to authorize the platform (WeChat's
        componentloginpage, with a fresh pre_auth_code); WeChat sends them back to
        `redirect_uri?auth_code=...`. `component_appid`: which platform's, when several."""
        platform = self.router.platform(component_appid, "platform_authorize_url")
        return self._drive(platform.authorize_url(redirect_uri))

    def platform_authorized(self, auth_code: str, *, component_appid: str | None = None) -> str:
        """Completes an admin's authorization with the `auth_code` WeChat sent back: keeps
        the account's refresh token (in Redis with redis_url) and returns its AppID."""
        platform = self.router.platform(component_appid, "platform_authorized")
        return self._drive(platform.authorized(auth_code))

    def jssdk_config(self, url: str) -> dict[str, object]:
        """`wx.config`'s appId, timestamp, nonceStr and signature for the page at `url`
        (absolute; any #fragment dropped), signed by the account serving the URL's host.
        ValueError for a URL that is not absolute http(s), on a host no account serves, or
        (with public_url) not on the site's origin."""
        core = self._single
        if core is None:
            try:
                core = self._host_core(self.router.url_host(url))
            except AccountUnavailable as exc:
                raise ConfigurationError(f"jssdk_config: {exc}") from exc
            if core is None:
                raise ConfigurationError(f"jssdk_config: no account serves the host of {url!r}.")
        return self._drive(core.credentials.jssdk_config(url, core.config.public_url))

    def follows(self, openid: str, *, app_id: str | None = None) -> bool:
        """Whether the user `openid` follows the Official Account (/cgi-bin/user/info).
        `app_id`: which account's, required with several accounts."""
        core = self.router.by_app_id(app_id, "follows")
        return self._drive(core.credentials.follows(openid))

    def _drive(self, flow: Flow[T]) -> T:
        client = self._http_client()
        return drive_sync(flow, client, self._outbound, self._store)

    def _configured(self) -> None:
        # This instance's own: another middleware's first request must not wait on it.
        self._client_lock = threading.Lock()

    def _http_client(self) -> httpx.Client | SyncPool:
        # Created on first use and shared by the server's threads (both clients and the
        # store's are thread-safe).
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    if self.config.redis_url is not None:
                        self._store = redis_client(self.config.redis_url)
                    if self.config.transport is None and not proxied():
                        # Without a transport of the application's or a proxy: a pool of its
                        # own, with one deadline per call (docs/performance.md).
                        self._client = SyncPool(
                            self.config.api_base_url,
                            self.config.max_connections,
                            self.config.http_timeout,
                        )
                    else:
                        # At most max_connections calls at once across the server's threads.
                        self._outbound = threading.BoundedSemaphore(self.config.max_connections)
                        self._client = httpx.Client(
                            timeout=self.config.http_timeout,
                            limits=self._limits,
                            transport=self.config.transport,  # type: ignore[arg-type]
                        )
        return self._client

    def close(self) -> None:
        """Close the outbound HTTP client and the store's (WSGI has no shutdown event: call it
        if you need to)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        store, self._store = self._store, None
        if store is not None:
            store.close()


def _reason(status: int) -> str:
    # An on_error hook may answer any status, standard or not.
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _is_events_path(environ: WSGIEnvironment, path: str | None) -> bool:
    full: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return full == path


def _retarget(environ: WSGIEnvironment, target: str) -> None:
    """Point `environ` at another path and query of the same application."""
    path, _, query = target.partition("?")
    # PEP 3333: PATH_INFO holds the decoded path's bytes as latin-1, below SCRIPT_NAME.
    full = unquote_to_bytes(path).decode("latin-1")
    script_name = environ.get("SCRIPT_NAME", "")
    if script_name and full.startswith(script_name):
        full = full[len(script_name) :]
    environ["PATH_INFO"] = full
    environ["QUERY_STRING"] = query


def _request(
    environ: WSGIEnvironment, form_paths: frozenset[str] = frozenset()
) -> HTTPRequest | None:
    """The request, with its body read if it is one of the middleware's own forms; None if
    that body is larger than such a form can be."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    if "host" not in headers:
        port = environ.get("SERVER_PORT", "")
        name = environ.get("SERVER_NAME", "")
        default = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
        headers["host"] = name if port in ("", default) else f"{name}:{port}"
    # PEP 3333: environ strings are the request's bytes decoded as latin-1. The path as the
    # browser sees it includes the mount prefix (SCRIPT_NAME).
    raw_path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    query = environ.get("QUERY_STRING", "")
    target = quote(raw_path, safe=PATH_SAFE) or "/"
    method = environ.get("REQUEST_METHOD", "GET")
    path = raw_path.decode("utf-8", "replace") or "/"
    body = b""
    if method == "POST" and path in form_paths:
        # One of the middleware's own forms: the app never sees this request.
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_FORM_BYTES:
            return None
        body = environ["wsgi.input"].read(length) if length > 0 else b""
    return HTTPRequest(
        method=method,
        scheme=environ.get("wsgi.url_scheme", "http"),
        path=path,
        target=f"{target}?{query}" if query else target,
        query_string=query,
        headers=headers,
        body=body,
    )
