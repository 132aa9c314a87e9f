"""The emulator as an ASGI app: WeChat's authorize page, its website QR-code login page, and
the four user-token APIs."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
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
from .faults import FaultPlan, fault_kwargs_from_json
from .grants import ACCESS_TOKEN_TTL, AccessGrant, GrantError, GrantStore
from .pages import consent_page, error_page, fault_page, index_page, qrconnect_page
from .personas import DEFAULT_PERSONAS, Persona
from .protocol import API_CONTENT_TYPE, USERINFO_CONTENT_TYPE, JSONValue, error_payload, wechat_json

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


@dataclass(frozen=True)
class RecordedCall:
    """One API call as received: WeChat's path (without any mount prefix) and the query
    parameters in the order the client sent them."""

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
        self._faults = FaultPlan()
        self._calls_lock = threading.Lock()
        self.calls: list[RecordedCall] = []
        self._router = Router(
            routes=[
                Route("/", self._index, methods=["GET"]),
                Route("/connect/oauth2/authorize", self._authorize, methods=["GET"]),
                Route("/connect/oauth2/authorize/confirm", self._confirm, methods=["POST"]),
                Route("/connect/qrconnect", self._qrconnect, methods=["GET"]),
                Route("/connect/qrconnect/confirm", self._qrconnect_confirm, methods=["POST"]),
                Route("/sns/oauth2/access_token", self._access_token, methods=["GET"]),
                Route("/sns/oauth2/refresh_token", self._refresh_token, methods=["GET"]),
                Route("/sns/userinfo", self._userinfo, methods=["GET"]),
                Route("/sns/auth", self._auth, methods=["GET"]),
                Route("/_emulator/faults", self._faults_api, methods=["POST", "DELETE"]),
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
        await self._router(scope, receive, send)

    # -- public helpers -------------------------------------------------------------------

    def inject(
        self,
        endpoint: str = "*",
        *,
        latency: float = 0.0,
        errcode: int | None = None,
        http_status: int | None = None,
        body: bytes | None = None,
        times: int | None = 1,
        probability: float = 1.0,
    ) -> None:
        """Disturb the next `times` API calls to `endpoint` (None = until `clear_faults`).

        `endpoint` is "access_token", "refresh_token", "userinfo", "auth" or "*". A fault first
        sleeps `latency` seconds, then answers `http_status` with an HTML body, else WeChat's
        error JSON for `errcode`, else `body` raw as text/plain; with only a latency the call
        then proceeds normally. With `probability` < 1 each call is disturbed at random.
        Several matching faults all add their latency; the oldest with an answer answers.
        """
        self._faults.add(
            endpoint,
            latency=latency,
            errcode=errcode,
            http_status=http_status,
            body=body,
            times=times,
            probability=probability,
        )

    def clear_faults(self) -> None:
        self._faults.clear()

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
        root_path = request.scope.get("root_path", "")
        page = consent_page(
            auth,
            action=f"{root_path}/connect/oauth2/authorize/confirm",
            personas=self.personas,
            selected=chosen.key if chosen else self.default_persona,
            message=message,
            check_fragment=not message,
        )
        return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})

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

    async def _confirm(self, request: Request) -> StarletteResponse:
        form = await _form(request)
        # Everything is checked again: the form is as untrusted as the link.
        auth = self._parse(form.get("query", ""))
        if isinstance(auth, AuthorizeRejection):
            return HTMLResponse(error_page(auth))
        decision = form.get("decision", "")
        if decision == "refuse":
            return _refusal(auth)
        if decision != "allow":
            return self._consent(
                request, auth, message="Choose 允许 / Allow or 拒绝 / Refuse.", status=400
            )
        persona = self._personas.get(form.get("persona", ""))
        if persona is None:
            return self._consent(request, auth, message="Choose a persona.", status=400)
        cookie_path = request.scope.get("root_path", "") + "/connect/oauth2"
        return self._login(auth, persona, remember=cookie_path)

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
        root_path = request.scope.get("root_path", "")
        page = qrconnect_page(
            auth,
            action=f"{root_path}/connect/qrconnect/confirm",
            personas=tuple(self._scanners.values()),
            selected=selected,
            message=message,
            check_fragment=not message,
        )
        return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})

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
        form = await _form(request)
        auth = self._parse_qrconnect(form.get("query", ""))
        if isinstance(auth, AuthorizeRejection):
            return HTMLResponse(error_page(auth))
        decision = form.get("decision", "")
        if decision == "refuse":
            return _refusal(auth)
        if decision != "allow":
            return self._scan_page(
                request,
                auth,
                message="Choose 扫码并确认 / Scan and confirm or 取消登录 / Cancel.",
                status=400,
            )
        key = form.get("persona", "")
        persona = self._scanners.get(key)
        if persona is None:
            message = (
                _SNAPSHOT_CANNOT_SCAN.format(key=key)
                if key in self._personas
                else "Choose a persona."
            )
            return self._scan_page(request, auth, message=message, status=400)
        return self._login(auth, persona)

    # -- the APIs -------------------------------------------------------------------------

    def _error(self, errcode: int) -> dict[str, JSONValue]:
        return error_payload(errcode, self._clock())

    def _record(self, call: RecordedCall) -> None:
        with self._calls_lock:
            self.calls.append(call)
            # Trim in chunks so appending stays cheap while the list stays bounded.
            if len(self.calls) > MAX_RECORDED_CALLS + MAX_RECORDED_CALLS // 10:
                del self.calls[: len(self.calls) - MAX_RECORDED_CALLS]

    async def _api(
        self,
        request: Request,
        endpoint: str,
        path: str,
        handler: Callable[[Params], dict[str, JSONValue]],
        content_type: str = API_CONTENT_TYPE,
    ) -> StarletteResponse:
        pairs = tuple(
            parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        )
        self._record(RecordedCall(path, pairs))
        fault = self._faults.draw(endpoint)
        if fault is not None:
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.http_status is not None:
                return HTMLResponse(fault_page(fault.http_status), status_code=fault.http_status)
            if fault.errcode is not None:
                body = wechat_json(self._error(fault.errcode))
                return StarletteResponse(body, headers={"content-type": content_type})
            if fault.body is not None:
                return StarletteResponse(fault.body, headers={"content-type": API_CONTENT_TYPE})
        try:
            payload = handler(_first_values(pairs))
        except GrantError as exc:
            payload = self._error(exc.errcode)
        # Always HTTP 200, errors included; the content type is set by hand because Starlette
        # would add a charset to text/plain, and WeChat sends none.
        return StarletteResponse(wechat_json(payload), headers={"content-type": content_type})

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

    def _handle_access_token(self, params: Params) -> dict[str, JSONValue]:
        app_id = self._check_app(params)
        secret = params.get("secret", "")
        if not secret:
            raise GrantError(41004)
        expected = self._secrets[app_id]
        if not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
            raise GrantError(40001)
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

    async def _access_token(self, request: Request) -> StarletteResponse:
        return await self._api(
            request, "access_token", "/sns/oauth2/access_token", self._handle_access_token
        )

    async def _refresh_token(self, request: Request) -> StarletteResponse:
        return await self._api(
            request, "refresh_token", "/sns/oauth2/refresh_token", self._handle_refresh_token
        )

    async def _userinfo(self, request: Request) -> StarletteResponse:
        return await self._api(
            request,
            "userinfo",
            "/sns/userinfo",
            self._handle_userinfo,
            content_type=USERINFO_CONTENT_TYPE,
        )

    async def _auth(self, request: Request) -> StarletteResponse:
        return await self._api(request, "auth", "/sns/auth", self._handle_auth)

    # -- out-of-process control -----------------------------------------------------------

    async def _faults_api(self, request: Request) -> StarletteResponse:
        if request.method == "DELETE":
            self.clear_faults()
            return JSONResponse({"ok": True, "active": 0})
        try:
            kwargs = fault_kwargs_from_json(json.loads(await request.body()))
            self.inject(**kwargs)
        except (ValueError, TypeError) as exc:
            # json.JSONDecodeError is a ValueError too.
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "active": len(self._faults)})


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
