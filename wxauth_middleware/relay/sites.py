"""The sites a relay serves: each its id, its secret(s) and its one callback URL, checked once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..urls import check_origin, check_url

__all__ = [
    "RELAY_BROWSERS",
    "RelayBrowsers",
    "RelaySite",
    "check_relay_url",
    "check_site_relay",
    "checked_sites",
    "relay_secret_bytes",
]

# Whose in-app browsers a site sends to its relay: WeChat's, WeCom's, or both (the relay
# logs them in with its Official Account and its WeCom app).
RelayBrowsers = Literal["wechat", "wecom", "both"]
RELAY_BROWSERS: tuple[RelayBrowsers, ...] = get_args(RelayBrowsers)
_SITE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A relay secret: long enough that nobody guesses it (it signs every start and redemption).
MIN_SECRET = 32
_LOCAL_SUFFIXES = (".localhost", ".test")
_HOST = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")


@dataclass(frozen=True, slots=True)
class RelaySite:
    """A site the relay logs visitors in for.

    `site_id` names it in its start links and redemptions (letters, digits, `_` and `-`).
    `secret` signs them: at least 32 characters, shared with the site's `relay_secret`; a list
    (newest first) while one is being rotated. `callback_url` is the one address the relay
    sends the site's visitors back to (the site's `public_url` + `callback_path`), exactly: no
    wildcard, no other path. `max_logins_per_minute` bounds the logins the site can start and
    redeem a minute (a site gone wrong, or a stolen start link replayed, cannot spend the
    account's quota for every site); over it, a 429.
    """

    site_id: str
    secret: str | Sequence[str] = field(repr=False)
    callback_url: str
    max_logins_per_minute: int = 600
    secrets: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.site_id, str) or not _SITE_ID.fullmatch(self.site_id):
            raise ConfigurationError(
                f"RelaySite site_id {self.site_id!r} must be 1 to 64 letters, digits, '_' or '-'."
            )
        owner = f"RelaySite {self.site_id!r}"
        values = [self.secret] if isinstance(self.secret, str) else list(self.secret)
        if not values:
            raise ConfigurationError(f"{owner}: secret must not be empty.")
        object.__setattr__(
            self, "secrets", tuple(relay_secret_bytes(f"{owner} secret", s) for s in values)
        )
        url = check_relay_url(f"{owner} callback_url", self.callback_url)
        if urlsplit(url).path in ("", "/"):
            raise ConfigurationError(
                f"{owner}: callback_url must be the site's callback, such as "
                f"'https://shop.example.com/wxauth/callback', not {url!r}."
            )
        object.__setattr__(self, "callback_url", url)
        limit = self.max_logins_per_minute
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1_000_000:
            raise ConfigurationError(
                f"{owner}: max_logins_per_minute must be 1 to 1000000, not {limit!r}."
            )


def relay_secret_bytes(name: str, value: object) -> bytes:
    """A relay secret as bytes; ConfigurationError naming `name` if it is not one."""
    if not isinstance(value, str) or len(value) < MIN_SECRET:
        raise ConfigurationError(
            f"{name} must be a string of at least {MIN_SECRET} characters (make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    return value.encode("utf-8")


def check_relay_url(name: str, value: object) -> str:
    """An absolute URL of a relay or a site: https, or http on this machine's own names
    (localhost, *.localhost, *.test, 127.0.0.1), where browsers and the emulator run."""
    url = check_url(name, value).rstrip("/")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not _HOST.fullmatch(host):
        raise ConfigurationError(f"{name} must name one host (no wildcard): {url!r}.")
    local = host in ("localhost", "127.0.0.1", "::1") or host.endswith(_LOCAL_SUFFIXES)
    if parts.scheme != "https" and not local:
        raise ConfigurationError(
            f"{name} must be an https URL: tickets and the relay's answers cross the network "
            f"({url!r}; http only on localhost, *.localhost and *.test, for development)."
        )
    return url


def checked_sites(sites: object) -> dict[str, RelaySite]:
    """The relay's `sites` option, by id; ConfigurationError for anything else."""
    if isinstance(sites, RelaySite) or not isinstance(sites, Sequence) or not sites:
        raise ConfigurationError("sites must be a non-empty list of RelaySite(...).")
    by_id: dict[str, RelaySite] = {}
    for site in sites:
        if not isinstance(site, RelaySite):
            raise ConfigurationError(f"sites must hold RelaySite(...) only, not {site!r}.")
        if site.site_id in by_id:
            raise ConfigurationError(f"sites: site_id {site.site_id!r} is given twice.")
        by_id[site.site_id] = site
    return by_id


def check_site_relay(
    relay_url: object,
    relay_site_id: object,
    relay_secret: object,
    *,
    has_accounts: bool,
    other_browsers: set[str],
    keep_tokens: bool,
    browsers: object = "wechat",
) -> str | None:
    """A site's relay options: all three or none, and with options a relayed login can
    serve (`other_browsers`: the site's policies and its rules'). Returns relay_url as kept."""
    values = {"relay_url": relay_url, "relay_site_id": relay_site_id, "relay_secret": relay_secret}
    missing = [name for name, value in values.items() if value is None]
    if browsers not in RELAY_BROWSERS:
        raise ConfigurationError(
            f"relay_browsers must be one of {', '.join(RELAY_BROWSERS)}, not {browsers!r}."
        )
    if len(missing) == len(values):
        if browsers != "wechat":
            raise ConfigurationError(
                "relay_browsers needs relay_url (and the other relay_ options)."
            )
        return None
    if missing:
        raise ConfigurationError(
            f"{', '.join(missing)} missing: a site logs in through a relay with relay_url, "
            "relay_site_id and relay_secret together (the relay's RelaySite has the same id "
            "and secret)."
        )
    url = check_origin("relay_url", check_relay_url("relay_url", relay_url))
    if not isinstance(relay_site_id, str) or not _SITE_ID.fullmatch(relay_site_id):
        raise ConfigurationError(
            f"relay_site_id {relay_site_id!r} must be 1 to 64 letters, digits, '_' or '-'."
        )
    relay_secret_bytes("relay_secret", relay_secret)
    if has_accounts:
        raise ConfigurationError(
            "relay_url serves one site: a middleware with accounts=... logs in with its own "
            "accounts (give each site its own middleware and RelaySite)."
        )
    if not other_browsers <= {"pass", "refuse"}:
        raise ConfigurationError(
            "with relay_url, other_browsers (and the rules' other_browsers) must be 'pass' or "
            "'refuse': the relay logs in visitors in WeChat's browser; desktop logins "
            "(qrconnect, scan, wecom_qr) need the site's own registered domain."
        )
    if keep_tokens:
        raise ConfigurationError(
            "keep_tokens=True cannot work with relay_url: the relay never passes WeChat's "
            "tokens to a site."
        )
    return url
