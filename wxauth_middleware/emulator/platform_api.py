"""The third-party platform's side of WeChat (`--platform`): the component APIs below
/cgi-bin/component/, the admin's consent page (/cgi-bin/componentloginpage), the users' code
exchange on an account's behalf (/sns/oauth2/component/...), and the pushes of encrypted
events to the platform's event URL: at start, every 10 minutes, after an authorization or a
revocation, and on `POST /_emulator/platform/push`."""

from __future__ import annotations

import asyncio
import contextlib
import html
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse
from starlette.types import Receive, Scope, Send

from .admin import cross_site
from .authorize import AuthorizeRejection, callback_url
from .base import Params
from .dispatch import Endpoint
from .grants import GrantError
from .pages import error_page, simple_page
from .platform_state import PUSH_INTERVAL, EmulatedPlatform
from .protocol import API_CONTENT_TYPE, CGI_CONTENT_TYPE, JSONValue
from .sns_api import SnsAPI

__all__ = ["CONSENT_PATH", "PUSH_PATH", "UNAUTHORIZE_PATH", "PlatformAPI"]

CONSENT_PATH = "/cgi-bin/componentloginpage"
PUSH_PATH = "/_emulator/platform/push"
UNAUTHORIZE_PATH = "/_emulator/platform/unauthorize"
# How often the first push is tried again while the platform's server is not up yet.
_FIRST_PUSH_RETRY = 1.0
_FIRST_PUSH_TRIES = 60


def _reject(marker: str, detail: str) -> AuthorizeRejection:
    return AuthorizeRejection(marker, f"授权失败 / Authorization failed ({marker})", detail)


