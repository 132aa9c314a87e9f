"""WeCom's server APIs, as the emulator's corp answers them (`wecom_state.WeComCorp`): always
HTTP 200 and WeCom's JSON, errors worded as WeCom words them ("..., hint: [...], from ip: ...,
more info at ..."), calls from outside the trusted IPs refused (60020) when there is a list."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

from .base import EmulatorState, Params
from .credentials import jsapi_signature
from .dispatch import Endpoint
from .grants import GrantError
from .protocol import CGI_CONTENT_TYPE, JSONValue
from .wecom_state import WeComCorp

__all__ = ["WECOM_ERRMSG", "WeComAPI", "wecom_error", "wecom_js_verdict"]

Handler = Callable[[Params], dict[str, JSONValue]]

WECOM_ERRMSG = {
    -1: "system busy",
    40001: "invalid credential",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40029: "invalid code",
    40091: "secret is invalid",
    40097: "invalid args",
    40129: "invalid user_ticket",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    47001: "data format error",
    50001: "redirect_uri not authorised",
    60020: "not allow to access from your ip",
}


def wecom_error(errcode: int, caller: str, now: float) -> dict[str, JSONValue]:
    """WeCom's error body for `errcode`, answered to a caller at `caller`."""
    hint = f"[{int(now)}_{secrets.randbelow(1000)}_{secrets.token_hex(16)}]"
    message = WECOM_ERRMSG.get(errcode, "emulated error")
    return {
        "errcode": errcode,
        "errmsg": f"{message}, hint: {hint}, from ip: {caller}, more info at "
        f"https://open.work.weixin.qq.com/devtool/query?e={errcode}",
    }


class WeComAPI(EmulatorState):
    """/cgi-bin/gettoken, /cgi-bin/auth/getuserinfo, /cgi-bin/auth/getuserdetail,
    /cgi-bin/get_jsapi_ticket and /cgi-bin/ticket/get, for the emulator's corp."""

    wecom: WeComCorp | None

    def wecom_endpoints(self) -> dict[str, Endpoint]:
        """The WeCom APIs, to register beside WeChat's (their paths differ)."""
        apis: dict[str, tuple[str, Handler, str]] = {
            "/cgi-bin/gettoken": ("wecom_gettoken", self._wecom_gettoken, "GET"),
            "/cgi-bin/auth/getuserinfo": ("wecom_getuserinfo", self._wecom_getuserinfo, "GET"),
            "/cgi-bin/auth/getuserdetail": (
                "wecom_getuserdetail",
                self._wecom_getuserdetail,
                "POST",
            ),
            "/cgi-bin/get_jsapi_ticket": ("wecom_jsapi_ticket", self._wecom_jsapi_ticket, "GET"),
            "/cgi-bin/ticket/get": ("wecom_agent_ticket", self._wecom_agent_ticket, "GET"),
        }
        return {
            path: Endpoint(name, self._wecom_answer(handler), method, CGI_CONTENT_TYPE, caller=True)
            for path, (name, handler, method) in apis.items()
        }

    def _wecom_answer(self, handler: Handler) -> Callable[..., dict[str, JSONValue]]:
        def answer(params: Params, caller: str) -> dict[str, JSONValue]:
            # Outside the corp's trusted IPs (when it has a list): 60020, whatever was asked.
            corp = self._corp()
            if not corp.allows_ip(caller):
                return wecom_error(60020, caller, self._clock())
            try:
                return {"errcode": 0, "errmsg": "ok", **handler(params)}
            except GrantError as exc:
                return wecom_error(exc.errcode, caller, self._clock())

        return answer

    def _corp(self) -> WeComCorp:
        assert self.wecom is not None, "WeCom APIs registered without a corp"
        return self.wecom

    def _wecom_gettoken(self, params: Params) -> dict[str, JSONValue]:
        corp_id, secret = params.get("corpid", ""), params.get("corpsecret", "")
        if not corp_id:
            raise GrantError(41002)
        if not secret:
            raise GrantError(41004)
        token, expires_in = self._corp().token(corp_id, secret)
        return {"access_token": token, "expires_in": expires_in}

    def _wecom_getuserinfo(self, params: Params) -> dict[str, JSONValue]:
        corp = self._corp()
        agent = corp.agent_of(params.get("access_token", ""))
        persona, scope = corp.spend_code(agent, params.get("code", ""))
        if persona.userid is None:
            return {"openid": persona.openid, "external_userid": persona.external_userid}
        answer: dict[str, JSONValue] = {"userid": persona.userid}
        # A user_ticket only for a member inside the app's visible range (可见范围).
        if scope == "snsapi_privateinfo" and persona.visible:
            answer.update(user_ticket=corp.issue_user_ticket(agent, persona.key), expires_in=1800)
        return answer

    def _wecom_getuserdetail(self, params: Params) -> dict[str, JSONValue]:
        corp = self._corp()
        agent = corp.agent_of(params.get("access_token", ""))
        persona = corp.user_of_ticket(agent, params.get("user_ticket", ""))
        # Only what the member shares: an empty field is left out, as WeCom does.
        details = {
            "gender": persona.gender,
            "avatar": persona.avatar,
            "qr_code": persona.qr_code,
            "mobile": persona.mobile,
            "email": persona.email,
            "biz_mail": persona.biz_mail,
            "address": persona.address,
        }
        return {"userid": persona.userid, **{k: v for k, v in details.items() if v}}

    def _wecom_jsapi_ticket(self, params: Params) -> dict[str, JSONValue]:
        corp = self._corp()
        corp.agent_of(params.get("access_token", ""))
        ticket, expires_in = corp.ticket("corp")
        return {"ticket": ticket, "expires_in": expires_in}

    def _wecom_agent_ticket(self, params: Params) -> dict[str, JSONValue]:
        corp = self._corp()
        agent = corp.agent_of(params.get("access_token", ""))
        if params.get("type") != "agent_config":
            raise GrantError(40097)
        ticket, expires_in = corp.ticket(f"agent:{agent}")
        return {"ticket": ticket, "expires_in": expires_in}


