"""WeCom's login URLs, with their parameters in the order WeCom documents."""

from __future__ import annotations

from urllib.parse import quote

from ..scopes import WECOM_SSO_SCOPE
from .app import WeComApp

__all__ = ["wecom_login_url", "wecom_scope"]


def wecom_scope(scope: str) -> str:
    """WeCom's scope for a login of `scope` (WeChat's words, as pages and rules say them):
    a page that wants the profile asks for snsapi_privateinfo."""
    return "snsapi_privateinfo" if scope == "snsapi_userinfo" else "snsapi_base"


def wecom_login_url(app: WeComApp, redirect_uri: str, scope: str, state: str) -> str:
    """In WeCom's browser: the authorize link (appid, redirect_uri, response_type, scope,
    state, agentid, then #wechat_redirect). For the desktop login (`WECOM_SSO_SCOPE`):
    wwlogin/sso/login (login_type=CorpApp, appid, agentid, redirect_uri, state)."""
    corp, agent, back = quote(app.corp_id, safe=""), app.agent_id, quote(redirect_uri, safe="")
    if scope == WECOM_SSO_SCOPE:
        return (
            f"{app.sso_url}?login_type=CorpApp&appid={corp}&agentid={agent}"
            f"&redirect_uri={back}&state={state}"
        )
    return (
        f"{app.authorize_url}?appid={corp}&redirect_uri={back}&response_type=code"
        f"&scope={wecom_scope(scope)}&state={state}&agentid={agent}#wechat_redirect"
    )
