"""The emulator's HTML pages: self-contained (no external assets, works offline), mobile first."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus

from .authorize import AuthorizeRejection, AuthorizeRequest
from .personas import Persona

__all__ = [
    "CONSENT",
    "QRCONNECT",
    "DecisionForm",
    "decision_page",
    "error_page",
    "fault_page",
    "index_page",
    "simple_page",
]

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
figure{margin:8px auto 16px;text-align:center}
figure svg{display:block;margin:0 auto;width:200px;height:200px;border:1px solid #e5e5e5}
figcaption{color:#7f7f7f;font-size:13px;margin-top:6px}
td,th{text-align:left;padding:6px 4px;border-top:1px solid #eee;vertical-align:top}
"""

_SCOPE_WORDS = {
    "snsapi_base": "获取你的身份标识 (openid) / Know who you are (openid only)",
    "snsapi_userinfo": (
        "获取你的昵称、头像 / Get your nickname and profile photo (and unionid, if bound)"
    ),
    "snsapi_login": (
        "使用你的微信帐号登录 / Log in with your WeChat account "
        "(nickname, profile photo and unionid, if bound)"
    ),
}


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _visible(text: str) -> str:
    # Control characters have no place in HTML, and the "control pictures" (U+2400...) are
    # missing from most fonts: show them as their escape, e.g. \x07. The APIs send them raw.
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or c == "\x7f" else c for c in text)


def _layout(title: str, body: str, *, head: str = "") -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>{head}<style>{_CSS}</style></head>"
        f'<body><div class="banner" role="note">{_e(BANNER)}</div><main>{body}</main></body></html>'
    )


def simple_page(title: str, body: str) -> str:
    """A page of the emulator's look around `body` (HTML, escaped by the caller)."""
    return _layout(title, body)


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


# The fake QR code: 25 x 25 modules with the three finder squares, a 4-module quiet zone.
_QR_SIZE = 25
_QR_QUIET = 4
_QR_FINDERS = ((0, 0), (0, _QR_SIZE - 7), (_QR_SIZE - 7, 0))


def _finder_module(row: int, col: int) -> bool | None:
    """Whether a module of a finder square (or its white border) is dark; None outside them."""
    for top, left in _QR_FINDERS:
        dr, dc = row - top, col - left
        if -1 <= dr <= 7 and -1 <= dc <= 7:
            if not (0 <= dr <= 6 and 0 <= dc <= 6):
                return False  # the separator
            return max(abs(dr - 3), abs(dc - 3)) != 2  # ring, gap, ring, centre
    return None


