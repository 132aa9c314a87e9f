"""Out-of-process control of the emulator: the faults that script the next API answers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response as StarletteResponse

from .base import EmulatorState
from .faults import FaultOptions, fault_kwargs_from_json

if TYPE_CHECKING:  # Python 3.10's typing has no Unpack; annotations are never evaluated
    from typing_extensions import Unpack

__all__ = ["FAULTS_PATH", "FaultsAdmin", "cross_site"]

FAULTS_PATH = "/_emulator/faults"


class FaultsAdmin(EmulatorState):
    """`inject` / `clear_faults`, and the same over HTTP at /_emulator/faults."""

    def inject(self, endpoint: str = "*", **fault: Unpack[FaultOptions]) -> None:
        """Disturb the next `times` (default 1) API calls to `endpoint` (times=None: until
        `clear_faults`).

        `endpoint` is "access_token", "refresh_token", "userinfo", "auth", "stable_token",
        "token", "getticket", "user_info", WeCom's "wecom_gettoken", "wecom_getuserinfo",
        "wecom_getuserdetail", "wecom_jsapi_ticket", "wecom_agent_ticket", a platform's
        "api_component_token", "api_create_preauthcode", "api_query_auth",
        "api_authorizer_token", "component_access_token", "component_refresh_token", or "*".
        A fault first sleeps `latency` seconds, then answers `http_status` with an HTML body,
        else WeChat's error JSON for `errcode`, else `body` raw as text/plain; with only a
        latency the call then proceeds normally. With `probability` < 1 each call is disturbed
        at random. Several matching faults all add their latency; the oldest with an answer
        answers.
        """
        self._faults.add(endpoint, **fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    async def _faults_api(self, request: Request) -> StarletteResponse:
        # Faults script the next logins' answers: only this origin's own scripts may set them,
        # never a page of another site the developer happens to visit.
        refusal = cross_site(request)
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


def cross_site(request: Request) -> str | None:
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
