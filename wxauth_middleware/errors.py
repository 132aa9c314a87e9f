"""The exceptions of wxauth_middleware.

Every failure the middleware can meet while logging someone in is a `WeChatAuthError`. Each
carries an HTTP `status` hint and a short `hint` for the site owner, so one hook (`on_error`)
can render all of them. Bad configuration is a `ConfigurationError`, a `ValueError`, raised at
construction.
"""

from __future__ import annotations

import time
from typing import TypeVar

from .errcodes import ERRCODES, INVALID_CODE_ERRCODES, TELLING, ip_hint, retry_after, rid_of

__all__ = [
    "INVALID_CODE_ERRCODES",
    "AccountUnavailable",
    "ConfigurationError",
    "HostMismatch",
    "InvalidRequest",
    "LoginDeclined",
    "LoginStateError",
    "LoginVetoed",
    "ScanLoginError",
    "StoreUnavailable",
    "TokenUnavailable",
    "UpstreamError",
    "UpstreamResponseError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "WeChatAPIError",
    "WeChatAuthError",
]


_E = TypeVar("_E", bound="WeChatAuthError")


class WeChatAuthError(Exception):
    """Base class: a login could not be completed.

    `status` is the HTTP status the default error page uses; `hint` is what the site owner can
    check (the log and the JSON answer carry it). The visitor reads `title_zh` and `advice_zh`
    (Chinese, first) and `title` and `advice` (English); `title` is also the JSON `message`.
    """

    status: int = 500
    code: str = "wxauth_error"
    title: str = "WeChat login failed"
    title_zh: str = "微信登录失败"
    advice: str = "Something went wrong while logging you in. Try again in a moment."
    advice_zh: str = "登录时出了点问题, 请稍后再试。"
    hint: str = ""
    # The page to offer the visitor to go back to, when the login knows it.
    return_to: str | None = None
    # Seconds before trying again is worth it (the answer's Retry-After), when known.
    retry_after: int | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def leading_back_to(self: _E, return_to: str) -> _E:
        """A copy of this error that offers the visitor `return_to`; this one is unchanged."""
        clone = type(self).__new__(type(self))  # no __init__: the copy keeps every attribute
        clone.__dict__.update(self.__dict__)
        clone.args = self.args
        clone.__cause__, clone.__context__ = self.__cause__, self.__context__
        clone.__traceback__ = self.__traceback__
        clone.return_to = return_to
        return clone


class ConfigurationError(WeChatAuthError, ValueError):
    """The middleware was given options it cannot work with."""

    code = "configuration_error"
    title = "WeChat login is not configured correctly"
    title_zh = "微信登录暂时无法使用"
    advice = "This site's WeChat login is not set up correctly. Please try again later."
    advice_zh = "本网站的微信登录设置有误, 请稍后再试。"


class InvalidRequest(WeChatAuthError):
    """A request the middleware cannot start a login from (e.g. a malformed Host header)."""

    status = 400
    code = "invalid_request"
    title = "This request cannot start a WeChat login"
    title_zh = "无法从这里开始微信登录"
    advice = "Open the site from its usual address and try again."
    advice_zh = "请从网站的常用地址打开, 再试一次。"


class LoginStateError(WeChatAuthError):
    """A callback whose `state` is missing, unknown, expired, tampered or from another browser."""

    status = 400
    code = "invalid_state"
    title = "This login link is no longer valid"
    title_zh = "登录链接已失效"
    advice = (
        "The login was started in another browser, took too long, or the link was opened "
        "twice. Open the page again to log in."
    )
    advice_zh = (
        "登录可能是在另一个浏览器中开始的、用时太久, 或链接被打开了两次。请重新打开页面登录。"
    )
    hint = (
        "The callback's state matched no login-state cookie of this browser: the login was "
        "started in another browser or on another host name (set public_url), took longer "
        "than login_max_age, or the callback was opened twice."
    )


