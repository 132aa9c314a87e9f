"""The JS-SDK stand-in's routes: the script, and the check its wx.config asks for."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response as StarletteResponse

from .base import EmulatorState, first_values
from .jssdk import JSSDK_SCRIPT, verify_config
from .wecom_api import wecom_js_verdict

__all__ = ["JSSDKRoutes"]


class JSSDKRoutes(EmulatorState):
    """The script at /open/js/jweixin-1.6.0.js and its signature check."""

    def jsapi_ticket(self, app_id: str | None = None) -> str | None:
        """An Official Account's (`app_id`, by default the first) current jsapi_ticket (what a
        page's wx.config signature must use), or None while none was fetched or it expired."""
        return self._credentials.current_ticket(app_id or self.app_id)

    async def _jssdk(self, request: Request) -> StarletteResponse:
        return StarletteResponse(
            JSSDK_SCRIPT,
            media_type="application/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    async def _jsapi_verify(self, request: Request) -> StarletteResponse:
        params = first_values(list(request.query_params.multi_items()))
        if self.wecom is not None and params.get("appId") == self.wecom.corp_id:
            # A WeCom page's wx.config: signed with the corp's ticket.
            verdict = wecom_js_verdict(
                self.wecom, params, ticket_key="corp", name="config", app_key="appId"
            )
            return JSONResponse(verdict, headers={"Access-Control-Allow-Origin": "*"})

        # The account the page's wx.config names, if it is one of this emulator's.
        app_id = params.get("appId", "")
        if app_id not in self.official_app_ids:
            app_id = self.app_id
        verdict = verify_config(
            params, app_id=app_id, ticket=self.jsapi_ticket(app_id), go_live=self.go_live
        )
        # The page is on the site's origin, the script and this check on the emulator's: a
        # simple GET that any origin may read; it answers a verdict, never the ticket.
        return JSONResponse(verdict, headers={"Access-Control-Allow-Origin": "*"})

    async def _agent_verify(self, request: Request) -> StarletteResponse:
        """A WeCom page's wx.agentConfig: signed with its app's agent_config ticket."""
        params = first_values(list(request.query_params.multi_items()))
        if self.wecom is None:
            verdict: dict[str, Any] = {
                "ok": False,
                "errMsg": "agentConfig:fail",
                "realAuthUrl": params.get("url", ""),
                "reason": "this emulator plays no WeCom corp (--corp-id)",
            }
        else:
            agent = params.get("agentid", "")
            verdict = wecom_js_verdict(
                self.wecom,
                params,
                ticket_key=f"agent:{agent}",
                name="agentConfig",
                app_key="corpid",
            )
        return JSONResponse(verdict, headers={"Access-Control-Allow-Origin": "*"})
