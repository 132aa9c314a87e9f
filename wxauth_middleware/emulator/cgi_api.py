"""The account's own credential APIs below /cgi-bin/: server access_tokens (stable and
legacy), jsapi_tickets, and a follower's user info."""

from __future__ import annotations

from .base import EmulatorState, Params
from .credentials import TICKET_TYPES
from .grants import GrantError
from .protocol import JSONValue

__all__ = ["CgiBinAPI"]


class CgiBinAPI(EmulatorState):
    """/cgi-bin/stable_token, /cgi-bin/token, /cgi-bin/ticket/getticket, /cgi-bin/user/info
    and /cgi-bin/clear_quota, for the Official Accounts only (never the website app)."""

    def _check_account(self, params: Params) -> str:
        # The account's own credentials: the Official Account only, never the website app.
        if params.get("grant_type") != "client_credential":
            raise GrantError(40002)
        app_id = params.get("appid", "")
        if not app_id:
            raise GrantError(41002)
        if app_id not in self.official_app_ids:
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
        kind = params.get("type", "")
        if kind not in TICKET_TYPES:
            raise GrantError(40097)
        ticket, expires_in = self._credentials.ticket(app_id, kind)
        return {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in}

    def _handle_clear_quota(self, params: Params) -> dict[str, JSONValue]:
        # WeChat's way back from 45009: the day's counts start again, ten times a month.
        token_app = self._account_app(params)
        app_id = params.get("appid", "")
        if not app_id:
            raise GrantError(41002)
        if app_id != token_app:
            raise GrantError(40013)
        if not self._credentials.may_clear_quota(app_id):
            raise GrantError(48006)
        self._quotas.clear()
        return {"errcode": 0, "errmsg": "ok"}

    def _handle_user_info(self, params: Params) -> dict[str, JSONValue]:
        app_id = self._account_app(params)
        openid = params.get("openid", "")
        if not openid:
            raise GrantError(41009)
        # An openid is one account's: another account's token does not know it.
        persona = self._by_openid.get((app_id, openid))
        if persona is None:
            raise GrantError(40003)
        if not persona.follows:
            return {"subscribe": 0, "openid": openid}
        # Since 2021-12-27 the profile fields come back empty for everyone: present, but
        # nothing to read (clients that index them must not break, nor rely on them).
        payload: dict[str, JSONValue] = {
            "subscribe": 1,
            "openid": openid,
            "nickname": "",
            "sex": 0,
            "language": params.get("lang") or "zh_CN",
            "city": "",
            "province": "",
            "country": "",
            "headimgurl": "",
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
