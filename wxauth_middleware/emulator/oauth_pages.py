"""WeChat's own pages: the authorize link's consent page and the website QR-code login page,
with their forms, and the emulator's index page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse

from .authorize import (
    AuthorizeRejection,
    AuthorizeRequest,
    callback_url,
    parse_authorize_query,
    parse_qrconnect_query,
)
from .base import Params, first_values
from .pages import CONSENT, QRCONNECT, DecisionForm, decision_page, error_page, index_page
from .personas import Persona
from .platform_state import on_behalf_code, on_behalf_rejection
from .wecom_pages import WeComPages

__all__ = ["PERSONA_COOKIE", "SNAPSHOT_CANNOT_SCAN", "OAuthPages"]

#: Remembers which persona is "logged in to this WeChat" (scoped to the authorize paths).
PERSONA_COOKIE = "wxemu_persona"
_PERSONA_COOKIE_MAX_AGE = 30 * 86400


async def _form(request: Request) -> Params:
    """A posted form's fields, the first value of each."""
    body = (await request.body()).decode("utf-8", "replace")
    return first_values(parse_qsl(body, keep_blank_values=True))


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
    fragment_required: bool = True,
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
        check_fragment=fragment_required and not message,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


SNAPSHOT_CANNOT_SCAN = (
    "The persona {key!r} is a snapshot-mode user: those are virtual and exist only inside "
    "WeChat's in-app browser, so they cannot scan a website's QR code. Choose another persona."
)


def no_scanner(detail: str) -> AuthorizeRejection:
    # An emulator-only page: real WeChat has no personas. A stable marker for tests.
    title = "快照用户不能扫码 / a snapshot-mode persona cannot scan a QR code"
    return AuthorizeRejection("snapshot-persona", title, detail)


class OAuthPages(WeComPages):
    """/connect/oauth2/authorize and /connect/qrconnect with their confirmations, and "/"."""

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
                go_live=self.go_live.describe(),
                more_app_ids=self.official_app_ids[1:],
                extra=self.wecom_card(root_path, base_url),
            )
        )

    def _parse(self, raw_query: str) -> AuthorizeRequest | AuthorizeRejection:
        auth = parse_authorize_query(
            raw_query,
            app_ids=self.official_app_ids,
            domains=self.domains,
            website_app_id=self.website_app_id,
        )
        if isinstance(auth, AuthorizeRejection):
            return auth
        return on_behalf_rejection(self.platform, auth) or auth

    def _login(
        self, auth: AuthorizeRequest, persona: Persona, *, remember: str | None = None
    ) -> StarletteResponse:
        # The code belongs to the app the link named: the Official Account or the website app.
        code = self._grants.issue_code(auth.app_id, persona.key, auth.scope)
        on_behalf_code(self.platform, auth, code)
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
        if self.wecom_claims(request):  # a WeCom app's link: the corp's id, an agentid
            return await self._wecom_authorize(request)
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
            app_ids=self.official_app_ids,
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
            return HTMLResponse(error_page(no_scanner(detail)))
        if self.default_persona in self._scanners:
            selected = self.default_persona
        else:
            selected = next(iter(self._scanners))
        scanners = tuple(self._scanners.values())
        # WeChat's own wxLogin.js opens the page in an iframe without #wechat_redirect.
        from_wx_login = ("login_type", "jssdk") in parse_qsl(auth.query)
        return _decision(
            QRCONNECT,
            "/connect/qrconnect",
            request,
            auth,
            scanners,
            selected,
            message,
            status,
            fragment_required=not from_wx_login,
        )

    async def _qrconnect(self, request: Request) -> StarletteResponse:
        auth = self._parse_qrconnect(request.scope["query_string"].decode("latin-1"))
        if isinstance(auth, AuthorizeRejection):
            return HTMLResponse(error_page(auth))
        if self.auto_approve:
            persona = self._scanners.get(self.default_persona)
            if persona is None:
                detail = (
                    SNAPSHOT_CANNOT_SCAN.format(key=self.default_persona)
                    + " Auto-approve scans as the default persona: pick one that is not a "
                    "snapshot user (default_persona=..., CLI --persona)."
                )
                return HTMLResponse(error_page(no_scanner(detail)))
            return self._login(auth, persona)
        # Every scan asks: the desktop browser and the phone share no "logged in" cookie.
        return self._scan_page(request, auth)

    async def _qrconnect_confirm(self, request: Request) -> StarletteResponse:
        def persona_for(key: str) -> Persona | str:
            if key in self._scanners:
                return self._scanners[key]
            if key in self._personas:
                return SNAPSHOT_CANNOT_SCAN.format(key=key)
            return "Choose a persona."

        return await self._decide(
            request,
            self._parse_qrconnect,
            self._scan_page,
            "扫码并确认 / Scan and confirm or 取消登录 / Cancel",
            persona_for,
        )
