"""WeCom's server API as sans-I/O flows (like `wechat.py`): the app's token, a login code's
member (or non-member) and their details, the corp's and the app's JS-SDK tickets. The
drivers (`drivers.py`) run them; WeCom's errcodes become `WeComAPIError`s that say what to fix.
"""

from __future__ import annotations

import re
from typing import Any

from ..effects import Flow
from ..errors import UpstreamResponseError, WeChatAPIError
from ..wechat.api import CallPolicy, Issued, _opt_str, api_call, issued_of
from .app import WeComApp

__all__ = [
    "CONFIGURATION_ERRCODES",
    "WECOM_CONFIGURATION_ERROR",
    "WeComAPIError",
    "agent_ticket",
    "corp_ticket",
    "gettoken",
    "getuserdetail",
    "getuserinfo",
]

# errcode -> (HTTP status of the error page, what the site owner should check).
_ERRCODES: dict[int, tuple[int, str]] = {
    -1: (503, "WeCom is busy (errcode -1). Try again in a moment."),
    40001: (
        500,
        "WeCom rejected the secret (errcode 40001): set the WeComApp's secret to the app's "
        "Secret (应用管理 > the app > Secret).",
    ),
    40013: (
        500,
        "WeCom does not know this corp id (errcode 40013): set corp_id to the CorpID of "
        "我的企业 > 企业信息.",
    ),
    40014: (500, "WeCom rejected the app's access_token (errcode 40014), twice."),
    40029: (400, "The login code was invalid or already used (errcode 40029). Log in again."),
    40056: (
        500,
        "WeCom does not know this agent id (errcode 40056): set agent_id to the app's AgentId "
        "(应用管理 > the app).",
    ),
    40091: (
        500,
        "WeCom rejected the app's secret (errcode 40091, secret invalid): set the WeComApp's "
        "secret to this app's Secret (应用管理 > the app > Secret; each app has its own, and "
        "a reset one replaces the old).",
    ),
    42001: (500, "The app's access_token expired (errcode 42001), twice."),
    45009: (503, "WeCom's API frequency limit was reached (errcode 45009). Try again later."),
    50001: (
        500,
        "The login came back to a domain that is not the app's trusted domain (errcode "
        "50001): set the app's 可信域名 (网页授权及JS-SDK) to the site's host.",
    ),
    60011: (
        403,
        "This member is outside the app's visible range (errcode 60011): add them (or their "
        "department) to the app's 可见范围.",
    ),
    60020: (
        500,
        "WeCom refused this server's IP address (errcode 60020): add the servers' outbound "
        "addresses to the app's 企业可信IP (应用管理 > the app > 企业可信IP).",
    ),
    301002: (
        500,
        "WeCom says the token is another app's (errcode 301002): each app has its own secret "
        "and token; check that corp_id, agent_id and secret are one app's.",
    ),
}
# errcodes that a fix of the configuration (the app, WeCom's admin console) ends.
CONFIGURATION_ERRCODES = frozenset({40001, 40013, 40056, 40091, 50001, 60020, 301002})
WECOM_CONFIGURATION_ERROR = "wecom_configuration_error"
# The address WeCom names in 60020's errmsg ("... from ip: 1.2.3.4, ...").
_FROM_IP = re.compile(r"from ip:\s*([0-9A-Fa-f.:]+)")


class WeComAPIError(WeChatAPIError):
    """WeCom answered with a nonzero `errcode`."""

    code = "wecom_error"
    title = "WeCom login failed"
    title_zh = "企业微信登录失败"
    advice = "Try again. If it keeps happening, tell the site the code below."
    advice_zh = "请再试一次。如果一直这样，请把下面的错误码告诉网站。"

    def __init__(
        self, errcode: int, errmsg: str, *, endpoint: str, hint: str | None = None
    ) -> None:
        status, known = _ERRCODES.get(errcode, (502, "See WeCom's error codes (全局错误码)."))
        if errcode == 60020:
            found = _FROM_IP.search(errmsg)
            if found:
                known = known.replace("outbound addresses", f"outbound addresses ({found[1]})")
        super().__init__(errcode, errmsg, endpoint=endpoint, hint=known if hint is None else hint)
        self.status = status
        # WeCom's words, not those WeChat's errcodes of the same number have.
        cls = type(self)
        self.title, self.title_zh, self.advice, self.advice_zh = (
            cls.title,
            cls.title_zh,
            cls.advice,
            cls.advice_zh,
        )
        if errcode in CONFIGURATION_ERRCODES:
            self.code = WECOM_CONFIGURATION_ERROR
            self.title = "WeCom login is not configured correctly"
            self.title_zh = "企业微信登录暂时无法使用"
            self.advice = "This site's WeCom login is not set up correctly. Please try again later."
            self.advice_zh = "本网站的企业微信登录设置有误，请稍后再试。"


