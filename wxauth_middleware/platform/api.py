"""The component APIs of a third-party platform (wechat-protocol.md §14), as sans-I/O flows
in the manner of `wechat.py`."""

from __future__ import annotations

from dataclasses import dataclass

from ..effects import Flow
from ..errors import UpstreamResponseError
from ..wechat.api import CallPolicy, Issued, TokenGrant, api_call, grant_of, issued_of

__all__ = [
    "AuthorizerGrant",
    "authorizer_token",
    "code_grant",
    "code_refresh",
    "component_token",
    "pre_auth_code",
    "query_auth",
]


@dataclass(frozen=True, slots=True)
class AuthorizerGrant:
    """An authorizer's access token as WeChat issued it, and its refresh token ("" when the
    answer carried none)."""

    app_id: str
    access: Issued
    refresh_token: str

    def __repr__(self) -> str:
        return f"AuthorizerGrant(app_id={self.app_id!r}, ...)"


def component_token(
    api: str, component_appid: str, secret: str, ticket: str, policy: CallPolicy
) -> Flow[Issued]:
    endpoint = "cgi-bin/component/api_component_token"
    body = yield from api_call(
        api,
        endpoint,
        (),
        policy,
        json_body={
            "component_appid": component_appid,
            "component_appsecret": secret,
            "component_verify_ticket": ticket,
        },
    )
    return issued_of(body, "component_access_token", endpoint)


def pre_auth_code(api: str, component_appid: str, token: str, policy: CallPolicy) -> Flow[Issued]:
    endpoint = "cgi-bin/component/api_create_preauthcode"
    body = yield from api_call(
        api,
        endpoint,
        (("component_access_token", token),),
        policy,
        json_body={"component_appid": component_appid},
    )
    return issued_of(body, "pre_auth_code", endpoint)


def query_auth(
    api: str, component_appid: str, token: str, auth_code: str, policy: CallPolicy
) -> Flow[AuthorizerGrant]:
    endpoint = "cgi-bin/component/api_query_auth"
    body = yield from api_call(
        api,
        endpoint,
        (("component_access_token", token),),
        policy,
        json_body={"component_appid": component_appid, "authorization_code": auth_code},
    )
    info = body.get("authorization_info")
    if not isinstance(info, dict):
        raise UpstreamResponseError(f"WeChat {endpoint} answered without authorization_info")
    app_id = info.get("authorizer_appid")
    if not isinstance(app_id, str) or not app_id:
        raise UpstreamResponseError(f"WeChat {endpoint} answered without an authorizer_appid")
    return _authorizer(app_id, info, endpoint)


def authorizer_token(
    api: str,
    component_appid: str,
    token: str,
    app_id: str,
    refresh_token: str,
    policy: CallPolicy,
) -> Flow[AuthorizerGrant]:
    endpoint = "cgi-bin/component/api_authorizer_token"
    body = yield from api_call(
        api,
        endpoint,
        (("component_access_token", token),),
        policy,
        json_body={
            "component_appid": component_appid,
            "authorizer_appid": app_id,
            "authorizer_refresh_token": refresh_token,
        },
    )
    return _authorizer(app_id, body, endpoint)


def code_grant(
    api: str, app_id: str, code: str, component_appid: str, token: str, policy: CallPolicy
) -> Flow[TokenGrant]:
    """A login code of `app_id`'s user, exchanged on its behalf."""
    endpoint = "sns/oauth2/component/access_token"
    params = (
        ("appid", app_id),
        ("code", code),
        ("grant_type", "authorization_code"),
        ("component_appid", component_appid),
        ("component_access_token", token),
    )
    body = yield from api_call(api, endpoint, params, policy)
    return grant_of(body, endpoint)


def code_refresh(
    api: str, app_id: str, refresh_token: str, component_appid: str, token: str, policy: CallPolicy
) -> Flow[TokenGrant]:
    """A user's new access token (of `app_id`'s login on its behalf) for a kept refresh token."""
    endpoint = "sns/oauth2/component/refresh_token"
    params = (
        ("appid", app_id),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("component_appid", component_appid),
        ("component_access_token", token),
    )
    body = yield from api_call(api, endpoint, params, policy)
    return grant_of(body, endpoint)


def _authorizer(app_id: str, body: dict[str, object], endpoint: str) -> AuthorizerGrant:
    refresh = body.get("authorizer_refresh_token")
    if refresh is not None and not isinstance(refresh, str):
        raise UpstreamResponseError(f"WeChat {endpoint}: authorizer_refresh_token is not text")
    return AuthorizerGrant(
        app_id, issued_of(body, "authorizer_access_token", endpoint), refresh or ""
    )
