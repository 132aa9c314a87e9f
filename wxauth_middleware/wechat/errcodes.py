"""What WeChat's errcodes mean for a site: the status of the error page, the hint for the site
owner, what the visitor reads when "try again" would not help, and when to retry."""

# Chinese sentences here use Chinese (full-width) punctuation, which RUF001 takes for look-alikes.

from __future__ import annotations

import re

__all__ = [
    "ERRCODES",
    "INVALID_CODE_ERRCODES",
    "TELLING",
    "caller_ip_of",
    "ip_hint",
    "retry_after",
    "rid_of",
]

# Errors that a retry does not cure right away: what the visitor reads instead of "try again".
# errcode -> (title, title_zh, advice, advice_zh)
TELLING: dict[int, tuple[str, str, str, str]] = {
    40164: (
        "This site's WeChat settings need fixing",
        "网站的微信设置有误",
        "WeChat refused this site's server (its address is not on the Official Account's IP "
        "allow-list). Please tell the site's administrator.",
        "微信拒绝了本网站服务器的请求（服务器 IP 不在公众号的 IP 白名单中）。请告知网站管理员。",
    ),
    45009: (
        "WeChat's daily limit for this site is used up",
        "网站今天的微信接口调用次数已用完",
        "The site has used up today's WeChat calls. Please try again later (the limit resets "
        "at midnight, China time).",
        "网站今天的微信接口调用次数已达上限，请稍后再试（北京时间零点恢复）。",
    ),
    45011: (
        "WeChat is being asked too often",
        "微信接口调用太频繁",
        "Too many requests to WeChat in this minute. Please try again in a minute.",
        "这一分钟内对微信的请求太多，请一分钟后再试。",
    ),
}
_BEIJING_OFFSET = 8 * 3600


def retry_after(errcode: int, now: float) -> int | None:
    """When a quota error clears: 45011 at the next minute, 45009 at midnight Beijing time."""
    if errcode == 45011:
        return 60 - int(now) % 60
    if errcode == 45009:
        return 86400 - int(now + _BEIJING_OFFSET) % 86400
    return None


def caller_ip_of(errmsg: str) -> str | None:
    """The address a 40164's message says WeChat saw, or None."""
    # "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: ..."
    match = re.match(r"invalid ip ([0-9A-Fa-f.:]+)[ ,]", errmsg)
    return match.group(1) if match else None


def ip_hint(errmsg: str) -> str:
    """What the site owner reads for a 40164 (`errmsg`: WeChat's message, naming the address)."""
    address = caller_ip_of(errmsg)
    seen = (
        f"WeChat saw this server's outbound address as {address}"
        if address
        else "WeChat did not say which address it saw"
    )
    return (
        f"WeChat refused the server's IP address (errcode 40164): {seen}. Add every server's "
        "outbound address to the Official Account's IP allow-list (mp.weixin.qq.com: "
        "设置与开发 → 基本配置 → IP白名单); it takes effect within minutes. Retrying does not "
        "help until then."
    )


# Codes that mean "this code can't be exchanged": restart the login (once).
INVALID_CODE_ERRCODES = frozenset({40029, 40163, 42003})

# Where the site owner finds the AppSecret to put in app_secret.
_FIND_IN_CONSOLE = (
    "Set app_secret to the AppSecret (开发者密码) of the Official Account's console, "
    "设置与开发 → 基本配置 (shown once, when reset); for a 测试号, the appsecret on its "
    "sandbox page."
)

# errcode -> (HTTP status for the error page, what the site owner should check).
ERRCODES: dict[int, tuple[int, str]] = {
    -1: (503, "WeChat is busy (errcode -1). Try again in a moment."),
    40001: (
        500,
        "WeChat says the access_token is invalid or not the latest (errcode 40001): something "
        "else fetches this account's token (another program calling /cgi-bin/token or "
        "stable_token with force_refresh) and replaces it. Let one place own the token (every "
        "instance sharing it through redis_url) and use stable_token. In old reports 40001 also "
        "meant a wrong app_secret: check it against the Official Account's settings.",
    ),
    40002: (500, "WeChat rejected the grant_type (errcode 40002)."),
    40003: (502, "WeChat says the openid is invalid (errcode 40003)."),
    40013: (
        500,
        "WeChat does not know this AppID (errcode 40013): check app_id, the Official "
        "Account's AppID (开发者ID) under 设置与开发 → 基本配置 (a 测试号: appID on its "
        "sandbox page).",
    ),
    40029: (400, "The login code was invalid or already used (errcode 40029). Log in again."),
    40030: (400, "The refresh_token is invalid (errcode 40030). Log in again."),
    40125: (
        500,
        "WeChat rejected the AppSecret (errcode 40125, invalid appsecret): app_secret is wrong, "
        "or the secret was reset. " + _FIND_IN_CONSOLE,
    ),
    40163: (400, "The login code was already used (errcode 40163). Log in again."),
    40164: (500, ip_hint("")),
    41008: (400, "The callback carried no code (errcode 41008)."),
    42001: (400, "The access_token expired (errcode 42001). Log in again."),
    42002: (400, "The refresh_token expired (errcode 42002). Log in again."),
    42003: (400, "The login code expired (errcode 42003). Log in again."),
    45009: (
        503,
        "WeChat's daily quota for this API is used up (errcode 45009): it resets at midnight "
        "Beijing time. Cache the account's access_token and jsapi_ticket (this middleware "
        "does); an administrator may reset the quota with /cgi-bin/clear_quota (ten times a "
        "month).",
    ),
    45011: (
        503,
        "WeChat's per-minute quota for this API is used up (errcode 45011): calls succeed "
        "again next minute.",
    ),
    48001: (
        500,
        "The account may not call this API (errcode 48001): userinfo needs the snsapi_userinfo "
        "scope, which a verified Service Account has.",
    ),
    50001: (403, "The user has not authorized this API (errcode 50001)."),
    # Third-party platforms (第三方平台).
    61003: (403, "The account has not authorized the platform (errcode 61003)."),
    61004: (
        500,
        "WeChat refused the server's IP address for the platform (errcode 61004): add the "
        "servers' outbound addresses to the platform's IP allowlist (开发资料 > 白名单).",
    ),
    61023: (403, "The account's refresh token is invalid (61023): its admin must authorize again."),
}


def rid_of(errmsg: str) -> str | None:
    # WeChat ends errmsg with ", rid: <id>"; the rid is what WeChat support asks for.
    marker = "rid:"
    at = errmsg.rfind(marker)
    if at < 0:
        return None
    rid = errmsg[at + len(marker) :].strip()
    return rid or None
