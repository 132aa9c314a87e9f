"""The pages of the desktop login by scanning (`scan/flow.py`): the desktop's QR-code page, the
phone's confirmation page and what the phone sees after deciding. Chinese first, English after;
self-contained (inline SVG and script, nothing fetched from elsewhere)."""

from __future__ import annotations

from html import escape

from ..messages import HTTPResponse
from ..pages import html_response
from ..user import WeChatUser

__all__ = ["confirm_page", "decided_page", "desktop_page"]

_STYLE = """<style>
.scan{text-align:center}
.scan .qr svg{width:220px;height:220px}
.scan .qr.stale svg{opacity:.15}
.scan .status{font-weight:600;margin:.5rem 0}
.scan .status[data-status=scanned],.scan .status[data-status=confirmed]{color:#07c160}
.scan .status[data-status=expired],.scan .status[data-status=cancelled]{color:#fa5151}
.note{color:#888;font-size:.85rem}
.scan .code{overflow-wrap:anywhere;user-select:all}
.phone{text-align:center}
.phone .icon{width:72px;height:72px;margin:1rem auto}
.phone dl{text-align:left;background:#f7f7f7;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.phone dt{color:#888;font-size:.8rem}
.phone dd{margin:0 0 .5rem;overflow-wrap:anywhere}
.phone button{display:block;width:100%;font:inherit;font-weight:600;padding:.8rem;margin:.6rem 0;
border:0;border-radius:8px;cursor:pointer}
.phone .confirm{background:#07c160;color:#fff}
.phone .cancel{background:#f2f2f2;color:#07c160}
.warn{color:#fa5151;font-size:.85rem;text-align:left}
</style>"""

_COMPUTER = (
    '<svg class="icon" viewBox="0 0 72 72" aria-hidden="true"><rect x="8" y="12" width="56" '
    'height="36" rx="3" fill="none" stroke="#07c160" stroke-width="4"/><path d="M26 60h20M36 '
    '48v12" stroke="#07c160" stroke-width="4" stroke-linecap="round"/></svg>'
)

# Polls the status URL; goes to "next" once the phone confirmed; offers a new code at the end.
_SCRIPT = """<script>
(function () {
  var box = document.querySelector("[data-status-url]");
  var url = box.getAttribute("data-status-url");
  var line = document.getElementById("scan-status");
  var renew = document.getElementById("scan-renew");
  var qr = document.getElementById("scan-qr");
  var texts = {
    waiting: "等待扫码 · Waiting for a scan",
    scanned: "已扫码，请在手机上确认 · Scanned: confirm on your phone",
    confirmed: "已确认，正在登录… · Confirmed: logging you in…",
    cancelled: "已在手机上取消 · Cancelled on the phone",
    expired: "二维码已过期 · This code has expired"
  };
  function show(status, text) {
    line.textContent = text || texts[status] || status;
    line.setAttribute("data-status", status);
  }
  function end(status, text) {
    show(status, text);
    qr.classList.add("stale");
    renew.hidden = false;
  }
  function poll() {
    fetch(url, {credentials: "same-origin", cache: "no-store",
                headers: {accept: "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (d.status === "confirmed" && d.next) { show("confirmed"); location.assign(d.next); }
        else if (d.status === "expired" || d.status === "cancelled") { end(d.status); }
        else if (!d.status) { end("expired", d.message); }
        else { show(d.status); setTimeout(poll, 1500); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
</script>"""


def desktop_page(
    *, phone_url: str, qr: str, status_url: str, renew_url: str, max_age: int
) -> HTTPResponse:
    """The desktop's page: `qr`, the QR code of the phone URL (`pages.drawn_qr_code`), a live
    status, a new code at the end."""
    minutes = max(1, round(max_age / 60))
    body = (
        f"{_STYLE}"
        f'<div class="scan" data-scan-url="{escape(phone_url)}" '
        f'data-status-url="{escape(status_url)}">'
        "<p>请用手机微信扫一扫，在手机上确认后，这里会自动登录。</p>"
        '<p class="note">Scan with WeChat on your phone and confirm there: this page then '
        "logs you in.</p>"
        f'<div id="scan-qr" class="qr">{qr}</div>'
        '<details class="note"><summary>无法扫码？ · Cannot scan?</summary>'
        "<p>在手机微信中打开这个地址 · Open this address in WeChat on your phone:</p>"
        f'<p class="code" id="scan-url">{escape(phone_url)}</p></details>'
        '<p id="scan-status" class="status" data-status="waiting" role="status" '
        'aria-live="polite">等待扫码 · Waiting for a scan</p>'
        f'<p id="scan-renew" hidden><a class="button" href="{escape(renew_url)}">获取新的二维码'
        " · Get a new code</a></p>"
        f'<p class="note">二维码 {minutes} 分钟内有效，只能使用一次。只扫你自己在这台电脑上打开的'
        f"二维码。<br>The code works once, for {minutes} min. Only scan a code you opened "
        "yourself on this computer.</p>"
        f"</div>{_SCRIPT}"
    )
    return html_response(200, "微信扫码登录 · Log in with WeChat", body)


def confirm_page(*, site: str, desktop: str, user: WeChatUser, csrf: str) -> HTTPResponse:
    """The phone's question: log this computer in, as me? A POST to the same URL answers."""
    who = user.nickname or f"openid …{user.openid[-6:]}"
    computer = desktop or "未知的浏览器 · an unknown browser"
    body = (
        f'{_STYLE}<div class="phone">{_COMPUTER}'
        "<p>Log in on a computer?</p>"
        "<dl>"
        f"<dt>网站 · Site</dt><dd>{escape(site)}</dd>"
        f"<dt>电脑 · Computer</dt><dd>{escape(computer)}</dd>"
        f"<dt>微信账号 · Account</dt><dd>{escape(who)}</dd>"
        "</dl>"
        '<p class="warn">如果不是你自己刚在电脑上打开的二维码，请点「取消」：确认后，那台电脑将以'
        "你的身份登录。<br>If you did not just open this code yourself on a computer, cancel: "
        "confirming logs that computer in as you.</p>"
        '<form method="post">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button class="confirm" type="submit" name="decision" value="confirm" '
        'id="confirm">确认登录 · Log in</button>'
        '<button class="cancel" type="submit" name="decision" value="cancel" '
        'id="cancel">取消 · Cancel</button>'
        "</form></div>"
    )
    return html_response(200, "在电脑上登录？", body)


def decided_page(*, confirmed: bool, desktop: str) -> HTTPResponse:
    """What the phone sees once it answered."""
    if confirmed:
        title = "已确认登录 · Logged in"
        text = (
            f"<p>{escape(desktop or '电脑')} 即将登录，请回到电脑上继续。</p>"
            '<p class="note">The computer is logging in: go back to it to continue.</p>'
        )
    else:
        title = "已取消登录 · Cancelled"
        text = '<p>电脑没有登录。</p><p class="note">The computer was not logged in.</p>'
    return html_response(200, title, f'{_STYLE}<div class="phone">{_COMPUTER}{text}</div>')
