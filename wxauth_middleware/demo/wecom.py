"""The demo's WeCom (企业微信) app: served on a host of its own (`WECOM_HOST`, another name for
this machine), with a page that shows the `WeComUser`, the "Browse as WeCom" switch, the JS-SDK
configured for WeCom (wx.config and wx.agentConfig) and a desktop page that logs other
browsers in with WeCom's desktop login."""

from __future__ import annotations

import dataclasses
import time
from html import escape
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse

from wxauth_middleware import Rule, WeComApp, WeComUser, get_wechat_user
from wxauth_middleware.emulator.wecom_state import (
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_CORP_SECRET,
    WeComCorp,
)

from .as_wechat import AS_WECOM_COOKIE, is_browsing_as_wecom

__all__ = [
    "WECOM_DESKTOP_PATH",
    "WECOM_DESKTOP_RULE",
    "WECOM_HOST",
    "WECOM_PATH",
    "as_wecom",
    "demo_corp",
    "demo_wecom_app",
    "wecom_desktop",
    "wecom_page",
]

#: The WeCom app's host: browsers resolve every *.localhost name to this machine.
WECOM_HOST = "wecom.localhost"
WECOM_PATH = "/wecom"
WECOM_DESKTOP_PATH = "/wecom/desktop"
#: Other browsers on the desktop page log in with WeCom's desktop login (wwlogin/sso/login).
WECOM_DESKTOP_RULE = Rule(WECOM_DESKTOP_PATH, other_browsers="wecom_qr")


def demo_corp(port: int | None) -> WeComCorp:
    """The emulator's corp: one app, trusting the demo's WeCom host (with its port) exactly."""
    trusted = WECOM_HOST + (f":{port}" if port else "")
    return WeComCorp(
        DEFAULT_CORP_ID,
        {DEFAULT_AGENT_ID: DEFAULT_CORP_SECRET},
        time.time,
        trusted_domains=[trusted],
    )


def demo_wecom_app(emulator_url: str, api_base_url: str) -> WeComApp:
    """The demo's WeCom app, at the emulator (`emulator_url`, as the browser reaches it)."""
    return WeComApp(
        DEFAULT_CORP_ID,
        DEFAULT_AGENT_ID,
        DEFAULT_CORP_SECRET,
        hosts=[WECOM_HOST],
        scope="snsapi_privateinfo",
        authorize_url=f"{emulator_url}/connect/oauth2/authorize",
        api_base_url=api_base_url,
        sso_url=f"{emulator_url}/wwlogin/sso/login",
    )


_STYLE = """body{margin:0;font:16px/1.5 -apple-system,"PingFang SC","Microsoft YaHei",system-ui,
sans-serif;background:#f3f5f7;color:#191919}main{max-width:560px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:8px;padding:20px;margin-bottom:12px}h1{font-size:20px;
margin:0 0 12px}.muted{color:#7f7f7f;font-size:14px}th{text-align:left;padding-right:12px;
font-weight:500;color:#555}button{font:inherit;padding:10px 16px;border:0;border-radius:6px;
background:#0082ef;color:#fff;font-weight:600}a{color:#0082ef}"""


def _page(title: str, body: str, head: str = "") -> StarletteResponse:
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{head}<style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, headers={"cache-control": "no-store"})


def _user_table(user: WeComUser) -> str:
    rows = "".join(
        f'<tr><th>{escape(f.name)}</th><td id="field-{escape(f.name)}">'
        f"{escape(str(getattr(user, f.name)))}</td></tr>"
        for f in dataclasses.fields(user)
    )
    identity = f'<tr><th>identity</th><td id="identity">{escape(user.identity)}</td></tr>'
    return f"<table>{rows}{identity}</table>"


