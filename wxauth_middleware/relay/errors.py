"""What a relay refuses, and what a site is told when its ticket yields no user."""

from __future__ import annotations

from ..errors import ConfigurationError, LoginStateError, WeChatAuthError

__all__ = [
    "RelayConfigurationRefused",
    "RelayRateLimited",
    "RelayRefused",
    "RelayTicketRefused",
]


class RelayRefused(WeChatAuthError):
    """A request the relay will not serve: a start link unsigned, tampered, expired, of an
    unknown site or with another return address; a redemption it cannot vouch for."""

    status = 403
    code = "relay_refused"
    title = "This login link is not valid"
    title_zh = "登录链接无效"
    advice = "Go back to the site you came from and open its page again to log in."
    advice_zh = "请回到原来的网站，重新打开页面登录。"

    def __init__(self, message: str, *, status: int = 403, code: str = "relay_refused") -> None:
        super().__init__(message, hint=message)
        self.status = status
        self.code = code


class RelayRateLimited(WeChatAuthError):
    """A site started or redeemed more logins this minute than its `max_logins_per_minute`."""

    status = 429
    code = "relay_rate_limited"
    title = "Too many logins right now"
    title_zh = "登录人数过多"
    advice = "Too many people are logging in to this site right now. Try again in a minute."
    advice_zh = "此刻登录本网站的人过多，请一分钟后再试。"
    retry_after = 60


class RelayTicketRefused(LoginStateError):
    """The site's callback came with a ticket the relay gave no user for: used already, too
    late, another site's, or another browser's."""

    code = "relay_ticket_refused"
    hint = (
        "The relay refused the callback's ticket: it was redeemed already (a reload, a "
        "shared link), came after its 60 seconds, belongs to another site, or the login was "
        "started in another browser (this one's login-state cookie has no nonce of it)."
    )


class RelayConfigurationRefused(ConfigurationError):
    """The relay refused the site's redemption itself: its relay_site_id, relay_secret or
    clock are not what the relay has."""

    code = "relay_configuration"

    def __init__(self, message: str, error: str) -> None:
        super().__init__(
            f"the relay refused this site's redemption ({error}): {message}",
            hint="Check relay_site_id and relay_secret against the relay's RelaySite, and "
            "that this server's clock is right (redemptions are valid 5 minutes).",
        )
