"""The demo site's HTML: self-contained (inline CSS, no external assets), mobile first.

Everything that comes from WeChat (nicknames above all) is escaped with `html.escape`, and
control characters are shown as Unicode "control pictures" instead of being sent raw.
"""

from __future__ import annotations

import dataclasses
import html

from wxauth_middleware import WeChatAPIError, WeChatAuthError, WeChatUser

__all__ = [
    "as_wechat_form",
    "error_page",
    "home_page",
    "layout",
    "logged_out_page",
    "profile_page",
]

AS_WECHAT_BANNER = "正在以微信身份浏览 (仅限演示)· Browsing as WeChat (demo only)"
IN_WECHAT_BANNER = "微信浏览器 · Opened in the WeChat browser"

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 -apple-system,"PingFang SC","Microsoft YaHei",system-ui,sans-serif;
background:#ededed;color:#191919}
.banner{background:#07c160;color:#fff;text-align:center;font-size:14px;font-weight:600;
padding:8px 12px}
main{max-width:520px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:8px;padding:20px;margin-bottom:16px}
h1{font-size:20px;margin:0 0 12px}
h2{font-size:17px;margin:0 0 12px}
p{margin:0 0 8px}
code{font:13px ui-monospace,Menlo,Consolas,monospace;background:#f5f5f5;padding:1px 4px;
border-radius:3px;word-break:break-all}
.muted{color:#7f7f7f;font-size:14px}
.warn{background:#fff7e6;border-left:4px solid #fa9d3b;padding:8px 12px;margin:12px 0;
font-size:14px}
.who{display:flex;align-items:center;gap:14px;margin-bottom:12px}
.avatar{flex:none;width:56px;height:56px;border-radius:6px;background:#07c160;color:#fff;
display:flex;align-items:center;justify-content:center;font-size:26px;font-weight:600}
.nick{font-size:20px;font-weight:600;word-break:break-word}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 12px;margin:0;font-size:14px}
dt{color:#7f7f7f}
dd{margin:0;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:14px}
td,th{text-align:left;padding:6px 4px;border-top:1px solid #eee;vertical-align:top}
td{overflow-wrap:anywhere}
th{color:#7f7f7f;font-weight:400;white-space:nowrap}
.actions{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.actions form{margin:0}
button,.button{display:inline-block;font:inherit;font-size:16px;padding:9px 16px;
border-radius:6px;border:0;cursor:pointer;text-decoration:none;line-height:1.4}
.primary{background:#07c160;color:#fff}
.secondary{background:#f2f2f2;color:#07c160}
.danger{background:#f2f2f2;color:#fa5151}
ul.links{margin:0;padding-left:20px}
a{color:#576b95}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _visible(text: str) -> str:
    # Raw control characters (WeChat does send them in nicknames) become visible symbols.
    return "".join(
        chr(0x2400 + ord(c)) if ord(c) < 0x20 else "\u2421" if c == "\x7f" else c for c in text
    )


def _text(value: str) -> str:
    return _e(_visible(value))


def layout(title: str, body: str, *, banner: str = "") -> str:
    top = f'<div class="banner" id="banner" role="status">{_e(banner)}</div>' if banner else ""
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{top}<main>{body}</main></body></html>"
    )


def _banner(*, as_wechat: bool, in_wechat: bool) -> str:
    if as_wechat:
        return AS_WECHAT_BANNER
    return IN_WECHAT_BANNER if in_wechat else ""


def as_wechat_form(*, as_wechat: bool, next_path: str) -> str:
    """The "Browse as WeChat" toggle: one button that switches the demo cookie on or off."""
    if as_wechat:
        value, label, style = "off", "停止以微信身份浏览 · Stop browsing as WeChat", "secondary"
    else:
        value, label, style = "on", "以微信身份浏览 · Browse as WeChat", "primary"
    return (
        '<form method="post" action="/_demo/as-wechat">'
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        f'<button type="submit" class="{style}" id="as-wechat" name="as_wechat" '
        f'value="{value}">{_e(label)}</button></form>'
    )


def _logout_form() -> str:
    return (
        '<form method="post" action="/logout">'
        '<button type="submit" class="danger" id="logout">退出登录 · Log out</button></form>'
    )


def _initial(user: WeChatUser) -> str:
    # An initial, not the avatar image: the demo works offline and loads nothing from outside.
    return _visible(user.nickname or "")[:1] or "?"


def _snapshot_note(user: WeChatUser) -> str:
    if not user.is_snapshot_user:
        return ""
    return (
        '<p class="warn" id="snapshot-note">快照页用户：微信在只能滚动浏览的快照模式里给出的虚拟'
        "身份，不要保存或关联它；真实的网站会显示“请使用完整服务”的页面。Snapshot-mode user: a "
        "virtual identity WeChat gives in its scroll-only page mode. Don't persist or link it; "
        'a real site shows a "tap to continue" page.</p>'
    )


def _or_dash(value: str | None) -> str:
    return _text(value) if value else '<span class="muted">—</span>'


def home_page(
    user: WeChatUser | None,
    *,
    as_wechat: bool,
    in_wechat: bool,
    public_url: str,
    wecom_url: str | None = None,
) -> str:
    """The home page: what is going on, who is logged in, and the buttons to try it (and the
    demo's WeCom page at `wecom_url`, when it serves one)."""
    if in_wechat and not as_wechat:
        how = (
            "<p>你正在微信里打开本页：中间件已经带你走过微信的授权页（这里是模拟器的），"
            "回来时已登录。</p>"
            "<p>You opened this page in WeChat: the middleware took you through WeChat's consent "
            "page (the emulator's, here) and you came back logged in.</p>"
        )
    else:
        how = (
            "<p>按<strong>以微信身份浏览</strong>，选择一个身份，再按<strong>允许</strong>。"
            "</p><p>Press <strong>Browse as WeChat</strong>, choose a persona, press "
            "<strong>允许 / Allow</strong>.</p>"
        )
    intro = (
        '<div class="card"><h1>微信登录演示 · wxauth-middleware demo</h1>'
        "<p>本站运行在 <code>WeChatAuthMiddleware</code> 之后；同一进程里的微信模拟器（不是真的"
        '微信）在 <a href="/_wechat/"><code>/_wechat</code></a>。</p>'
        "<p>This site runs behind <code>WeChatAuthMiddleware</code>; a WeChat emulator (not the "
        'real WeChat) runs in the same process at <a href="/_wechat/"><code>/_wechat</code></a>.'
        "</p><p>普通浏览器直接通过，没有用户；没有会话的微信浏览器会被带到微信的授权页，"
        "回来时已登录。</p>"
        "<p>Ordinary browsers pass through without a user; the WeChat browser without a "
        "session is sent to WeChat's consent page, and comes back logged in.</p>"
        f"{how}"
        '<p class="muted">应用用 <code>get_wechat_user(request)</code>（或 '
        '<code>scope["wechat_user"]</code>）读取用户。The app reads the user with '
        '<code>get_wechat_user(request)</code> (or <code>scope["wechat_user"]</code>).</p></div>'
    )
    if user is None:
        status = (
            '<div class="card"><h2>登录状态 · Login status</h2>'
            '<p id="login-status" data-logged-in="false">未登录 · Not logged in</p>'
            '<p class="muted">这个浏览器不是微信，中间件放行了页面，没有用户。This browser is '
            "not WeChat, so the middleware let the page through without a user.</p>"
        )
    else:
        status = (
            '<div class="card"><h2>登录状态 · Login status</h2>'
            '<p id="login-status" data-logged-in="true">已登录 · Logged in with WeChat</p>'
            f'<div class="who"><span class="avatar" aria-hidden="true">{_e(_initial(user))}'
            f'</span><span class="nick" id="nickname">{_or_dash(user.nickname)}</span></div>'
            "<dl>"
            f'<dt>openid</dt><dd><code id="openid">{_text(user.openid)}</code></dd>'
            f'<dt>unionid</dt><dd id="unionid">{_or_dash(user.unionid)}</dd>'
            f'<dt>scope</dt><dd><code id="scope">{_text(user.scope)}</code></dd>'
            f'<dt>快照用户 · snapshot</dt><dd id="snapshot">'
            f"{'是 · yes' if user.is_snapshot_user else '否 · no'}</dd>"
            "</dl>"
            f"{_snapshot_note(user)}"
        )
    # The real WeChat browser needs no switch; a desktop browser, or one already switched, does.
    actions = (
        as_wechat_form(as_wechat=as_wechat, next_path="/") if as_wechat or not in_wechat else ""
    )
    if user is not None:
        actions += _logout_form()
    status += f'<div class="actions">{actions}</div></div>'
    curl = (
        f"curl -H 'User-Agent: {_e('Mozilla/5.0 MicroMessenger/8.0.42')}' "
        f"-H 'Accept: application/json' {_e(public_url)}/api/me"
    )
    links = (
        '<div class="card"><h2>看看 · Look around</h2><ul class="links">'
        '<li><a href="/profile" id="profile-link">/profile</a>: every field of '
        "<code>WeChatUser</code> · 用户全部字段</li>"
        '<li><a href="/api/me" id="api-link">/api/me</a>: the user as JSON · JSON 接口. '
        "An anonymous API call from WeChat gets the middleware's 401 JSON with "
        f"<code>authorize_url</code>, never a redirect: <code>{curl}</code></li>"
        '<li><a href="/share" id="share-link">/share</a>：分享卡片，用中间件的一个 '
        "<code>&lt;script&gt;</code> 配好 JS-SDK · a share card set up with the JS-SDK's one "
        "script tag</li>"
        '<li><a href="/desktop" id="desktop-link">/desktop</a>: 电脑浏览器扫码登录 · a desktop '
        "browser logs in by scanning with WeChat (open the phone link in a private window)</li>"
        + (
            f'<li><a href="{_e(wecom_url)}" id="wecom-link">企业微信 · WeCom</a>: 员工用企业微信'
            "登录公司自己的网页 · staff log in with WeCom (以企业微信身份浏览 · Browse as WeCom "
            "there)</li>"
            if wecom_url
            else ""
        )
        + '<li><a href="/_wechat/">/_wechat/</a>: the emulator, its endpoints and personas · '
        "微信模拟器</li></ul></div>"
    )
    return layout(
        "微信登录演示 · wxauth-middleware demo",
        intro + status + links,
        banner=_banner(as_wechat=as_wechat, in_wechat=in_wechat),
    )


def _field_value(value: object) -> str:
    if value is None:
        return '<span class="muted">None</span>'
    if isinstance(value, bool):
        return f"<code>{value}</code>"
    if isinstance(value, tuple):
        return f"<code>{_text(repr(value))}</code>"
    if isinstance(value, int):
        return f"<code>{value}</code>"
    return _text(str(value)) if value != "" else '<code>""</code>'


def profile_page(user: WeChatUser | None, *, as_wechat: bool, in_wechat: bool) -> str:
    """Every field of the `WeChatUser`, as the application receives it."""
    if user is None:
        body = (
            '<div class="card"><h1>用户资料 · Profile</h1>'
            '<p id="login-status" data-logged-in="false">未登录 · Not logged in</p>'
            f'<div class="actions">{as_wechat_form(as_wechat=as_wechat, next_path="/profile")}'
            '<a class="button secondary" href="/">首页 · Home</a></div></div>'
        )
    else:
        rows = "".join(
            f'<tr><th>{_e(f.name)}</th><td id="field-{_e(f.name)}">'
            f"{_field_value(getattr(user, f.name))}</td></tr>"
            for f in dataclasses.fields(user)
        )
        body = (
            '<div class="card"><h1>用户资料 · Profile</h1>'
            '<p id="login-status" data-logged-in="true">已登录 · Logged in with WeChat</p>'
            f'<div class="who"><span class="avatar" aria-hidden="true">{_e(_initial(user))}'
            f'</span><span class="nick" id="nickname">{_or_dash(user.nickname)}</span></div>'
            f"{_snapshot_note(user)}"
            f"<table>{rows}</table>"
            '<p class="muted">自 2021 年 10 月起，微信对所有人返回 sex 0 和空的地区字段。演示站点'
            "不加载头像地址，以便离线运行。Since October 2021 WeChat sends sex 0 and empty region "
            "fields for everyone. The avatar URL is not loaded: the demo works offline.</p>"
            '<div class="actions"><a class="button secondary" href="/">首页 · Home</a>'
            f"{_logout_form()}</div></div>"
        )
    return layout(
        "用户资料 · Profile",
        body,
        banner=_banner(as_wechat=as_wechat, in_wechat=in_wechat),
    )


def logged_out_page(*, as_wechat: bool) -> str:
    """Where "Log out" lands: outside the middleware, so WeChat mode does not log in again
    before the visitor has read that they were logged out."""
    again = "/wxauth/login?next=%2F"  # the middleware's login_path: ends the logged-out mark
    actions = (
        f'<a class="button primary" href="{again}" id="login-again">重新登录 · Log in again</a>'
    )
    if as_wechat:
        actions += as_wechat_form(as_wechat=True, next_path="/")
    body = (
        '<div class="card"><h1 id="logged-out">已退出登录 · Logged out</h1>'
        "<p>会话已结束。在微信里再打开本站的页面时，会先看到“已退出登录”，"
        "点“重新登录”才会再次登录。</p>"
        "<p>Your session has ended. In WeChat, the site's pages now say that you logged out, "
        "with a button to log in again.</p>"
        f'<div class="actions">{actions}</div></div>'
    )
    return layout("已退出登录 · Logged out", body, banner=AS_WECHAT_BANNER if as_wechat else "")


def error_page(error: WeChatAuthError, *, as_wechat: bool) -> str:
    """The middleware's login errors, as a visitor reads them (Chinese first, then English;
    the owner's hint folded away), with a way out of "browse as WeChat"."""
    details = ""
    if isinstance(error, WeChatAPIError):
        details = f'<p class="muted">WeChat errcode {error.errcode}'
        details += f" · rid {_e(error.rid)}</p>" if error.rid else "</p>"
    back = error.return_to or "/"
    # A configuration error (500) will not go away by trying again: the button goes back.
    label = "返回 · Back" if error.status == 500 else "重试 · Try again"
    actions = f'<a class="button primary" href="{_e(back)}" id="retry">{label}</a>'
    if as_wechat:
        actions += as_wechat_form(as_wechat=True, next_path="/")
    english = f'<p class="muted" lang="en">{_e(error.advice)}</p>' if error.advice else ""
    body = (
        f'<div class="card"><h1 id="error-title">{_e(error.title_zh)}</h1>'
        f'<p class="muted" lang="en" id="error-title-en">{_e(error.title)}</p>'
        f"<p>{_e(error.advice_zh)}</p>{english}{details}"
        '<details class="muted"><summary>技术信息 · Technical details</summary>'
        f"<p>{_e(error.hint)}</p>"
        f'<p>error: <code id="error-code">{_e(error.code)}</code></p></details>'
        f'<div class="actions">{actions}</div></div>'
    )
    title = f"{error.title_zh} · {error.title}"
    return layout(title, body, banner=AS_WECHAT_BANNER if as_wechat else "")