class HostMismatch(LoginStateError):
    """A callback on another host than the one its login started on: the login-state cookie
    stayed with the host of the start (`www.example.com` and `example.com` are two hosts to a
    browser), so this one has none."""

    code = "host_mismatch"
    title = "Open the site at its usual address"
    title_zh = "请从网站的正式地址打开"

    def __init__(self, started: str, returned: str, site: str) -> None:
        self.started, self.returned, self.site = started, returned, site
        self.advice = (
            f"The login started at {started}, but WeChat came back to {returned}. "
            f"Open the site at {site} and log in again."
        )
        self.advice_zh = (
            f"登录是在 {started} 开始的, 但微信返回到了 {returned}。请从 {site} 打开网站, "
            "再登录一次。"
        )
        super().__init__(
            f"the login started at host {started}, but the callback came to host {returned}",
            hint=f"The login started at {started}, but WeChat came back to {returned} "
            f"(public_url is {site}): the login-state cookie stays with the host a login "
            "starts on. Send visitors to public_url's host (redirect the other host names "
            "there), or set public_url to the host visitors use.",
        )


class LoginDeclined(WeChatAuthError):
    """The callback came back without a `code`: the user refused to authorize."""

    status = 403
    code = "login_declined"
    title = "WeChat login was declined"
    title_zh = "你已拒绝微信登录"
    advice = "You chose not to log in with WeChat. Open the page again if you change your mind."
    advice_zh = "你选择了不用微信登录。如果改变主意, 请重新打开页面。"
    hint = "The visitor refused WeChat's authorization (the callback carried no code)."


class LoginVetoed(WeChatAuthError):
    """The application's `on_login` hook refused this user."""

    status = 403
    code = "login_vetoed"
    title = "This account may not log in here"
    title_zh = "这个微信帐号不能在这里登录"
    advice = "The site does not accept this WeChat account."
    advice_zh = "本网站不接受这个微信帐号。"
    hint = "The on_login hook returned False for this user."


class ScanLoginError(WeChatAuthError):
    """A step of a desktop login by scanning (other_browsers="scan") that cannot go on: the
    code expired, was used or cancelled, belongs to another browser, or a confirmation came
    from another site. `code` says which; nobody is logged in."""

    def __init__(self, code: str, message: str) -> None:
        self.status, title, hint = _SCAN_FAILURES[code]
        self.title_zh, _, self.title = title.partition(" · ")
        self.advice_zh, self.advice = hint, ""  # the hint is in both languages
        self.code = code
        super().__init__(message, hint=hint)


# code -> (HTTP status, title, what the visitor can do).
_SCAN_FAILURES: dict[str, tuple[int, str, str]] = {
    "scan_expired": (
        410,
        "二维码已过期 · This code has expired",
        "请在电脑上刷新二维码, 再用微信扫一扫。 Get a new code on the computer and scan it again.",
    ),
    "scan_used": (
        409,
        "二维码已使用 · This code was already used",
        "每个二维码只能登录一次。 Each code logs in once: get a new code on the computer.",
    ),
    "scan_pending": (
        409,
        "还未在手机上确认 · Not confirmed on the phone yet",
        "请在手机上点「确认登录」。 Tap “Log in” on the phone first.",
    ),
    "scan_cancelled": (
        409,
        "登录已取消 · The login was cancelled",
        "这次登录已在手机上取消。 The login was cancelled on the phone: get a new code to retry.",
    ),
    "scan_not_this_browser": (
        403,
        "不是这个浏览器的二维码 · Not this browser's code",
        "这个二维码是在另一个浏览器上生成的, 不能在这里登录。 This code was made for another "
        "browser and cannot log this one in.",
    ),
    "scan_cross_site": (
        403,
        "请求来源不可信 · Refused: not sent from this site",
        "确认只能在本站的确认页上进行。 A login can only be confirmed on this site's own page.",
    ),
    "scan_wechat_required": (
        403,
        "请用微信扫一扫 · Scan it with WeChat",
        "请用手机微信扫描电脑上的二维码。 Scan the code on the computer with WeChat on your phone.",
    ),
    "scan_snapshot": (
        403,
        "请使用完整服务 · Use the full service",
        "页面快照中不能确认登录: 点击屏幕下方的「使用完整服务」。 A snapshot page cannot confirm a "
        "login: tap “use full service” first.",
    ),
}