def _wecom(
    app: WeComApp,
    endpoint: str,
    params: tuple[tuple[str, str], ...],
    policy: CallPolicy,
    json_body: dict[str, object] | None = None,
) -> Flow[dict[str, Any]]:
    """A call of WeCom's API, its errcodes as WeComAPIErrors."""
    try:
        return (yield from api_call(app.api_base_url, endpoint, params, policy, json_body))
    except WeComAPIError:
        raise
    except WeChatAPIError as exc:
        raise WeComAPIError(exc.errcode, exc.errmsg, endpoint=endpoint) from None


def gettoken(app: WeComApp, policy: CallPolicy) -> Flow[Issued]:
    """The app's access_token (per corp AND agent: the secret is the app's)."""
    endpoint = "cgi-bin/gettoken"
    params = (("corpid", app.corp_id), ("corpsecret", app.secret))
    return issued_of((yield from _wecom(app, endpoint, params, policy)), "access_token", endpoint)


def getuserinfo(app: WeComApp, token: str, code: str, policy: CallPolicy) -> Flow[dict[str, Any]]:
    """Who a login code stands for: a member's `userid` (and `user_ticket` with
    snsapi_privateinfo), or a non-member's `openid` (and `external_userid`)."""
    endpoint = "cgi-bin/auth/getuserinfo"
    params = (("access_token", token), ("code", code))
    body = yield from _wecom(app, endpoint, params, policy)
    # Older answers spell them UserId / OpenId.
    fields = {
        "userid": _text(body, "userid", "UserId", endpoint),
        "openid": _text(body, "openid", "OpenId", endpoint),
        "external_userid": _text(body, "external_userid", "external_userid", endpoint),
        "user_ticket": _text(body, "user_ticket", "user_ticket", endpoint),
    }
    if not fields["userid"] and not fields["openid"]:
        raise UpstreamResponseError(f"WeCom {endpoint} answered neither a userid nor an openid")
    return fields


def getuserdetail(
    app: WeComApp, token: str, user_ticket: str, policy: CallPolicy
) -> Flow[dict[str, Any]]:
    """A member's details a user_ticket allows (snsapi_privateinfo)."""
    endpoint = "cgi-bin/auth/getuserdetail"
    body = yield from _wecom(
        app, endpoint, (("access_token", token),), policy, {"user_ticket": user_ticket}
    )
    gender = body.get("gender")
    if isinstance(gender, int) and not isinstance(gender, bool):
        gender = str(gender)  # documented as a string; tolerate a number
    body = {**body, "gender": gender}
    return {
        name: _opt_str(body, name, endpoint) or None
        for name in ("userid", "gender", "avatar", "qr_code", "mobile", "email", "biz_mail")
    } | {"address": _opt_str(body, "address", endpoint) or None}


def corp_ticket(app: WeComApp, token: str, policy: CallPolicy) -> Flow[Issued]:
    """The corp's jsapi_ticket, which signs `wx.config`."""
    endpoint = "cgi-bin/get_jsapi_ticket"
    body = yield from _wecom(app, endpoint, (("access_token", token),), policy)
    return issued_of(body, "ticket", endpoint)


def agent_ticket(app: WeComApp, token: str, policy: CallPolicy) -> Flow[Issued]:
    """The app's own ticket, which signs `wx.agentConfig`."""
    endpoint = "cgi-bin/ticket/get"
    params = (("access_token", token), ("type", "agent_config"))
    return issued_of((yield from _wecom(app, endpoint, params, policy)), "ticket", endpoint)


def _text(body: dict[str, Any], key: str, old_key: str, endpoint: str) -> str | None:
    value = body.get(key, body.get(old_key))
    if value is None or isinstance(value, str):
        return value or None
    raise UpstreamResponseError(f"WeCom {endpoint}: {key!r} is not a string")