def _fake_qr_svg(seed: str) -> str:
    """An inline SVG that looks like a QR code and encodes nothing; the same seed, the same
    picture. Nothing is fetched: the page must work offline."""
    bits = hashlib.shake_256(seed.encode("utf-8")).digest(_QR_SIZE * _QR_SIZE // 8 + 1)
    path = []
    for row in range(_QR_SIZE):
        for col in range(_QR_SIZE):
            dark = _finder_module(row, col)
            if dark is None:
                index = row * _QR_SIZE + col
                dark = bool(bits[index // 8] >> (index % 8) & 1)
            if dark:
                path.append(f"M{col + _QR_QUIET} {row + _QR_QUIET}h1v1h-1z")
    side = _QR_SIZE + 2 * _QR_QUIET
    return (
        f'<svg id="qrcode" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        'role="img" aria-labelledby="qrcode-label" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(path)}"/></svg>'
    )


@dataclass(frozen=True)
class DecisionForm:
    """What tells WeChat's two "who logs in?" forms apart; `refuse` and `allow` are each a
    button's (id, label)."""

    title: str
    heading: str
    app_label: str
    legend: str
    refuse: tuple[str, str]
    allow: tuple[str, str]
    qr_code: bool = False


# The consent popup: pick a persona, then allow or refuse.
CONSENT = DecisionForm(
    title="微信授权 / WeChat authorization (emulator)",
    heading="微信授权登录 / Log in with WeChat",
    app_label="应用 / App",
    legend="以哪个身份登录 / Log in as",
    refuse=("refuse", "拒绝 / Refuse"),
    allow=("allow", "允许 / Allow"),
)

# Website QR-code login: a fake QR code; pick who scans it, then confirm or cancel. Its
# personas are the ones that can scan: snapshot-mode users exist only inside WeChat's in-app
# browser, so the caller leaves them out.
QRCONNECT = DecisionForm(
    title="微信登录 / WeChat QR-code login (emulator)",
    heading="微信登录 / Log in with WeChat",
    app_label="网站应用 / Website app",
    legend="用哪个微信扫码 / Who scans the code",
    refuse=("scan-cancel", "取消登录 / Cancel"),
    allow=("scan-confirm", "扫码并确认 / Scan and confirm"),
    qr_code=True,
)


def decision_page(
    form: DecisionForm,
    request: AuthorizeRequest,
    *,
    action: str,
    personas: Sequence[Persona],
    selected: str,
    message: str = "",
    check_fragment: bool = True,
) -> str:
    """The consent popup or the QR-code page (`form`): who logs in, then allow or refuse."""
    rows = "".join(_persona_row(p, p.key == selected) for p in personas)
    note = f'<p class="error" id="form-error">{_e(message)}</p>' if message else ""
    figure = (
        "<figure>"
        f"{_fake_qr_svg(request.query)}"
        '<figcaption id="qrcode-label">WeChat emulator — scan simulation · '
        "使用微信扫一扫登录 / Scan with WeChat to log in</figcaption>"
        "</figure>"
        if form.qr_code
        else ""
    )
    (refuse_id, refuse_label), (allow_id, allow_label) = form.refuse, form.allow
    body = (
        '<div class="card">'
        '<p class="error" id="fragment-error" hidden>'
        "缺少 #wechat_redirect (微信文档要求带上) / "
        "The link lacks the #wechat_redirect fragment, which WeChat's documentation requires.</p>"
        f"<h1>{form.heading}</h1>"
        f"{figure}"
        f'<p>{form.app_label}: <code id="appid">{_e(request.app_id)}</code></p>'
        f"<p>申请获取 / Requests: <strong>{_e(_SCOPE_WORDS[request.scope])}</strong> "
        f'<code id="scope">{_e(request.scope)}</code></p>'
        f'<p class="muted">登录后返回 / Returns to: <code>{_e(request.redirect_host)}</code></p>'
        f"{note}"
        f'<form method="post" action="{_e(action)}">'
        f'<input type="hidden" name="query" value="{_e(request.query)}">'
        f"<fieldset><legend>{form.legend}</legend>{rows}</fieldset>"
        '<div class="buttons">'
        f'<button type="submit" class="secondary" id="{refuse_id}" name="decision" '
        f'value="refuse" formnovalidate>{refuse_label}</button>'
        f'<button type="submit" class="primary" id="{allow_id}" name="decision" value="allow">'
        f"{allow_label}</button>"
        "</div></form></div>"
    )
    if check_fragment:
        body += _FRAGMENT_CHECK
    return _layout(form.title, body)


def index_page(
    *,
    root_path: str,
    base_url: str,
    app_id: str,
    domains: Sequence[str],
    personas: Sequence[Persona],
    default_persona: str,
    auto_approve: bool,
    website_app_id: str | None = None,
    go_live: Sequence[str] = (),
    more_app_ids: Sequence[str] = (),
    extra: str = "",
) -> str:
    """What this server is and how to point the middleware at it; `go_live` describes the
    go-live settings that are on; `extra` (HTML) ends the page (the WeCom corp's card)."""
    endpoints = [
        ("GET", "/connect/oauth2/authorize", "the authorize page (open.weixin.qq.com)"),
        (
            "GET",
            "/connect/qrconnect",
            "website QR-code login page (snsapi_login, the website app's appid)",
        ),
        ("GET", "/sns/oauth2/access_token", "code → access_token"),
        ("GET", "/sns/oauth2/refresh_token", "refresh an access_token"),
        ("GET", "/sns/userinfo", "user profile (snsapi_userinfo and snsapi_login tokens)"),
        ("GET", "/sns/auth", "check an access_token"),
        ("POST", "/cgi-bin/stable_token", "the account's access_token (JSON body)"),
        ("GET", "/cgi-bin/token", "the old token API: each call voids the previous one in 5 min"),
        ("GET", "/cgi-bin/ticket/getticket", "the jsapi_ticket (type=jsapi) or card ticket"),
        ("GET", "/cgi-bin/user/info", "follower info (subscribe 0/1)"),
        ("POST", "/cgi-bin/clear_quota", "reset the quotas (JSON appid)"),
        ("GET", "/open/js/jweixin-1.6.0.js", "JS-SDK stand-in for development"),
        ("POST / DELETE", "/_emulator/faults", "inject / clear faults (JSON, same origin)"),
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
    if website_app_id is None:
        website = "none (website QR-code login is disabled)"
        qrconnect = ""
    else:
        website = f'<code id="website-appid">{_e(website_app_id)}</code>'
        qrconnect = (
            "<p>Website QR-code login (desktop browsers): "
            f"<code>qrconnect_url={_e(base_url)}/connect/qrconnect</code> "
            f"<code>website_app_id={_e(website_app_id)}</code></p>"
        )
    more_accounts = "".join(
        f'<p>Another Official Account (--account): <code class="more-appid">{_e(more)}</code></p>'
        for more in more_app_ids
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
        f"{more_accounts}"
        f"<p>Website app (网站应用) AppID: {website}</p>"
        f"<p>Authorization domains: <code>{_e(', '.join(domains))}</code></p>"
        f"<p>Mode: {_e(mode)}</p>"
        f'<p id="go-live">Go-live settings: {_e("; ".join(go_live) or "off (a smooth start)")}'
        "</p></div>"
        '<div class="card"><h2>Point the middleware here</h2>'
        f"<p><code>authorize_url={_e(base_url)}/connect/oauth2/authorize</code></p>"
        f"<p><code>api_base_url={_e(base_url)}</code></p>"
        f"{qrconnect}"
        '<p class="muted">The AppSecrets are the ones the emulator was started with.</p></div>'
        f'<div class="card"><h2>Endpoints</h2><table>{endpoint_rows}</table></div>'
        f'<div class="card"><h2>Personas</h2><table>{persona_rows}</table></div>{extra}'
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
