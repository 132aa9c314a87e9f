"""The emulator as an ASGI app: WeChat's authorize page, its website QR-code login page, the
four user-token APIs, the account's own token, ticket and user-info APIs, and a stand-in of the
JS-SDK script."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from .authorize import (
    QRCONNECT_SCOPE,
    SCOPES,
    AuthorizeRejection,
    AuthorizeRequest,
    callback_url,
    parse_authorize_query,
    parse_qrconnect_query,
)
from .credentials import CredentialStore
from .faults import FaultOptions, FaultPlan, fault_kwargs_from_json
from .grants import ACCESS_TOKEN_TTL, AccessGrant, GrantError, GrantStore
from .jssdk import JSSDK_PATH, JSSDK_SCRIPT, VERIFY_PATH, verify_config
from .pages import (
    CONSENT,
    QRCONNECT,
    DecisionForm,
    decision_page,
    error_page,
    fault_page,
    index_page,
)
from .personas import DEFAULT_PERSONAS, Persona
from .protocol import (
    API_CONTENT_TYPE,
    CGI_CONTENT_TYPE,
    USERINFO_CONTENT_TYPE,
    JSONValue,
    error_payload,
    wechat_json,
)

if TYPE_CHECKING:  # Python 3.10's typing has no Unpack; annotations are never evaluated
    from typing_extensions import Unpack

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
#: Scopes whose tokens may call /sns/userinfo.
_USERINFO_SCOPES = ("snsapi_userinfo", QRCONNECT_SCOPE)

#: Remembers which persona is "logged in to this WeChat" (scoped to the authorize paths).
PERSONA_COOKIE = "wxemu_persona"
_PERSONA_COOKIE_MAX_AGE = 30 * 86400
#: `calls` keeps at most this many entries (the newest), so load tests stay bounded.
MAX_RECORDED_CALLS = 10_000

Params = dict[str, str]
#: Paths below these are WeChat's APIs: whatever they are asked, they answer HTTP 200 and JSON.
_API_PREFIXES = ("/sns/", "/cgi-bin/")
_FAULTS_PATH = "/_emulator/faults"


@dataclass(frozen=True)
class _Endpoint:
    """One WeChat API: its fault-injection name, its handler, the method WeChat documents,
    and the content type it answers with."""

    name: str
    handler: Callable[[Params], dict[str, JSONValue]]
    method: str
    content_type: str
    # The /sns/ APIs take a POSTed form like a query string: long-lived clients (social-core,
    # allauth) POST the code exchange and are reported to work.
    form_posts: bool = False


@dataclass(frozen=True)
class RecordedCall:
    """One API call as received: WeChat's path (without any mount prefix) and the parameters
    in the order the client sent them (query string, then a POSTed form; for stable_token the
    JSON body's fields, values as JSON text)."""

    path: str
    params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        """The first value of `name`, or None."""
        return next((v for k, v in self.params if k == name), None)


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


def _route_path(scope: Scope) -> str:
    """The request's path below the mount point (Starlette keeps the full path in "path")."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


def _is_loopback(client: Any) -> bool:
    if client is None:
        return True  # some test transports give no client at all
    host = str(client[0])
    # Starlette's TestClient says "testclient"; a network server always reports an address.
    return host == "testclient" or (host != "localhost" and is_loopback_host(host))


async def _form(request: Request) -> Params:
    """A posted form's fields, the first value of each."""
    body = (await request.body()).decode("utf-8", "replace")
    return _first_values(parse_qsl(body, keep_blank_values=True))


def _refusal(auth: AuthorizeRequest) -> StarletteResponse:
    # Older WeChat clients come back with state and no code when the user refuses.
    return RedirectResponse(
        callback_url(auth.redirect_uri, [("state", auth.state)]), status_code=302
    )


def _decision(
    form: DecisionForm,
    path: str,
    request: Request,
    auth: AuthorizeRequest,
    personas: Sequence[Persona],
    selected: str,
    message: str,
    status: int,
) -> StarletteResponse:
    """The consent or QR-code page for the link at `path`, posting to its /confirm; a message
    (a form sent back) leaves the fragment unchecked, as the link is no longer in the URL."""
    page = decision_page(
        form,
        auth,
        action=f"{request.scope.get('root_path', '')}{path}/confirm",
        personas=personas,
        selected=selected,
        message=message,
        check_fragment=not message,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def _first_values(params: Sequence[tuple[str, str]]) -> Params:
    # The first occurrence wins, as with the authorize link.
    values: Params = {}
    for key, value in params:
        values.setdefault(key, value)
    return values


class WeChatEmulator:
    """WeChat's web-page authorization servers, played locally, quirks included.

    One registered Official Account (`app_id` / `app_secret`) with its web authorization
    `domains`, and one Open-Platform website app (`website_app_id` / `website_app_secret`;
    None disables it) for QR-code login at ``/connect/qrconnect``, bound to the same Open
    Platform account: a persona's unionid is the same for both, its openids differ. Both apps
    share `domains`. Any other appid or secret gets WeChat's error answers. It answers loopback
    clients only unless `allow_remote` is true. `clock` is injectable so tests can expire
    codes and tokens instantly.
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
    ) -> None:
        if not app_id or not app_secret:
            raise ValueError("app_id and app_secret must be non-empty strings")
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
        self.website_app_id = website_app_id
        # appid -> AppSecret, for every app the token APIs answer.
        self._secrets = {app_id: app_secret}
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
        self._calls_lock = threading.Lock()
        self.calls: list[RecordedCall] = []
        # The Official Account's followers and non-followers, by their openid for it.
        self._by_openid = {p.openid_for(app_id): p for p in personas}
        self._apis = {
            "/sns/oauth2/access_token": _Endpoint(
                "access_token", self._handle_access_token, "GET", API_CONTENT_TYPE, True
            ),
            "/sns/oauth2/refresh_token": _Endpoint(
                "refresh_token", self._handle_refresh_token, "GET", API_CONTENT_TYPE, True
            ),
            "/sns/userinfo": _Endpoint(
                "userinfo", self._handle_userinfo, "GET", USERINFO_CONTENT_TYPE, True
            ),
            "/sns/auth": _Endpoint("auth", self._handle_auth, "GET", API_CONTENT_TYPE, True),
            "/cgi-bin/stable_token": _Endpoint(
                "stable_token", self._handle_stable_token, "POST", CGI_CONTENT_TYPE
            ),
            "/cgi-bin/token": _Endpoint("token", self._handle_token, "GET", CGI_CONTENT_TYPE),
            "/cgi-bin/ticket/getticket": _Endpoint(
                "getticket", self._handle_getticket, "GET", CGI_CONTENT_TYPE
            ),
            "/cgi-bin/user/info": _Endpoint(
                "user_info", self._handle_user_info, "GET", CGI_CONTENT_TYPE
            ),
        }
        self._router = Router(
            routes=[
                Route("/", self._index, methods=["GET"]),
                Route("/connect/oauth2/authorize", self._authorize, methods=["GET"]),
                Route("/connect/oauth2/authorize/confirm", self._confirm, methods=["POST"]),
                Route("/connect/qrconnect", self._qrconnect, methods=["GET"]),
                Route("/connect/qrconnect/confirm", self._qrconnect_confirm, methods=["POST"]),
                Route(JSSDK_PATH, self._jssdk, methods=["GET"]),
                Route(VERIFY_PATH, self._jsapi_verify, methods=["GET"]),
                Route(_FAULTS_PATH, self._faults_api, methods=["POST", "DELETE"]),
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
        if scope["type"] == "http" and _route_path(scope).startswith(_API_PREFIXES):
            answer = await self._api(Request(scope, receive))
            await answer(scope, receive, send)
            return
        await self._router(scope, receive, send)

    # -- public helpers -------------------------------------------------------------------

    def inject(self, endpoint: str = "*", **fault: Unpack[FaultOptions]) -> None:
        """Disturb the next `times` (default 1) API calls to `endpoint` (times=None: until
        `clear_faults`).

        `endpoint` is "access_token", "refresh_token", "userinfo", "auth", "stable_token",
        "token", "getticket", "user_info" or "*". A fault first sleeps `latency` seconds, then
        answers `http_status` with an HTML body, else WeChat's error JSON for `errcode`, else
        `body` raw as text/plain; with only a latency the call then proceeds normally. With
        `probability` < 1 each call is disturbed at random. Several matching faults all add
        their latency; the oldest with an answer answers.
        """
        self._faults.add(endpoint, **fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def call_count(self, path: str) -> int:
        """How many calls to WeChat's API `path` (e.g. "/cgi-bin/stable_token") were received,
        among the recorded `calls`."""
        with self._calls_lock:
            return sum(1 for call in self.calls if call.path == path)

    def jsapi_ticket(self) -> str | None:
        """The Official Account's current jsapi_ticket (what a page's wx.config signature must
        use), or None while none was fetched or it expired."""
        return self._credentials.current_ticket(self.app_id)

    def invalidate_account_tokens(self) -> None:
        """Make every server access_token of the Official Account invalid (40001), as resetting
        the AppSecret does; the next stable_token call issues a new one. (Expiry comes with
        the clock: a token lives 7200 s.)"""
        self._credentials.invalidate_tokens(self.app_id)

    def issue_code(self, persona: str | None = None, scope: str = "snsapi_base") -> str:
        """Mint a code as if `persona` (default: the default persona) had authorized `scope`.

        snsapi_base and snsapi_userinfo codes are the Official Account's; an snsapi_login code
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
                raise ValueError(_SNAPSHOT_CANNOT_SCAN.format(key=key))
            return self._grants.issue_code(self.website_app_id, key, scope)
        if scope not in SCOPES:
            raise ValueError(
                f"scope must be one of {', '.join((*SCOPES, QRCONNECT_SCOPE))}; got {scope!r}"
            )
        return self._grants.issue_code(self.app_id, key, scope)

    # -- browser pages --------------------------------------------------------------------

    async def _index(self, request: Request) -> StarletteResponse:
        root_path = request.scope.get("root_path", "")
        # From the Host header: only for display, nothing is redirected there. Not
        # request.base_url: that is the outermost app's root, not this mount's.
        base_url = f"{request.url.scheme}://{request.url.netloc}{root_path}"
        return HTMLResponse(
            index_page(
                root_path=root_path,
                base_url=base_url,
                app_id=self.app_id,
                domains=self.domains,
                personas=self.personas,
                default_persona=self.default_persona,
                auto_approve=self.auto_approve,
                website_app_id=self.website_app_id,
            )
        )

    def _parse(self, raw_query: str) -> AuthorizeRequest | AuthorizeRejection:
        return parse_authorize_query(
            raw_query,
            app_id=self.app_id,
            domains=self.domains,
            website_app_id=self.website_app_id,
        )

    def _login(
        self, auth: AuthorizeRequest, persona: Persona, *, remember: str | None = None
    ) -> StarletteResponse:
        # The code belongs to the app the link named: the Official Account or the website app.
        code = self._grants.issue_code(auth.app_id, persona.key, auth.scope)
        # WeChat appends state even when it is empty.
        url = callback_url(auth.redirect_uri, [("code", code), ("state", auth.state)])
        response = RedirectResponse(url, status_code=302)
        if remember is not None:
            response.set_cookie(
                PERSONA_COOKIE,
                persona.key,
                max_age=_PERSONA_COOKIE_MAX_AGE,
                path=remember,
                httponly=True,
                samesite="lax",
            )
        return response

    def _cookie_persona(self, request: Request) -> Persona | None:
        return self._personas.get(request.cookies.get(PERSONA_COOKIE, ""))

    def _consent(
        self, request: Request, auth: AuthorizeRequest, *, message: str = "", status: int = 200
    ) -> StarletteResponse:
        chosen = self._cookie_persona(request)
        selected = chosen.key if chosen else self.default_persona
        return _decision(
            CONSENT,
            "/connect/oauth2/authorize",
            request,
            auth,
            self.personas,
            selected,
            message,
            status,
        )

    async def _authorize(self, request: Request) -> StarletteResponse:
        auth = self._parse(request.scope["query_string"].decode("latin-1"))
        if isinstance(auth, AuthorizeRejection):
            # WeChat shows its errors on its own page, with HTTP 200.
            return HTMLResponse(error_page(auth))
        if self.auto_approve:
            # Scripts want predictability: always the default persona, cookie or not.
            return self._login(auth, self._personas[self.default_persona])
        chosen = self._cookie_persona(request)
        if auth.scope == "snsapi_base" and chosen is not None and not auth.force_popup:
            return self._login(auth, chosen)  # snsapi_base is silent once WeChat knows you
        return self._consent(request, auth)

    async def _decide(
        self,
        request: Request,
        parse: Callable[[str], AuthorizeRequest | AuthorizeRejection],
        show: Callable[..., StarletteResponse],
        buttons: str,
        persona_for: Callable[[str], Persona | str],
        remember: str | None = None,
    ) -> StarletteResponse:
        """A consent or scan form submitted: refuse, ask again (`buttons` names the choice)
        or log in as the persona (`persona_for` answers it or what to say instead)."""
        form = await _form(request)
        # Everything is checked again: the form is as untrusted as the link.
        auth = parse(form.get("query", ""))
        if isinstance(auth, AuthorizeRejection):
            return HTMLResponse(error_page(auth))
        decision = form.get("decision", "")
        if decision == "refuse":
            return _refusal(auth)
        if decision != "allow":
            return show(request, auth, message=f"Choose {buttons}.", status=400)
        persona = persona_for(form.get("persona", ""))
        if isinstance(persona, str):
            return show(request, auth, message=persona, status=400)
        return self._login(auth, persona, remember=remember)

    async def _confirm(self, request: Request) -> StarletteResponse:
        def persona_for(key: str) -> Persona | str:
            return self._personas.get(key) or "Choose a persona."

        cookie_path = request.scope.get("root_path", "") + "/connect/oauth2"
        return await self._decide(
            request,
            self._parse,
            self._consent,
            "允许 / Allow or 拒绝 / Refuse",
            persona_for,
            remember=cookie_path,
        )

    # -- website QR-code login -----------------------------------------------------------

    def _parse_qrconnect(self, raw_query: str) -> AuthorizeRequest | AuthorizeRejection:
        return parse_qrconnect_query(
            raw_query,
            website_app_id=self.website_app_id,
            app_id=self.app_id,
            domains=self.domains,
        )

    def _scan_page(
        self, request: Request, auth: AuthorizeRequest, *, message: str = "", status: int = 200
    ) -> StarletteResponse:
        if not self._scanners:
            detail = (
                "Every persona is a snapshot-mode user; those exist only inside WeChat's in-app "
                "browser and cannot scan a website's QR code. Add a persona that is not one."
            )
            return HTMLResponse(error_page(_no_scanner(detail)))
        if self.default_persona in self._scanners:
            selected = self.default_persona
        else:
            selected = next(iter(self._scanners))
        scanners = tuple(self._scanners.values())
        return _decision(
            QRCONNECT, "/connect/qrconnect", request, auth, scanners, selected, message, status
        )

    async def _qrconnect(self, request: Request) -> StarletteResponse:
        auth = self._parse_qrconnect(request.scope["query_string"].decode("latin-1"))
        if isinstance(auth, AuthorizeRejection):
            return HTMLResponse(error_page(auth))
        if self.auto_approve:
            persona = self._scanners.get(self.default_persona)
            if persona is None:
                detail = (
                    _SNAPSHOT_CANNOT_SCAN.format(key=self.default_persona)
                    + " Auto-approve scans as the default persona: pick one that is not a "
                    "snapshot user (default_persona=..., CLI --persona)."
                )
                return HTMLResponse(error_page(_no_scanner(detail)))
            return self._login(auth, persona)
        # Every scan asks: the desktop browser and the phone share no "logged in" cookie.
        return self._scan_page(request, auth)

    async def _qrconnect_confirm(self, request: Request) -> StarletteResponse:
        def persona_for(key: str) -> Persona | str:
            if key in self._scanners:
                return self._scanners[key]
            if key in self._personas:
                return _SNAPSHOT_CANNOT_SCAN.format(key=key)
            return "Choose a persona."

        return await self._decide(
            request,
            self._parse_qrconnect,
            self._scan_page,
            "扫码并确认 / Scan and confirm or 取消登录 / Cancel",
            persona_for,
        )

    # -- the APIs -------------------------------------------------------------------------

    def _error(self, errcode: int) -> dict[str, JSONValue]:
        return error_payload(errcode, self._clock())

    def _record(self, call: RecordedCall) -> None:
        with self._calls_lock:
            self.calls.append(call)
            # Trim in chunks so appending stays cheap while the list stays bounded.
            if len(self.calls) > MAX_RECORDED_CALLS + MAX_RECORDED_CALLS // 10:
                del self.calls[: len(self.calls) - MAX_RECORDED_CALLS]

    async def _params(self, request: Request, endpoint: _Endpoint) -> tuple[tuple[str, str], ...]:
        query = parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if endpoint.method == "POST":
            return await _json_fields(request)
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", "replace")
            return (*query, *parse_qsl(body, keep_blank_values=True))
        return tuple(query)

    def _answer(self, payload: dict[str, JSONValue], content_type: str) -> StarletteResponse:
        # Always HTTP 200, errors included; the content type is set by hand because Starlette
        # would add a charset to text/plain, and WeChat sends none.
        return StarletteResponse(wechat_json(payload), headers={"content-type": content_type})

    async def _api(self, request: Request) -> StarletteResponse:
        path = _route_path(request.scope)
        endpoint = self._apis.get(path)
        content_type = CGI_CONTENT_TYPE if endpoint is None else endpoint.content_type
        if request.method == "HEAD":
            # Headers only, and nothing spent: a HEAD must not use up a code.
            return StarletteResponse(headers={"content-type": content_type})
        if endpoint is None:
            self._record(RecordedCall(path, ()))
            return self._answer(self._error(40066), content_type)
        allowed = ("GET", "POST") if endpoint.form_posts else (endpoint.method,)
        if request.method not in allowed:
            self._record(RecordedCall(path, ()))
            errcode = 43002 if endpoint.method == "POST" else 43001
            return self._answer(self._error(errcode), content_type)
        try:
            pairs = await self._params(request, endpoint)
        except GrantError as exc:
            self._record(RecordedCall(path, ()))
            return self._answer(self._error(exc.errcode), content_type)
        self._record(RecordedCall(path, pairs))
        fault = self._faults.draw(endpoint.name)
        if fault is not None:
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.http_status is not None:
                return HTMLResponse(fault_page(fault.http_status), status_code=fault.http_status)
            if fault.errcode is not None:
                return self._answer(self._error(fault.errcode), content_type)
            if fault.body is not None:
                return StarletteResponse(fault.body, headers={"content-type": API_CONTENT_TYPE})
        try:
            payload = endpoint.handler(_first_values(pairs))
        except GrantError as exc:
            payload = self._error(exc.errcode)
        return self._answer(payload, content_type)

    def _check_app(self, params: Params) -> str:
        # Either app: the Official Account or the website app (same API, same rules).
        app_id = params.get("appid", "")
        if not app_id:
            raise GrantError(41002)
        if app_id not in self._secrets:
            raise GrantError(40013)
        return app_id

    @staticmethod
    def _token_payload(
        access_token: str, refresh_token: str, openid: str, scope: str
    ) -> dict[str, JSONValue]:
        return {
            "access_token": access_token,
            "expires_in": int(ACCESS_TOKEN_TTL),
            "refresh_token": refresh_token,
            "openid": openid,
            "scope": scope,
        }

    def _check_secret(self, app_id: str, params: Params) -> None:
        secret = params.get("secret", "")
        if not secret:
            raise GrantError(41004)
        expected = self._secrets[app_id]
        if not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
            raise GrantError(40125)  # what WeChat answers a wrong AppSecret today

    def _check_account(self, params: Params) -> str:
        # The account's own credentials: the Official Account only, never the website app.
        if params.get("grant_type") != "client_credential":
            raise GrantError(40002)
        app_id = params.get("appid", "")
        if not app_id:
            raise GrantError(41002)
        if app_id != self.app_id:
            raise GrantError(40013)
        self._check_secret(app_id, params)
        return app_id

    def _handle_stable_token(self, params: Params) -> dict[str, JSONValue]:
        app_id = self._check_account(params)
        force_refresh = params.get("force_refresh", "false")
        if force_refresh not in ("true", "false"):
            raise GrantError(40097)
        token, expires_in = self._credentials.stable_token(app_id, force_refresh == "true")
        return {"access_token": token, "expires_in": expires_in}

    def _handle_token(self, params: Params) -> dict[str, JSONValue]:
        token, expires_in = self._credentials.legacy_token(self._check_account(params))
        return {"access_token": token, "expires_in": expires_in}

    def _account_app(self, params: Params) -> str:
        access_token = params.get("access_token", "")
        if not access_token:
            raise GrantError(41001)
        return self._credentials.app_of(access_token)

    def _handle_getticket(self, params: Params) -> dict[str, JSONValue]:
        app_id = self._account_app(params)
        if params.get("type") != "jsapi":
            raise GrantError(40097)
        ticket, expires_in = self._credentials.ticket(app_id)
        return {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in}

    def _handle_user_info(self, params: Params) -> dict[str, JSONValue]:
        self._account_app(params)
        openid = params.get("openid", "")
        if not openid:
            raise GrantError(41009)
        persona = self._by_openid.get(openid)
        if persona is None:
            raise GrantError(40003)
        if not persona.follows:
            return {"subscribe": 0, "openid": openid}
        # Since December 2021 nickname and avatar are no longer part of this answer.
        payload: dict[str, JSONValue] = {
            "subscribe": 1,
            "openid": openid,
            "language": params.get("lang") or "zh_CN",
            "subscribe_time": 1_600_000_000,
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_SEARCH",
            "qr_scene": 0,
            "qr_scene_str": "",
        }
        if persona.unionid is not None:
            payload["unionid"] = persona.unionid
        return payload

    def _handle_access_token(self, params: Params) -> dict[str, JSONValue]:
        app_id = self._check_app(params)
        self._check_secret(app_id, params)
        if params.get("grant_type") != "authorization_code":
            raise GrantError(40002)
        code = params.get("code", "")
        if not code:
            raise GrantError(41008)
        grant = self._grants.redeem_code(app_id, code)
        persona = self._personas[grant.persona_key]
        openid = persona.openid_for(app_id)
        access_token, access = self._grants.issue_tokens(app_id, persona.key, openid, grant.scope)
        payload = self._token_payload(access_token, access.refresh_token, openid, grant.scope)
        if persona.snapshot:
            payload["is_snapshotuser"] = 1
        # The same unionid whichever app asks: both belong to one Open Platform account.
        if grant.scope in _USERINFO_SCOPES and persona.unionid is not None:
            payload["unionid"] = persona.unionid
        return payload

    def _handle_refresh_token(self, params: Params) -> dict[str, JSONValue]:
        app_id = self._check_app(params)
        if params.get("grant_type") != "refresh_token":
            raise GrantError(40002)
        refresh_token = params.get("refresh_token", "")
        if not refresh_token:
            raise GrantError(41003)
        access_token, access = self._grants.refresh(app_id, refresh_token)
        return self._token_payload(access_token, refresh_token, access.openid, access.scope)

    def _checked_token(self, params: Params) -> tuple[Persona, AccessGrant]:
        access_token = params.get("access_token", "")
        if not access_token:
            raise GrantError(41001)
        openid = params.get("openid", "")
        if not openid:
            raise GrantError(41009)
        grant = self._grants.access_grant(access_token)
        if not hmac.compare_digest(openid.encode("utf-8"), grant.openid.encode("utf-8")):
            raise GrantError(40003)
        return self._personas[grant.persona_key], grant

    def _handle_userinfo(self, params: Params) -> dict[str, JSONValue]:
        persona, grant = self._checked_token(params)
        if grant.scope not in _USERINFO_SCOPES:
            raise GrantError(48001)
        # `lang` (zh_CN, zh_TW, en) only translates the region names, and those are empty
        # for everyone since October 2021, so every lang, missing or unknown, gets the same
        # answer; WeChat itself falls back to zh_CN.
        payload: dict[str, JSONValue] = {
            "openid": grant.openid,  # the openid for the token's app
            "nickname": persona.nickname,
            "sex": persona.sex,
            "province": persona.province,
            "city": persona.city,
            "country": persona.country,
            "headimgurl": persona.headimgurl,
            "privilege": [],
        }
        if persona.unionid is not None:
            payload["unionid"] = persona.unionid
        return payload

    def _handle_auth(self, params: Params) -> dict[str, JSONValue]:
        self._checked_token(params)
        return {"errcode": 0, "errmsg": "ok"}

    # -- out-of-process control -----------------------------------------------------------

    async def _faults_api(self, request: Request) -> StarletteResponse:
        # Faults script the next logins' answers: only this origin's own scripts may set them,
        # never a page of another site the developer happens to visit.
        refusal = _cross_site(request)
        if refusal is not None:
            return JSONResponse({"ok": False, "error": refusal}, status_code=403)
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True, "active": 0})
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            error = (
                f"the body must be JSON, sent as Content-Type: application/json, not {media_type!r}"
            )
            return JSONResponse({"ok": False, "error": error}, status_code=415)
        try:
            kwargs = fault_kwargs_from_json(json.loads(await request.body()))
            self._faults.add(**kwargs)
        except (ValueError, TypeError) as exc:
            # json.JSONDecodeError is a ValueError too.
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "active": len(self._faults)})

    # -- the JS-SDK stand-in --------------------------------------------------------------

    async def _jssdk(self, request: Request) -> StarletteResponse:
        return StarletteResponse(
            JSSDK_SCRIPT,
            media_type="application/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    async def _jsapi_verify(self, request: Request) -> StarletteResponse:
        verdict = verify_config(
            _first_values(list(request.query_params.multi_items())),
            app_id=self.app_id,
            ticket=self.jsapi_ticket(),
        )
        # The page is on the site's origin, the script and this check on the emulator's: a
        # simple GET that any origin may read; it answers a verdict, never the ticket.
        return JSONResponse(verdict, headers={"Access-Control-Allow-Origin": "*"})


def _cross_site(request: Request) -> str | None:
    """Why a request comes from another site's page, or None when it does not."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return (
            f"cross-site request refused (Sec-Fetch-Site: {site}): the fault API answers "
            "scripts and pages of the emulator's own origin only"
        )
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        return (
            f"cross-site request refused (Origin: {origin}, not {own}): the fault API answers "
            "scripts and pages of the emulator's own origin only"
        )
    return None


async def _json_fields(request: Request) -> tuple[tuple[str, str], ...]:
    """A JSON object body's fields, values as JSON text (strings as they are): 47001 when it
    is not a JSON object, as WeChat answers."""
    try:
        data = json.loads((await request.body()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GrantError(47001) from None
    if not isinstance(data, dict):
        raise GrantError(47001)
    return tuple(
        (str(key), value if isinstance(value, str) else json.dumps(value))
        for key, value in data.items()
    )


_SNAPSHOT_CANNOT_SCAN = (
    "The persona {key!r} is a snapshot-mode user: those are virtual and exist only inside "
    "WeChat's in-app browser, so they cannot scan a website's QR code. Choose another persona."
)


def _no_scanner(detail: str) -> AuthorizeRejection:
    # An emulator-only page: real WeChat has no personas. A stable marker for tests.
    title = "快照用户不能扫码 / a snapshot-mode persona cannot scan a QR code"
    return AuthorizeRejection("snapshot-persona", title, detail)


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