def wecom_js_verdict(
    corp: WeComCorp, params: Params, *, ticket_key: str, name: str, app_key: str
) -> dict[str, JSONValue]:
    """The verdict on a page's ``wx.config`` (`name` "config": the corp's ticket) or
    ``wx.agentConfig`` ("agentConfig": the app's): {"ok": true, "errMsg": "<name>:ok"}, or ok
    false with WeCom's errMsg and why. `app_key` names the corp id's parameter."""
    url = params.get("url", "")

    def failed(errmsg: str, reason: str) -> dict[str, JSONValue]:
        return {"ok": False, "errMsg": f"{name}:fail{errmsg}", "realAuthUrl": url, "reason": reason}

    needed = (app_key, "nonceStr", "timestamp", "signature", "url")
    missing = [k for k in needed if not params.get(k)]
    if missing:
        return failed("", f"wx.{name} lacks {', '.join(missing)}")
    if params[app_key] != corp.corp_id:
        return failed(", invalid corpid", f"{params[app_key]} is not the corp's id")
    agent = params.get("agentid", "")
    if name == "agentConfig" and not (agent.isdigit() and int(agent) in corp.agents):
        return failed(", invalid agentid", f"agentid {agent!r} is not one of the corp's apps")
    if not corp.trusts(url):
        return failed(", domain not trusted (80001)", "the page is not on the app's 可信域名")
    ticket = corp.current_ticket(ticket_key)
    if ticket is None:
        return failed(", invalid signature (40093)", "no valid ticket was fetched (or it expired)")
    signature = params["signature"].encode("utf-8")

    def signed_with(other: str) -> bool:
        text = jsapi_signature(other, params["nonceStr"], params["timestamp"], url)
        return hmac.compare_digest(text.encode(), signature)

    if signed_with(ticket):
        return {"ok": True, "errMsg": f"{name}:ok"}
    if any(signed_with(t) for t in corp.current_tickets("agent:" if name == "config" else "corp")):
        return failed(
            ", ticket of another app (42012)",
            "signed with the other ticket: wx.config takes the corp's, wx.agentConfig the app's",
        )
    return failed(
        ", invalid signature (40093)",
        f"not sha1('jsapi_ticket=<ticket>&noncestr={params['nonceStr']}"
        f"&timestamp={params['timestamp']}&url={url}')",
    )
