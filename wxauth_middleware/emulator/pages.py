"""The emulator's HTML pages: self-contained (no external assets, works offline), mobile first."""

from __future__ import annotations

import html
from collections.abc import Sequence
from http import HTTPStatus

from .authorize import AuthorizeRejection, AuthorizeRequest
from .personas import Persona

__all__ = ["consent_page", "error_page", "fault_page", "index_page"]

BANNER = "WeChat emulator — not the real WeChat · 微信模拟器 · 并非真正的微信"

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 -apple-system,"PingFang SC","Microsoft YaHei",system-ui,sans-serif;
background:#ededed;color:#191919}
.banner{background:#fa9d3b;color:#fff;text-align:center;font-size:13px;padding:6px 12px}
main{max-width:480px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:8px;padding:20px;margin-bottom:16px}
h1{font-size:20px;margin:0 0 12px}
h2{font-size:16px;margin:16px 0 8px}
code{font:13px ui-monospace,Menlo,Consolas,monospace;background:#f5f5f5;padding:1px 4px;
border-radius:3px;word-break:break-all}
.muted{color:#7f7f7f;font-size:14px}
.error{color:#fa5151}
fieldset{border:0;padding:0;margin:16px 0}
legend{font-weight:600;margin-bottom:8px}
.persona{display:flex;align-items:center;gap:12px;padding:10px 4px;border-top:1px solid #eee;
cursor:pointer}
.avatar{flex:none;width:40px;height:40px;border-radius:4px;background:#07c160;color:#fff;
display:flex;align-items:center;justify-content:center;font-weight:600}
.who{display:flex;flex-direction:column}
.tags{color:#7f7f7f;font-size:13px}
.buttons{display:flex;gap:12px;margin-top:20px}
button{flex:1;font-size:17px;padding:10px;border-radius:6px;border:0;cursor:pointer}
button.primary{background:#07c160;color:#fff}
button.secondary{background:#f2f2f2;color:#07c160}
button:disabled{opacity:.4;cursor:not-allowed}
table{border-collapse:collapse;width:100%;font-size:14px}
td,th{text-align:left;padding:6px 4px;border-top:1px solid #eee;vertical-align:top}
"""

_SCOPE_WORDS = {
    "snsapi_base": "获取你的身份标识 (openid) / Know who you are (openid only)",
    "snsapi_userinfo": (
        "获取你的昵称、头像 / Get your nickname and profile photo (and unionid, if bound)"
    ),
}


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _visible(text: str) -> str:
    # Control characters have no place in HTML: show them as Unicode "control pictures".
    return "".join(
        chr(0x2400 + ord(c)) if ord(c) < 0x20 else "\u2421" if c == "\x7f" else c for c in text
    )


def _layout(title: str, body: str, *, head: str = "") -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>{head}<style>{_CSS}</style></head>"
        f'<body><div class="banner" role="note">{_e(BANNER)}</div><main>{body}</main></body></html>'
    )


def error_page(rejection: AuthorizeRejection) -> str:
    """WeChat's own error page for a bad authorize link; the marker is machine readable."""
    body = (
        '<div class="card">'
        f'<h1 class="error">{_e(rejection.title)}</h1>'
        f"<p>{_e(rejection.detail)}</p>"
        f'<p class="muted">错误 / error: <code id="wechat-error">{_e(rejection.marker)}</code></p>'
        "</div>"
    )
    head = f'<meta name="wechat-error" content="{_e(rejection.marker)}">'
    return _layout("微信授权错误 / WeChat authorization error", body, head=head)


def _persona_row(persona: Persona, checked: bool) -> str:
    tags = ["unionid" if persona.has_unionid else "no unionid"]
    if persona.snapshot:
        tags.append("snapshot 快照用户 (is_snapshotuser=1)")
    if not persona.headimgurl:
        tags.append("no avatar")
    nickname = _visible(persona.nickname)
    # An initial instead of the avatar image: the page must not fetch anything from outside.
    initial = nickname[:1] or "?"
    return (
        f'<label class="persona" for="persona-{_e(persona.key)}">'
        f'<input type="radio" name="persona" id="persona-{_e(persona.key)}" '
        f'value="{_e(persona.key)}"{" checked" if checked else ""} required>'
        f'<span class="avatar" aria-hidden="true">{_e(initial)}</span>'
        f'<span class="who"><span class="nick">{_e(nickname)}</span>'
        f'<span class="tags">{_e(persona.key)} · {_e(" · ".join(tags))}</span></span>'
        "</label>"
    )


# The server never sees URL fragments, so WeChat's "#wechat_redirect is required" rule can only
# be enforced here, by the browser: real browsers get the error, HTTP clients without JS don't.
# Silent and auto-approved logins answer with a 302 and are not checked at all.
_FRAGMENT_CHECK = """<script>
if (location.hash !== "#wechat_redirect") {
  document.getElementById("fragment-error").hidden = false;
  document.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
}
</script>"""


def consent_page(
    request: AuthorizeRequest,
    *,
    action: str,
    personas: Sequence[Persona],
    selected: str,
    message: str = "",
    check_fragment: bool = True,
) -> str:
    """The consent popup: pick a persona, then allow or refuse."""
    rows = "".join(_persona_row(p, p.key == selected) for p in personas)
    note = f'<p class="error" id="form-error">{_e(message)}</p>' if message else ""
    body = (
        '<div class="card">'
        '<p class="error" id="fragment-error" hidden>'
        "缺少 #wechat_redirect (真正的微信会显示错误) / "
        "The link lacks the #wechat_redirect fragment; real WeChat refuses it.</p>"
        "<h1>微信授权登录 / Log in with WeChat</h1>"
        f'<p>应用 / App: <code id="appid">{_e(request.app_id)}</code></p>'
        f"<p>申请获取 / Requests: <strong>{_e(_SCOPE_WORDS[request.scope])}</strong> "
        f'<code id="scope">{_e(request.scope)}</code></p>'
        f'<p class="muted">登录后返回 / Returns to: <code>{_e(request.redirect_host)}</code></p>'
        f"{note}"
        f'<form method="post" action="{_e(action)}">'
        f'<input type="hidden" name="query" value="{_e(request.query)}">'
        f"<fieldset><legend>以哪个身份登录 / Log in as</legend>{rows}</fieldset>"
        '<div class="buttons">'
        '<button type="submit" class="secondary" id="refuse" name="decision" value="refuse" '
        "formnovalidate>拒绝 / Refuse</button>"
        '<button type="submit" class="primary" id="allow" name="decision" value="allow">'
        "允许 / Allow</button>"
        "</div></form></div>"
    )
    if check_fragment:
        body += _FRAGMENT_CHECK
    return _layout("微信授权 / WeChat authorization (emulator)", body)


def index_page(
    *,
    root_path: str,
    base_url: str,
    app_id: str,
    domains: Sequence[str],
    personas: Sequence[Persona],
    default_persona: str,
    auto_approve: bool,
) -> str:
    """What this server is and how to point the middleware at it."""
    endpoints = [
        ("GET", "/connect/oauth2/authorize", "the authorize page (open.weixin.qq.com)"),
        ("GET", "/sns/oauth2/access_token", "code → access_token"),
        ("GET", "/sns/oauth2/refresh_token", "refresh an access_token"),
        ("GET", "/sns/userinfo", "user profile (snsapi_userinfo tokens)"),
        ("GET", "/sns/auth", "check an access_token"),
        ("POST / DELETE", "/_emulator/faults", "inject / clear faults (JSON)"),
    ]
    endpoint_rows = "".join(
        f"<tr><td>{_e(m)}</td><td><code>{_e(root_path + p)}</code></td><td>{_e(d)}</td></tr>"
        for m, p, d in endpoints
    )
    persona_rows = "".join(
        f"<tr><td><code>{_e(p.key)}</code>{' (default)' if p.key == default_persona else ''}</td>"
        f"<td>{_e(_visible(p.nickname))}</td>"
        f"<td>{'unionid' if p.has_unionid else '—'}{' · snapshot' if p.snapshot else ''}</td></tr>"
        for p in personas
    )
    mode = (
        "auto-approve: every authorization succeeds at once as the default persona"
        if auto_approve
        else "consent page: you choose a persona and allow or refuse"
    )
    body = (
        '<div class="card"><h1>WeChat emulator</h1>'
        "<p>A local stand-in for WeChat's web-page authorization servers (公众号网页授权), "
        "with their quirks, for offline development and tests. It is not WeChat.</p>"
        f'<p>AppID: <code id="appid">{_e(app_id)}</code></p>'
        f"<p>Authorization domains: <code>{_e(', '.join(domains))}</code></p>"
        f"<p>Mode: {_e(mode)}</p></div>"
        '<div class="card"><h2>Point the middleware here</h2>'
        f"<p><code>authorize_url={_e(base_url)}/connect/oauth2/authorize</code></p>"
        f"<p><code>api_base_url={_e(base_url)}</code></p>"
        '<p class="muted">The AppSecret is the one the emulator was started with.</p></div>'
        f'<div class="card"><h2>Endpoints</h2><table>{endpoint_rows}</table></div>'
        f'<div class="card"><h2>Personas</h2><table>{persona_rows}</table></div>'
    )
    return _layout("WeChat emulator", body)


def fault_page(status: int) -> str:
    """An injected HTTP failure, looking like what a proxy in front of WeChat would send."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (
        f"<html><head><title>{status} {_e(phrase)}</title></head><body>"
        f"<center><h1>{status} {_e(phrase)}</h1></center><hr><center>nginx</center>"
        "</body></html>"
    )
