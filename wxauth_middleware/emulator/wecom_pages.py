"""WeCom's own pages, as the emulator's corp shows them: the in-app authorize link (a persona
to browse as, and WeCom's consent for snsapi_privateinfo) and the desktop login
(wwlogin/sso/login: a QR code stand-in, confirmed as a member)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse

from .authorize import callback_url
from .base import EmulatorState, first_values
from .pages import _e, _layout
from .wecom_state import WeComCorp, WeComPersona

__all__ = ["WECOM_PERSONA_COOKIE", "WeComPages"]

#: Which persona is "logged in to this WeCom" (scoped to the authorize paths).
WECOM_PERSONA_COOKIE = "wxemu_wecom_persona"
_IN_APP_ORDER = ("appid", "redirect_uri", "response_type", "scope", "state", "agentid")
_SSO_ORDER = ("login_type", "appid", "agentid", "redirect_uri", "state")
_STATE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class _Link:
    agent_id: int
    redirect_uri: str
    scope: str  # "snsapi_base", "snsapi_privateinfo", or "sso"
    state: str
    query: str


class WeComPages(EmulatorState):
    """The WeCom links' pages and their confirmations."""

    wecom: WeComCorp | None

    def wecom_claims(self, request: Request) -> bool:
        """Whether an authorize link names the corp (rather than an Official Account)."""
        if self.wecom is None:
            return False
        params = dict(parse_qsl(request.scope["query_string"].decode("latin-1")))
        return params.get("appid") == self.wecom.corp_id

    def wecom_card(self, root_path: str, base_url: str) -> str:
        """The index page's card of the corp (none without one): its apps, trusted domain
        and IPs, APIs and people."""
        corp = self.wecom
        if corp is None:
            return ""
        apps = ", ".join(str(agent) for agent in corp.agents)
        trusted = ", ".join(corp.trusted_domains or ("127.0.0.1 and localhost, any port",))
        ips = ", ".join(str(n) for n in corp.trusted_ips) if corp.trusted_ips else "off"
        apis = "".join(
            f"<li><code>{_e(root_path + path)}</code></li>"
            for path in (
                "/cgi-bin/gettoken",
                "/cgi-bin/auth/getuserinfo",
                "/cgi-bin/auth/getuserdetail",
                "/cgi-bin/get_jsapi_ticket",
                "/cgi-bin/ticket/get",
                "/wwlogin/sso/login",
            )
        )
        people = "".join(
            f"<li><code>{_e(p.key)}</code> {_e(p.name)}</li>" for p in corp.personas.values()
        )
        return (
            '<div class="card" id="wecom"><h2>企业微信 · WeCom corp</h2>'
            f'<p>corp_id: <code id="wecom-corp-id">{_e(corp.corp_id)}</code>; agent_id: '
            f"<code>{_e(apps)}</code></p><p>可信域名 · trusted domain: <code>{_e(trusted)}"
            f"</code>; 企业可信IP · trusted IPs: <code>{_e(ips)}</code></p>"
            f"<p><code>sso_url={_e(base_url)}/wwlogin/sso/login</code></p>"
            f"<ul>{apis}</ul><ul>{people}</ul></div>"
        )

    def _wecom_link(self, query: str, sso: bool) -> _Link | str:
        """The link's parameters, checked as WeCom does; what is wrong with it otherwise."""
        corp = self.wecom
        assert corp is not None
        pairs = parse_qsl(query, keep_blank_values=True)
        names = tuple(name for name, _ in pairs)
        order = _SSO_ORDER if sso else _IN_APP_ORDER
        if names[: len(order)] != order:
            listed = ", ".join(order)
            return f"参数错误，须按此顺序 / the parameters must come in this order: {listed}"
        params = first_values(pairs)
        if params["appid"] != corp.corp_id:
            return "appid 不是本企业的 CorpID / appid is not the corp's id (40013)"
        if not params["agentid"].isdigit() or int(params["agentid"]) not in corp.agents:
            return "agentid 错误 / agentid is not one of the corp's apps (40056)"
        if sso:
            if params["login_type"] != "CorpApp":
                return "login_type 须为 CorpApp / login_type must be CorpApp"
            scope = "sso"
        else:
            if params["response_type"] != "code":
                return "response_type 须为 code / response_type must be code"
            scope = params["scope"]
            if scope not in ("snsapi_base", "snsapi_privateinfo"):
                return "scope 参数错误 / scope must be snsapi_base or snsapi_privateinfo"
        state = params["state"]
        if len(state) > 128 or not set(state) <= _STATE_CHARS:
            return "state 参数错误 / state must be a-zA-Z0-9, at most 128 characters"
        uri = params["redirect_uri"]
        if urlsplit(uri).scheme not in ("http", "https") or not urlsplit(uri).hostname:
            return "redirect_uri 参数错误 / redirect_uri must be an absolute http(s) URL"
        return _Link(int(params["agentid"]), uri, scope, state, query)

    def _wecom_back(self, link: _Link, persona: WeComPersona) -> StarletteResponse:
        assert self.wecom is not None
        code = self.wecom.issue_code(link.agent_id, persona.key, link.scope, link.redirect_uri)
        url = callback_url(link.redirect_uri, [("code", code), ("state", link.state)])
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(
            WECOM_PERSONA_COOKIE, persona.key, max_age=30 * 86400, httponly=True, samesite="lax"
        )
        return response

    async def _wecom_authorize(self, request: Request) -> StarletteResponse:
        return self._wecom_open(request, sso=False)

    async def _wecom_sso(self, request: Request) -> StarletteResponse:
        return self._wecom_open(request, sso=True)

    def _wecom_open(self, request: Request, *, sso: bool) -> StarletteResponse:
        corp = self.wecom
        if corp is None:
            return _error(
                "本模拟器没有企业微信企业 / this emulator plays no WeCom corp (--corp-id)"
            )
        link = self._wecom_link(request.scope["query_string"].decode("latin-1"), sso)
        if isinstance(link, str):
            return _error(link)
        known = corp.personas.get(request.cookies.get(WECOM_PERSONA_COOKIE, ""))
        first = next(iter(corp.personas.values()))
        if self.auto_approve:
            return self._wecom_back(link, first)
        if link.scope == "snsapi_base" and known is not None:
            return self._wecom_back(link, known)  # silent once WeCom knows you
        return self._wecom_page(request, link, (known or first).key)

    def _wecom_page(
        self, request: Request, link: _Link, selected: str, message: str = "", status: int = 200
    ) -> StarletteResponse:
        corp = self.wecom
        assert corp is not None
        people = [p for p in corp.personas.values() if link.scope != "sso" or p.userid is not None]
        rows = "".join(
            f'<label class="persona"><input type="radio" name="persona" '
            f'value="{_e(p.key)}" id="wecom-persona-{_e(p.key)}"'
            f"{' checked' if p.key == selected else ''} required> {_e(p.name)}</label>"
            for p in people
        )
        if link.scope == "sso":
            title = "企业微信登录 · Log in with WeCom"
            ask = (
                "<p>请使用企业微信扫描二维码登录。模拟器：选择扫码的成员，再按「确认登录」。</p>"
                "<p class=muted>Scan with WeCom to log in. Emulator: choose the member who "
                "scans, then press Confirm.</p>"
            )
        elif link.scope == "snsapi_privateinfo":
            title = "授权 · Authorize"
            ask = (
                f"<p>应用 {link.agent_id} 申请获取你的以下信息：头像、性别、手机、邮箱、企业邮箱、"
                "地址、二维码。</p><p class=muted>App "
                f"{link.agent_id} asks for your avatar, gender, mobile, e-mail, business e-mail, "
                "address and QR code.</p>"
            )
        else:
            title = "以企业微信身份进入 · Enter as"
            ask = (
                "<p>模拟器：选择以哪个身份使用企业微信（静默授权，真实企业微信不显示本页）。</p>"
                "<p class=muted>Emulator: choose who uses WeCom (snsapi_base is silent: real "
                "WeCom shows no page).</p>"
            )
        note = f'<p class="error" id="wecom-message">{_e(message)}</p>' if message else ""
        root = request.scope.get("root_path", "")
        action = (
            f"{root}/wwlogin/sso/login/confirm"
            if link.scope == "sso"
            else (f"{root}/connect/oauth2/authorize/wecom")
        )
        body = (
            f'<div class="card"><h1>{_e(title)}</h1>{ask}{note}'
            f'<form method="post" action="{_e(action)}">'
            f'<input type="hidden" name="query" value="{_e(link.query)}">{rows}'
            '<button name="decision" value="allow" id="wecom-allow">'
            f"{'确认登录 · Confirm' if link.scope == 'sso' else '同意 · Allow'}</button> "
            '<button name="decision" value="refuse" id="wecom-refuse">拒绝 · Refuse</button>'
            "</form></div>"
        )
        return HTMLResponse(
            _layout(title, body), status_code=status, headers={"Cache-Control": "no-store"}
        )

    async def _wecom_confirm(self, request: Request) -> StarletteResponse:
        return await self._wecom_decide(request, sso=False)

    async def _wecom_sso_confirm(self, request: Request) -> StarletteResponse:
        return await self._wecom_decide(request, sso=True)

    async def _wecom_decide(self, request: Request, *, sso: bool) -> StarletteResponse:
        corp = self.wecom
        if corp is None:
            return _error(
                "本模拟器没有企业微信企业 / this emulator plays no WeCom corp (--corp-id)"
            )
        body = (await request.body()).decode("utf-8", "replace")
        form = first_values(parse_qsl(body, keep_blank_values=True))
        # Everything is checked again: the form is as untrusted as the link.
        link = self._wecom_link(form.get("query", ""), sso)
        if isinstance(link, str):
            return _error(link)
        if form.get("decision") == "refuse":
            url = callback_url(link.redirect_uri, [("state", link.state)])
            return RedirectResponse(url, status_code=302)
        persona = corp.personas.get(form.get("persona", ""))
        if persona is None or form.get("decision") != "allow":
            first = next(iter(corp.personas))
            return self._wecom_page(request, link, first, "请选择身份 / Choose a persona.", 400)
        if sso and persona.userid is None:
            return self._wecom_page(
                request, link, persona.key, "非企业成员不能登录 / Only members log in here.", 403
            )
        return self._wecom_back(link, persona)


def _error(detail: str) -> StarletteResponse:
    body = (
        '<div class="card"><h1 class="error">企业微信授权错误 · WeCom authorization error</h1>'
        f'<p id="wecom-error">{_e(detail)}</p></div>'
    )
    # WeCom shows its errors on its own page, with HTTP 200.
    return HTMLResponse(_layout("企业微信授权错误 · WeCom authorization error", body))