class WeChatAPIError(WeChatAuthError):
    """WeChat answered with a nonzero `errcode` (in an HTTP 200 response, as it always does)."""

    status = 502
    code = "wechat_error"
    title = "WeChat refused the login"
    title_zh = "微信未能完成登录"
    advice = "Try again. If it keeps happening, tell the site the code below."
    advice_zh = "请再试一次。如果一直这样, 请把下面的错误码告诉网站。"

    def __init__(
        self, errcode: int, errmsg: str, *, endpoint: str, hint: str | None = None
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.endpoint = endpoint
        self.rid = rid_of(errmsg)
        status, known_hint = ERRCODES.get(errcode, (502, "See WeChat's error code reference."))
        self.status = status
        if errcode == 40164:
            known_hint = ip_hint(errmsg)
        if endpoint.startswith("cgi-bin/"):
            # The site's own credentials (the JS-SDK's token and ticket): not a login.
            self.title, self.title_zh = "WeChat refused the site's request", "微信拒绝了网站的请求"
        if errcode in TELLING:
            self.title, self.title_zh, self.advice, self.advice_zh = TELLING[errcode]
        self.retry_after = retry_after(errcode, time.time())
        super().__init__(
            f"WeChat {endpoint} answered errcode {errcode}: {errmsg}",
            hint=known_hint if hint is None else hint,
        )

    @property
    def is_invalid_code(self) -> bool:
        """True for a code that is unknown, already used or expired: restart the login."""
        return self.errcode in INVALID_CODE_ERRCODES


class UpstreamError(WeChatAuthError):
    """WeChat's API could not be used: network failure or an answer that makes no sense."""

    status = 502
    code = "upstream_error"
    title = "WeChat could not be reached"
    title_zh = "暂时连不上微信"
    advice = "WeChat did not answer properly. Try again in a moment."
    advice_zh = "微信没有正常回应, 请稍后再试。"
    hint = "WeChat's API did not answer properly. Try again in a moment."


class UpstreamUnavailable(UpstreamError):
    """The connection to WeChat's API failed."""

    code = "upstream_unavailable"
    hint = (
        "The server could not connect to WeChat's API. Check the server's outbound network "
        "access and the api_base_url option."
    )

    def __init__(self, message: str, *, transient: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        # True when nothing reached WeChat (the connection was refused or never opened), so
        # the call may be repeated without spending the code.
        self.transient = transient


class UpstreamTimeout(UpstreamError):
    """WeChat's API did not answer in time."""

    status = 504
    code = "upstream_timeout"
    title = "WeChat took too long to answer"
    title_zh = "微信响应超时"
    hint = "WeChat's API did not answer in time. Try again in a moment."


class UpstreamResponseError(UpstreamError):
    """WeChat's API answered with something that is not a usable JSON body."""

    code = "upstream_bad_response"


class StoreUnavailable(WeChatAuthError):
    """The session store (Redis) did not answer: nothing was read or changed."""

    status = 503
    code = "store_unavailable"
    title = "Login is unavailable for a moment"
    title_zh = "登录暂时不可用"
    advice = "Login is unavailable for a moment. Try again shortly."
    advice_zh = "登录暂时不可用, 请稍后再试。"
    hint = (
        "The session store (Redis, the redis_url option) could not be reached. Try again in a "
        "moment; the site's operators should check that Redis is up and reachable."
    )


class AccountUnavailable(WeChatAuthError):
    """The `accounts` callable did not say in time which account serves the request's host
    (it failed, was too slow, or answered something unusable): nothing was decided for it."""

    status = 503
    code = "account_unavailable"
    title = "Login is unavailable for a moment"
    title_zh = "登录暂时不可用"
    advice = "Login is unavailable for a moment. Try again shortly."
    advice_zh = "登录暂时不可用，请稍后再试。"  # noqa: RUF001
    hint = (
        "The accounts callable (accounts=...) failed, answered something other than an "
        "OfficialAccount or None, or did not answer within http_timeout seconds, for this "
        "host: see the log."
    )


class TokenUnavailable(WeChatAuthError):
    """No usable WeChat token is kept for this user: they must log in again."""

    status = 401
    code = "token_unavailable"
    title = "Log in with WeChat again"
    title_zh = "请重新用微信登录"
    advice = "Open the page again to log in with WeChat."
    advice_zh = "请重新打开页面, 用微信登录。"
    hint = (
        "No WeChat token is kept for this user (keep_tokens is off, they never logged in, were "
        "revoked, or their 30-day refresh_token expired): send them through a login again."
    )
