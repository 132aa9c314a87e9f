"""Validation of the authorize and qrconnect links, done on the raw query string as WeChat does.

WeChat regex-matches the link, so parameter order and encoding matter, not just values.
Pure functions: no I/O, so the GET page and the consent POST validate identically.

Two products share the link format: the Official Account's web authorization
(``/connect/oauth2/authorize``, scopes snsapi_base / snsapi_userinfo) and the Open Platform's
website QR-code login (``/connect/qrconnect``, scope snsapi_login, a "website app" appid).
Each refuses the other's appid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

__all__ = [
    "QRCONNECT_SCOPE",
    "SCOPES",
    "AuthorizeRejection",
    "AuthorizeRequest",
    "callback_url",
    "parse_authorize_query",
    "parse_qrconnect_query",
]

#: The Official Account's web authorization scopes.
SCOPES = ("snsapi_base", "snsapi_userinfo")
#: The one scope of website QR-code login.
QRCONNECT_SCOPE = "snsapi_login"
_ORDER = ("appid", "redirect_uri", "response_type", "scope")
# Reserved characters that must arrive percent-encoded inside redirect_uri. Sub-delimiters
# such as "!*'()" are allowed raw because encodeURIComponent leaves them alone.
_RAW_RESERVED = re.compile(r"[:/?#\[\]@=\s]|%(?![0-9A-Fa-f]{2})")
_STATE_RE = re.compile(r"[A-Za-z0-9]{0,128}")


@dataclass(frozen=True)
class AuthorizeRequest:
    """A link WeChat would accept. `query` is the raw query string, kept for the consent form."""

    app_id: str
    redirect_uri: str
    scope: str
    state: str
    force_popup: bool
    query: str

    @property
    def redirect_host(self) -> str:
        return urlsplit(self.redirect_uri).netloc


@dataclass(frozen=True)
class AuthorizeRejection:
    """A link WeChat would refuse on its own page.

    `marker` goes into ``<meta name="wechat-error">``: WeChat's numeric code where it has one,
    otherwise a stable slug.
    """

    marker: str
    title: str
    detail: str


def _reject(marker: str, title: str, detail: str) -> AuthorizeRejection:
    return AuthorizeRejection(marker, title, detail)


def parse_authorize_query(
    raw_query: str,
    *,
    app_ids: Collection[str],
    domains: Collection[str],
    website_app_id: str | None = None,
) -> AuthorizeRequest | AuthorizeRejection:
    """Check an Official-Account authorize query string the way WeChat does, in WeChat's order.

    `domains` are lower-case hostnames. The redirect_uri's port is ignored (WeChat only allows
    80/443): a deliberate divergence so local development on any port works. The website app's
    appid (`website_app_id`) gets WeChat's 10016; an appid not among the registered Official
    Accounts' (`app_ids`) gets 40013.
    """
    known = ", ".join(app_ids)

    def check_appid(appid: str) -> AuthorizeRejection | None:
        if website_app_id is not None and appid == website_app_id:
            return _reject(
                "10016",
                "10016: 不支持微信开放平台的Appid, 请使用公众号Appid / "
                "an Open-Platform (website) appid cannot be used here",
                f"{appid} is the website app's appid: it logs in with the QR code "
                f"(/connect/qrconnect, scope snsapi_login). Web authorization inside WeChat "
                f"needs an Official Account's appid ({known}).",
            )
        if appid not in app_ids:
            return _reject(
                "40013",
                "appid 无效 (40013) / invalid appid",
                f"This emulator's Official Accounts have the appids {known}.",
            )
        return None

    return _parse(
        raw_query,
        domains=domains,
        check_appid=check_appid,
        scopes=SCOPES,
        scope_rejection=_reject(
            "10005",
            "10005: 此公众号并没有这些scope的权限 / the account lacks this scope",
            f"scope must be one of {', '.join(SCOPES)}.",
        ),
    )


def parse_qrconnect_query(
    raw_query: str,
    *,
    website_app_id: str | None,
    app_ids: Collection[str],
    domains: Collection[str],
) -> AuthorizeRequest | AuthorizeRejection:
    """Check a website QR-code login (qrconnect) query string like `parse_authorize_query`.

    The appid must be the website app's (`website_app_id`; None: there is none). The Official
    Account's appid gets the page real WeChat shows for that mistake, "Scope 参数错误或没有
    Scope 权限" (WeChat gives it no number; the marker is "not-website-app"); any other appid
    gets 40013, and any scope but snsapi_login 10005.
    """

    def check_appid(appid: str) -> AuthorizeRejection | None:
        if appid in app_ids:
            return _reject(
                "not-website-app",
                "Scope 参数错误或没有 Scope 权限 / this appid is not a website app",
                f"{appid} is the Official Account's appid. Website QR-code login needs the "
                "appid of a website app (网站应用) registered on the Open Platform"
                + (f": {website_app_id}." if website_app_id is not None else "; there is none."),
            )
        if website_app_id is None or appid != website_app_id:
            known = (
                f"This emulator's website app has the appid {website_app_id}."
                if website_app_id is not None
                else "This emulator has no website app."
            )
            return _reject("40013", "appid 无效 (40013) / invalid appid", known)
        return None

    return _parse(
        raw_query,
        domains=domains,
        check_appid=check_appid,
        strict_order=False,
        scopes=(QRCONNECT_SCOPE,),
        scope_rejection=_reject(
            "10005",
            "10005: Scope 参数错误或没有 Scope 权限 / the website app lacks this scope",
            f"Website QR-code login takes scope={QRCONNECT_SCOPE} only; snsapi_base and "
            "snsapi_userinfo belong to the Official Account's authorize link.",
        ),
    )


def _parse(
    raw_query: str,
    *,
    domains: Collection[str],
    check_appid: Callable[[str], AuthorizeRejection | None],
    scopes: tuple[str, ...],
    scope_rejection: AuthorizeRejection,
    strict_order: bool = True,
) -> AuthorizeRequest | AuthorizeRejection:
    pairs = [segment.partition("=")[::2] for segment in raw_query.split("&")]
    names = [name for name, _ in pairs]
    raw = dict(reversed(pairs))  # the first occurrence wins
    duplicated = any(names.count(name) > 1 for name in (*_ORDER, "state"))
    if strict_order:
        has_state = "state" in names
        order_ok = tuple(names[:4]) == _ORDER and (not has_state or names[4:5] == ["state"])
        if not order_ok or duplicated:
            return _reject(
                "link-unavailable",
                "该链接无法访问 / This link cannot be opened",
                "Parameters must come in this order: appid, redirect_uri, response_type, "
                "scope, state (optional), then any others; each once.",
            )
    else:
        # qrconnect has no documented order: WeChat's own wxLogin.js sends appid, scope,
        # redirect_uri, state, login_type, ... and no response_type; others put state first.
        missing = [name for name in ("appid", "redirect_uri", "scope") if name not in raw]
        if missing or duplicated:
            return _reject(
                "link-unavailable",
                "该链接无法访问 / This link cannot be opened",
                "The link needs appid, redirect_uri and scope (response_type=code and state "
                "are optional), in any order, each once"
                + (f"; missing: {', '.join(missing)}." if missing else "."),
            )
        raw.setdefault("response_type", "code")

    value = {name: unquote_plus(raw_value) for name, raw_value in raw.items()}
    if not value["appid"]:
        return _reject("10012", "10012: appid 参数为空 / appid is empty", "Pass appid.")
    appid_rejection = check_appid(value["appid"])
    if appid_rejection is not None:
        return appid_rejection
    if not raw["redirect_uri"]:
        return _reject(
            "10011", "10011: redirect_uri 参数为空 / redirect_uri is empty", "Pass redirect_uri."
        )
    if _RAW_RESERVED.search(raw["redirect_uri"]):
        return _reject(
            "redirect-uri-invalid",
            "redirect_uri 参数错误 / redirect_uri is not percent-encoded",
            "Encode the whole URL, '/' and ':' included, like quote(uri, safe='').",
        )
    redirect_uri = value["redirect_uri"]
    parts = urlsplit(redirect_uri)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return _reject(
            "redirect-uri-invalid",
            "redirect_uri 参数错误 / redirect_uri is not an http(s) URL",
            "redirect_uri must be an absolute http:// or https:// URL.",
        )
    if host not in domains:
        return _reject(
            "10003",
            "10003: redirect_uri 域名与后台配置不一致 / redirect_uri domain mismatch",
            f"The host {host!r} is not a registered web authorization domain "
            f"({', '.join(sorted(domains))}).",
        )
    if value["response_type"] != "code":
        return _reject(
            "response-type-invalid",
            "response_type 参数错误 / response_type must be code",
            "Pass response_type=code.",
        )
    scope = value["scope"]
    if not scope:
        return _reject("10010", "10010: scope 参数为空 / scope is empty", "Pass scope.")
    if scope not in scopes:
        return scope_rejection
    # Checked raw: a percent-escape is already outside [A-Za-z0-9].
    state = raw.get("state", "")
    if not _STATE_RE.fullmatch(state):
        return _reject(
            "state-invalid",
            "state 参数错误 / invalid state",
            "state is at most 128 characters of a-z, A-Z, 0-9.",
        )
    return AuthorizeRequest(
        app_id=value["appid"],
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        force_popup=value.get("forcePopup", "").lower() == "true",
        query=raw_query,
    )


def callback_url(redirect_uri: str, params: list[tuple[str, str]]) -> str:
    """Append `params` to redirect_uri's query ('?' or '&'), keeping any fragment."""
    parts = urlsplit(redirect_uri)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))
