"""The user-token APIs below /sns/: the code exchange, refresh, userinfo and the token check."""

from __future__ import annotations

import hmac

from .authorize import QRCONNECT_SCOPE
from .base import EmulatorState, Params
from .grants import ACCESS_TOKEN_TTL, AccessGrant, GrantError
from .personas import Persona
from .protocol import JSONValue

__all__ = ["SnsAPI"]

#: Scopes whose tokens may call /sns/userinfo.
_USERINFO_SCOPES = ("snsapi_userinfo", QRCONNECT_SCOPE)


class SnsAPI(EmulatorState):
    """/sns/oauth2/access_token, /sns/oauth2/refresh_token, /sns/userinfo and /sns/auth, for
    the Official Account and the website app."""

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
        self._check_secret(app_id, params)
        if params.get("grant_type") != "authorization_code":
            raise GrantError(40002)
        code = params.get("code", "")
        if not code:
            raise GrantError(41008)
        return self._code_tokens(app_id, code)

    def _code_tokens(self, app_id: str, code: str) -> dict[str, JSONValue]:
        """The user's tokens for a code of `app_id` (spent by this)."""
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
        return self._refreshed(app_id, params)

    def _refreshed(self, app_id: str, params: Params) -> dict[str, JSONValue]:
        """A new access token for the query's refresh_token of `app_id`."""
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
