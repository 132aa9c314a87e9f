"""A WeCom (企业微信) app the middleware logs a company's staff in with: the `WeComApp` value
of the `accounts` option, checked once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..hosts import checked_host

__all__ = [
    "WECOM_API_BASE_URL",
    "WECOM_OTHER_BROWSERS",
    "WECOM_SCOPES",
    "WECOM_SSO_URL",
    "WeComApp",
    "WeComScope",
]

# A corp id: "ww" and 16 hexadecimal digits (older corps: "wx" and 16).
_CORP_ID = re.compile(r"^w[wx][0-9a-f]{16}$")
WeComScope = Literal["snsapi_base", "snsapi_privateinfo"]
WECOM_SCOPES: tuple[WeComScope, ...] = get_args(WeComScope)
# What a WeCom app does with other browsers (desktop browsers, WeChat's on a host of its own).
WECOM_OTHER_BROWSERS = ("pass", "refuse", "wecom_qr")
WECOM_AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
WECOM_API_BASE_URL = "https://qyapi.weixin.qq.com"
WECOM_SSO_URL = "https://login.work.weixin.qq.com/wwlogin/sso/login"


@dataclass(frozen=True, slots=True)
class WeComApp:
    """One self-built app (自建应用) of a WeCom corp: its staff log in to the hosts it serves.

    `corp_id` is the corp's id (我的企业 > 企业信息), `agent_id` the app's AgentId and `secret`
    its Secret (应用管理 > the app); the token, and so the cache of it, is the app's own.
    `scope` is "snsapi_base" (silent) or "snsapi_privateinfo" (asks the member for their
    avatar, mobile, e-mail...). `other_browsers`: None keeps the middleware's ("pass" or
    "refuse"); "wecom_qr" sends other browsers to WeCom's desktop login (a QR code, or at
    once from a logged-in WeCom desktop client). The secret is never in a repr.
    """

    corp_id: str
    agent_id: int
    secret: str = field(repr=False)
    hosts: Sequence[str] = ()
    scope: WeComScope = "snsapi_base"
    public_url: str | None = None
    other_browsers: str | None = None
    authorize_url: str = WECOM_AUTHORIZE_URL
    api_base_url: str = WECOM_API_BASE_URL
    sso_url: str = WECOM_SSO_URL

    def __post_init__(self) -> None:
        if not isinstance(self.corp_id, str) or not _CORP_ID.match(self.corp_id):
            raise ConfigurationError(
                f"WeComApp corp_id {self.corp_id!r} is not a corp id: use the CorpID of "
                "WeCom's admin console (我的企业 > 企业信息), 'ww' and 16 hexadecimal digits."
            )
        agent = self.agent_id
        if isinstance(agent, bool) or not isinstance(agent, int) or agent <= 0:
            raise ConfigurationError(
                f"WeComApp {self.corp_id}: agent_id must be the app's AgentId, a positive "
                f"int such as 1000002 (应用管理 > the app), not {agent!r}."
            )
        if not isinstance(self.secret, str) or not self.secret:
            raise ConfigurationError(
                f"WeComApp {self.label}: secret is required (the app's Secret, 应用管理 > "
                "the app; each app has its own)."
            )
        if any(c.isspace() for c in self.secret):
            raise ConfigurationError(
                f"WeComApp {self.label}: secret contains white space: check for a stray copy."
            )
        if self.scope not in WECOM_SCOPES:
            raise ConfigurationError(
                f"WeComApp {self.label}: scope must be 'snsapi_base' or 'snsapi_privateinfo', "
                f"not {self.scope!r}."
            )
        if self.other_browsers is not None and self.other_browsers not in WECOM_OTHER_BROWSERS:
            raise ConfigurationError(
                f"WeComApp {self.label}: other_browsers must be None, "
                f"{', '.join(repr(p) for p in WECOM_OTHER_BROWSERS)}, not "
                f"{self.other_browsers!r}."
            )
        for name in ("authorize_url", "api_base_url", "sso_url"):
            _check_url(self.label, name, getattr(self, name))
        object.__setattr__(self, "api_base_url", self.api_base_url.rstrip("/"))
        if isinstance(self.hosts, str) or not isinstance(self.hosts, Sequence):
            raise ConfigurationError(
                f"WeComApp {self.label}: hosts must be a list of host names, not "
                f"{self.hosts!r} (write hosts=['oa.example.com'])."
            )
        object.__setattr__(
            self, "hosts", tuple(checked_host(f"WeComApp {self.label}", h) for h in self.hosts)
        )
        if len(set(self.hosts)) != len(self.hosts):
            raise ConfigurationError(f"WeComApp {self.label}: a host is listed twice.")

    @property
    def label(self) -> str:
        """The app as logs and messages name it: corp id and agent id."""
        return f"{self.corp_id}/{self.agent_id}"

    @property
    def key(self) -> str:
        """The app's key in caches and Redis keys: its token is per corp AND agent."""
        return f"{self.corp_id}:{self.agent_id}"


def _check_url(label: str, name: str, value: object) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"WeComApp {label}: {name} must be an absolute http(s) URL, not {value!r}."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            f"WeComApp {label}: {name} must have no query, fragment or credentials: {value!r}."
        )