class PlatformAPI(SnsAPI):
    """The platform's APIs and pages, over `self.platform` (its code exchange is the
    /sns/ one's, on an account's behalf)."""

    _tasks: set[asyncio.Task[Any]]

    def _platform_of(self, params: Params) -> EmulatedPlatform:
        platform = self.platform
        if platform is None or params.get("component_appid") != platform.component_appid:
            raise GrantError(40013)
        return platform

    def _checked(self, params: Params) -> EmulatedPlatform:
        platform = self._platform_of(params)
        platform.check_token(params.get("component_access_token", ""), self._credentials.app_of)
        return platform

    # -- /cgi-bin/component/ ---------------------------------------------------------------

    def _handle_component_token(self, params: Params) -> dict[str, JSONValue]:
        platform = self._platform_of(params)
        token, expires_in = platform.component_token(
            params["component_appid"],
            params.get("component_appsecret", ""),
            params.get("component_verify_ticket", ""),
        )
        return {"component_access_token": token, "expires_in": expires_in}

    def _handle_preauthcode(self, params: Params) -> dict[str, JSONValue]:
        code, expires_in = self._checked(params).pre_auth_code()
        return {"pre_auth_code": code, "expires_in": expires_in}

    def _authorization(self, app_id: str, refresh_token: str) -> dict[str, JSONValue]:
        # An authorizer's access token is an account token like any other (getticket takes it).
        token, expires_in = self._credentials.legacy_token(app_id)
        return {
            "authorizer_appid": app_id,
            "authorizer_access_token": token,
            "expires_in": expires_in,
            "authorizer_refresh_token": refresh_token,
        }

    def _handle_query_auth(self, params: Params) -> dict[str, JSONValue]:
        platform = self._checked(params)
        app_id, refresh = platform.query_auth(params.get("authorization_code", ""))
        info = self._authorization(app_id, refresh)
        info["func_info"] = [{"funcscope_category": {"id": 1}}]
        return {"authorization_info": info}

    def _handle_authorizer_token(self, params: Params) -> dict[str, JSONValue]:
        platform = self._checked(params)
        app_id = params.get("authorizer_appid", "")
        if app_id not in self.official_app_ids:
            raise GrantError(40013)
        refresh = platform.refresh(app_id, params.get("authorizer_refresh_token", ""))
        answer = self._authorization(app_id, refresh)
        del answer["authorizer_appid"]
        return answer

    def _platform_apis(self) -> dict[str, Endpoint]:
        post, get = "POST", "GET"
        return {
            f"/cgi-bin/component/{name}": Endpoint(name, handler, post, CGI_CONTENT_TYPE)
            for name, handler in (
                ("api_component_token", self._handle_component_token),
                ("api_create_preauthcode", self._handle_preauthcode),
                ("api_query_auth", self._handle_query_auth),
                ("api_authorizer_token", self._handle_authorizer_token),
            )
        } | {
            "/sns/oauth2/component/access_token": Endpoint(
                "component_access_token", self._handle_component_code, get, API_CONTENT_TYPE
            ),
            "/sns/oauth2/component/refresh_token": Endpoint(
                "component_refresh_token", self._handle_component_refresh, get, API_CONTENT_TYPE
            ),
        }

    # -- /sns/oauth2/component/ ------------------------------------------------------------

    def _authorizer(self, params: Params, platform: EmulatedPlatform) -> str:
        app_id = params.get("appid", "")
        if not app_id:
            raise GrantError(41002)
        if app_id not in self.official_app_ids:
            raise GrantError(40013)
        if not platform.is_authorizer(app_id):
            raise GrantError(61003)
        return app_id

    def _handle_component_code(self, params: Params) -> dict[str, JSONValue]:
        platform = self._checked(params)
        app_id = self._authorizer(params, platform)
        if params.get("grant_type") != "authorization_code":
            raise GrantError(40002)
        code = params.get("code", "")
        if not code:
            raise GrantError(41008)
        if not platform.is_user_code(code):
            raise GrantError(40029)  # not a code of a login on the account's behalf
        return self._code_tokens(app_id, code)

    def _handle_component_refresh(self, params: Params) -> dict[str, JSONValue]:
        platform = self._checked(params)
        app_id = self._authorizer(params, platform)
        if params.get("grant_type") != "refresh_token":
            raise GrantError(40002)
        return self._refreshed(app_id, params)

    # -- the admin's consent page ----------------------------------------------------------

    def _consent_rejection(self, query: dict[str, str]) -> AuthorizeRejection | None:
        platform = self.platform
        if platform is None or query.get("component_appid") != platform.component_appid:
            return _reject("40013", "component_appid is not this emulator's platform.")
        uri = urlsplit(query.get("redirect_uri", ""))
        if uri.scheme not in ("http", "https") or not uri.hostname:
            return _reject("redirect-uri-invalid", "redirect_uri must be an http(s) URL.")
        if not query.get("pre_auth_code"):
            return _reject("pre-auth-code-missing", "pre_auth_code is missing.")
        return None

    async def _component_login_page(self, request: Request) -> StarletteResponse:
        query = dict(parse_qsl(request.url.query))
        rejection = self._consent_rejection(query)
        if rejection is not None:
            return HTMLResponse(error_page(rejection))
        if self.auto_approve:
            return await self._approve(query, self.app_id)
        rows = "".join(
            f'<label class="persona"><input type="radio" name="authorizer" value="{a}"'
            f'{" checked" if a == self.app_id else ""}><span class="who">公众号 / Official '
            f"Account <code>{a}</code></span></label>"
            for a in self.official_app_ids
        )
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
        )
        body = (
            '<div class="card"><h1>授权第三方平台 / Authorize a third-party platform</h1>'
            f'<p>第三方平台 / Platform: <code id="component-appid">'
            f"{html.escape(query['component_appid'])}</code></p>"
            "<p>公众号管理员扫码授权后，平台将代公众号实现网页授权等业务。"
            " / Once an account's admin authorizes it, the platform logs its users in on its "
            f'behalf.</p><form method="post" action="{CONSENT_PATH}/confirm">{hidden}'
            f"<fieldset><legend>授权的公众号 / Authorizing account</legend>{rows}</fieldset>"
            '<div class="buttons"><button type="submit" class="secondary" id="refuse" '
            'name="decision" value="refuse">拒绝 / Refuse</button><button type="submit" '
            'class="primary" id="allow" name="decision" value="allow">授权 / Authorize'
            "</button></div></form></div>"
        )
        return HTMLResponse(simple_page("授权第三方平台 / Authorize a platform", body))

    async def _component_login_confirm(self, request: Request) -> StarletteResponse:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        rejection = self._consent_rejection(form)
        if rejection is not None:
            return HTMLResponse(error_page(rejection))
        if form.get("decision") != "allow":
            body = (
                '<div class="card"><h1 id="refused">已拒绝授权 / Authorization refused</h1></div>'
            )
            return HTMLResponse(simple_page("已拒绝 / Refused", body))
        app_id = form.get("authorizer", "")
        if app_id not in self.official_app_ids:
            return HTMLResponse(error_page(_reject("40013", "Choose one of the accounts.")))
        return await self._approve(form, app_id)

    async def _approve(self, query: dict[str, str], app_id: str) -> StarletteResponse:
        platform = self.platform
        assert platform is not None
        if not platform.spend_pre_auth_code(query["pre_auth_code"]):
            return HTMLResponse(
                error_page(_reject("61010", "pre_auth_code is unknown, used or expired."))
            )
        code = platform.authorize(app_id)
        self._spawn(platform.push("authorized", **_authorized_fields(app_id, code)))
        url = callback_url(query["redirect_uri"], [("auth_code", code), ("expires_in", "3600")])
        return RedirectResponse(url, status_code=302)

    # -- pushes ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_route(self, request: Request) -> StarletteResponse:
        refusal = cross_site(request)
        if refusal is not None or self.platform is None:
            error = refusal or "this emulator plays no platform (--platform)"
            return JSONResponse({"ok": False, "error": error}, status_code=403)
        status = await self.platform.push("component_verify_ticket")
        return JSONResponse({"ok": status == 200, "status": status})

    async def _unauthorize_route(self, request: Request) -> StarletteResponse:
        refusal = cross_site(request)
        app_id = request.query_params.get("appid", "")
        if refusal is not None or self.platform is None or app_id not in self.official_app_ids:
            error = refusal or "needs --platform and ?appid= of one of the accounts"
            return JSONResponse({"ok": False, "error": error}, status_code=400)
        self.platform.revoke(app_id)
        status = await self.platform.push("unauthorized", AuthorizerAppid=app_id)
        return JSONResponse({"ok": status == 200, "status": status})

    async def _pushing(self) -> None:
        """A ticket at start (tried until the platform's server answers), then every 10
        minutes, as WeChat does."""
        platform = self.platform
        assert platform is not None
        for _ in range(_FIRST_PUSH_TRIES):
            if await platform.push("component_verify_ticket") is not None:
                break
            await asyncio.sleep(_FIRST_PUSH_RETRY)
        while True:
            await asyncio.sleep(PUSH_INTERVAL)
            await platform.push("component_verify_ticket")

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The server's lifespan: the pushes run from its startup to its shutdown."""
        pushing: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.platform is not None and self.platform.events_url is not None:
                    pushing = asyncio.ensure_future(self._pushing())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in (pushing, *self._tasks):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                await send({"type": "lifespan.shutdown.complete"})
                return


def _authorized_fields(app_id: str, code: str) -> dict[str, str]:
    return {
        "AuthorizerAppid": app_id,
        "AuthorizationCode": code,
        "AuthorizationCodeExpiredTime": "3600",
        "PreAuthCode": "",
    }