def _switch(on: bool) -> str:
    label = (
        "退出企业微信身份 · Stop browsing as WeCom"
        if on
        else "以企业微信身份浏览 · Browse as WeCom"
    )
    return (
        '<form method="post" action="/_demo/as-wecom">'
        f'<input type="hidden" name="as_wecom" value="{"off" if on else "on"}">'
        f'<button id="as-wecom" type="submit">{label}</button></form>'
    )


_JSSDK_STATUS = """<script src="/wxauth/jssdk.js" data-js-api-list="getContext"></script>
<script>
document.addEventListener("wxauth:ready", function (e) {
  document.getElementById("jssdk").textContent =
    "JS-SDK 已就绪 · ready: wx.config + wx.agentConfig (" + e.detail.errMsg + ")";
});
document.addEventListener("wxauth:error", function (e) {
  document.getElementById("jssdk").textContent = "JS-SDK 失败 · failed: " + e.detail.errMsg;
});
</script>"""


async def wecom_page(request: Request) -> StarletteResponse:
    """The WeCom page: who WeCom says the visitor is, and the JS-SDK configured for WeCom."""
    user = get_wechat_user(request)
    on = is_browsing_as_wecom(request.cookies)
    if isinstance(user, WeComUser):
        who = (
            '<p id="login-status" data-logged-in="true">已用企业微信登录 · Logged in with '
            f"WeCom</p>{_user_table(user)}"
        )
    else:
        who = (
            '<p id="login-status" data-logged-in="false">未登录 · Not logged in</p>'
            "<p>按下面的按钮，本浏览器就以企业微信的身份访问：中间件把你带到企业微信的授权页（这里是模拟器的）。</p>"
            '<p class="muted">Press the button: this browser then passes for WeCom\'s, and the '
            "middleware takes you through WeCom's authorization (the emulator's, here).</p>"
        )
    body = (
        f'<div class="card"><h1>企业微信 · WeCom</h1>{who}{_switch(on)}</div>'
        '<div class="card"><h1>JS-SDK</h1><p id="jssdk" class="muted">正在配置 · Configuring…</p>'
        '<p class="muted">一个 &lt;script&gt; 标签：wx.config({beta: true}) 用企业的签名，'
        "wx.agentConfig 用应用的签名。One &lt;script&gt; tag: wx.config with the corp's signature, "
        "wx.agentConfig with the app's.</p></div>"
        f'<div class="card"><p><a href="{WECOM_DESKTOP_PATH}">电脑上用企业微信登录 · Desktop '
        "login with WeCom</a></p></div>"
    )
    return _page("企业微信 · WeCom", body, _JSSDK_STATUS)


async def wecom_desktop(request: Request) -> StarletteResponse:
    """The desktop page: reached with a session only (the middleware sends other browsers to
    WeCom's desktop login first)."""
    user = get_wechat_user(request)
    who = _user_table(user) if isinstance(user, WeComUser) else "<p>—</p>"
    body = (
        '<div class="card"><h1>电脑端企业微信登录 · WeCom desktop login</h1>'
        f'<p id="desktop-status">已登录 · Logged in</p>{who}'
        f'<p><a href="{WECOM_PATH}">企业微信页 · WeCom page</a></p></div>'
    )
    return _page("企业微信 · WeCom desktop", body)


async def as_wecom(request: Request) -> StarletteResponse:
    """POST /_demo/as-wecom: "Browse as WeCom" on or off, back to the WeCom page."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return PlainTextResponse("Forbidden: cross-site form post.", status_code=403)
    body = (await request.body()).decode("utf-8", "replace")
    choice = dict(parse_qsl(body)).get("as_wecom", "")
    if choice not in ("on", "off"):
        return PlainTextResponse("as_wecom must be 'on' or 'off'.", status_code=400)
    response = RedirectResponse(WECOM_PATH, status_code=303)
    if choice == "on":
        response.set_cookie(AS_WECOM_COOKIE, "1", path="/", httponly=True, samesite="lax")
    else:
        response.delete_cookie(AS_WECOM_COOKIE, path="/", httponly=True, samesite="lax")
    return response
