"""The middleware's options, validated once at construction into a frozen object."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, InitVar, dataclass, field, fields
from typing import TYPE_CHECKING, Literal, get_args

from .accounts import APP_ID, Accounts, check_app_id, check_credentials, checked_accounts
from .errors import ConfigurationError
from .keys import secret_keys
from .relay.sites import RelayBrowsers, check_site_relay
from .rules import OTHER_BROWSER_POLICIES, OtherBrowsers, PagePolicy, Rule, RuleSet
from .scopes import SCOPES, Scope
from .storage.redis_client import check_redis_url
from .urls import check_origin, check_path, check_url, path_matches
from .wecom.app import WeComApp

if TYPE_CHECKING:
    import httpx

    from .errors import WeChatAuthError
    from .messages import HTTPRequest, HTTPResponse
    from .user import WeChatUser

__all__ = [
    "OPTIONS",
    "REQUIRED",
    "WECHAT_AUTHORIZE_HOST",
    "Config",
    "ErrorHandler",
    "Identity",
    "Lang",
    "LoginHook",
    "SnapshotUsers",
]

# The choices of the options that take one.
Lang = Literal["zh_CN", "zh_TW", "en"]
Identity = Literal["openid", "unionid"]
SnapshotUsers = Literal["interstitial", "app"]
LANGS: tuple[Lang, ...] = get_args(Lang)
IDENTITY_KEYS: tuple[Identity, ...] = get_args(Identity)
SNAPSHOT_MODES: tuple[SnapshotUsers, ...] = get_args(SnapshotUsers)

ErrorHandler = Callable[["WeChatAuthError", "HTTPRequest"], "HTTPResponse | None"]
# on_login(user, request): None/True accepts, False vetoes; may be async.
LoginHook = Callable[["WeChatUser", "HTTPRequest"], object]
# WeChat's (MP_verify_, an Official Account's domain) and WeCom's (WW_verify_, a 可信域名).
_VERIFY_FILE = re.compile(r"(?:MP|WW)_verify_[A-Za-z0-9]{1,64}\.txt")

# RFC 6265 cookie-name token characters.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")
# The host of WeChat's own authorize pages.
WECHAT_AUTHORIZE_HOST = "open.weixin.qq.com"
# No braces: the store's keys carry their own hash tags (Redis Cluster).
_REDIS_PREFIX = re.compile(r"^[!-z|~]{0,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Validated options shared by the ASGI and WSGI middleware.

    Its fields up to `relay_browsers` are the options, written here once: the middleware's
    signature, the `WXAUTH_*` environment variables and the table of docs/options.md are
    checked against them (tests/test_options.py). Raises `ConfigurationError` (a `ValueError`)
    saying what to fix.
    """

    app_id: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    accounts: Accounts | None = field(default=None, repr=False)  # thousands, maybe
    secret_key: str | bytes | Sequence[str | bytes] = field(repr=False)
    scope: Scope = "snsapi_base"
    callback_path: str = "/wxauth/callback"
    public_url: str | None = None
    authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    api_base_url: str = "https://api.weixin.qq.com"
    session_cookie: str = "wxauth_session"
    max_age: int | None = 14 * 24 * 3600
    cookie_domain: str | None = None
    cookie_path: str = "/"
    https_only: bool = False
    login_max_age: int = 600
    lang: Lang = "zh_CN"
    http_timeout: float = 10.0
    login_timeout: float = 20.0
    retries: int = 2
    max_connections: int = 20
    on_error: ErrorHandler | None = field(default=None, repr=False)
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = field(
        default=None, repr=False
    )
    rules: Sequence[Rule] = ()
    other_browsers: OtherBrowsers = "pass"
    website_app_id: str | None = None
    website_app_secret: str | None = field(default=None, repr=False)
    qrconnect_url: str = "https://open.weixin.qq.com/connect/qrconnect"
    login_path: str | None = "/wxauth/login"
    logout_path: str | None = "/wxauth/logout"
    snapshot_users: SnapshotUsers = "interstitial"
    on_login: LoginHook | None = field(default=None, repr=False)
    identity: Identity = "openid"
    # None (the middleware's default) is no files.
    verify_files: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The URL may carry Redis's password: not in the repr.
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "wxauth:"
    keep_tokens: bool = False
    scan_path: str = "/wxauth/scan"
    scan_max_age: int = 180
    jssdk_path: str | None = "/wxauth/jssdk"
    jssdk_script_url: str | None = None
    platform_events_path: str | None = "/wxauth/platform/events"
    relay_url: str | None = None
    relay_site_id: str | None = None
    relay_secret: str | None = field(default=None, repr=False)
    relay_browsers: RelayBrowsers = "wechat"
    # Not an option: an account of a third-party platform, which has no AppSecret (set by
    # routing.account_config).
    on_behalf: InitVar[bool] = False
    # Derived, normalised forms.
    secret_keys: tuple[bytes, ...] = field(init=False, repr=False)
    rule_set: RuleSet = field(init=False, repr=False)
    default_policy: PagePolicy = field(init=False, repr=False)

    def __post_init__(self, on_behalf: bool) -> None:
        one = self.app_id or self.app_secret
        if self.accounts is not None:
            object.__setattr__(self, "accounts", checked_accounts(self.accounts, one))
        elif on_behalf or (self.app_secret is None and self._relayed):
            # A site logging in through a relay needs no account of its own; its app_id, if
            # given, is the relay's account's (see relay/client.py).
            if self.app_id is not None or on_behalf:
                check_app_id(self.app_id)
        else:
            check_credentials(self.app_id, self.app_secret)
        object.__setattr__(self, "secret_keys", secret_keys(self.secret_key))
        if self.scope not in SCOPES:
            raise ConfigurationError(
                f"scope must be 'snsapi_base' or 'snsapi_userinfo', not {self.scope!r}."
            )
        check_path("callback_path", self.callback_path)
        check_path("cookie_path", self.cookie_path)
        check_url("authorize_url", self.authorize_url)
        if self.public_url is not None:
            # A port other than 80/443 with WeChat's own pages is said at startup, not
            # refused: a 测试号's callback domain may be "host:port" (startup.py).
            object.__setattr__(self, "public_url", check_origin("public_url", self.public_url))
        object.__setattr__(
            self, "api_base_url", check_url("api_base_url", self.api_base_url).rstrip("/")
        )
        if not isinstance(self.session_cookie, str) or not _COOKIE_NAME.match(self.session_cookie):
            raise ConfigurationError(
                f"session_cookie {self.session_cookie!r} is not a valid cookie name "
                "(letters, digits and !#$%&'*+-.^_`|~, at most 64)."
            )
        self._check_cookie_prefix()
        if self.max_age is not None and (not _is_int(self.max_age) or self.max_age <= 0):
            raise ConfigurationError(
                f"max_age must be a positive number of seconds or None, not {self.max_age!r}."
            )
        if not _is_int(self.login_max_age) or not 60 <= self.login_max_age <= 3600:
            raise ConfigurationError(
                f"login_max_age must be 60 to 3600 seconds, not {self.login_max_age!r}."
            )
        if self.cookie_domain is not None and (
            not isinstance(self.cookie_domain, str)
            or not re.fullmatch(r"\.?[A-Za-z0-9.-]+", self.cookie_domain)
        ):
            raise ConfigurationError(f"cookie_domain {self.cookie_domain!r} is not a domain.")
        if self.lang not in LANGS:
            raise ConfigurationError(f"lang must be one of {', '.join(LANGS)}, not {self.lang!r}.")
        if (
            isinstance(self.http_timeout, bool)
            or not isinstance(self.http_timeout, (int, float))
            or not 0 < self.http_timeout <= 120
        ):
            raise ConfigurationError(
                f"http_timeout must be more than 0 and at most 120 seconds, "
                f"not {self.http_timeout!r}."
            )
        if (
            isinstance(self.login_timeout, bool)
            or not isinstance(self.login_timeout, (int, float))
            or not 0 < self.login_timeout <= 300
        ):
            raise ConfigurationError(
                "login_timeout (the deadline of a whole login, calls and retries included) "
                f"must be more than 0 and at most 300 seconds, not {self.login_timeout!r}."
            )
        if not _is_int(self.retries) or not 0 <= self.retries <= 5:
            raise ConfigurationError(f"retries must be 0 to 5, not {self.retries!r}.")
        if not _is_int(self.max_connections) or not 1 <= self.max_connections <= 1000:
            raise ConfigurationError(
                f"max_connections must be 1 to 1000, not {self.max_connections!r}."
            )
        if self.on_error is not None and not callable(self.on_error):
            raise ConfigurationError("on_error must be a callable (error, request) -> response.")
        self._check_policies()
        self._check_paths()
        if self.on_login is not None and not callable(self.on_login):
            raise ConfigurationError("on_login must be a callable (user, request), sync or async.")
        if self.identity not in IDENTITY_KEYS:
            raise ConfigurationError(
                f"identity must be 'openid' or 'unionid', not {self.identity!r}."
            )
        if self.identity == "unionid" and self.scope != "snsapi_userinfo" and not self.accounts:
            raise ConfigurationError(
                "identity='unionid' needs scope='snsapi_userinfo': WeChat gives a unionid only "
                "with the profile scope (and an Open Platform binding)."
            )
        if self.snapshot_users not in SNAPSHOT_MODES:
            raise ConfigurationError(
                f"snapshot_users must be 'interstitial' or 'app', not {self.snapshot_users!r}."
            )
        verify_files = {} if self.verify_files is None else self.verify_files
        if not isinstance(verify_files, Mapping) or not all(
            isinstance(name, str)
            and _VERIFY_FILE.fullmatch(name)
            and isinstance(content, str)
            and 0 < len(content) <= 256
            for name, content in verify_files.items()
        ):
            raise ConfigurationError(
                "verify_files must map WeChat's and WeCom's file names "
                "('MP_verify_<letters/digits>.txt', 'WW_verify_<letters/digits>.txt') "
                "to their content (the text WeChat's console shows, at most 256 characters)."
            )
        # A copy: changing the caller's mapping later does not change the middleware.
        object.__setattr__(self, "verify_files", dict(verify_files))
        self._check_store()
        policies = {self.other_browsers} | {
            rule.other_browsers for rule in self.rule_set.rules if rule.other_browsers
        }
        relay_url = check_site_relay(
            self.relay_url,
            self.relay_site_id,
            self.relay_secret,
            has_accounts=self.accounts is not None,
            other_browsers=set(policies),
            keep_tokens=self.keep_tokens,
            browsers=self.relay_browsers,
        )
        object.__setattr__(self, "relay_url", relay_url)

    @property
    def _relayed(self) -> bool:
        """Whether any of the relay options is given (check_site_relay wants all three)."""
        return any(v is not None for v in (self.relay_url, self.relay_site_id, self.relay_secret))

    @property
    def app_ids(self) -> tuple[str, str | None]:
        """Whose openids its sessions hold: the Official Account's, the website app's."""
        return self.app_id or "", self.website_app_id

    @property
    def wecom(self) -> WeComApp | None:
        """The WeCom app this configuration is of (a WeCom app's core's), or None."""
        accounts = self.accounts
        if self.app_id is None and isinstance(accounts, tuple) and len(accounts) == 1:
            app = accounts[0]
            return app if isinstance(app, WeComApp) else None
        return None

    @property
    def own_account(self) -> tuple[str, str]:
        """The AppID and AppSecret of the one account a core's configuration serves."""
        if self.app_id is None or self.app_secret is None:
            raise ConfigurationError("a configuration of several accounts has no one AppSecret")
        return self.app_id, self.app_secret

    @property
    def own_account_id(self) -> str:
        """The AppID of the one account a core's configuration serves."""
        if self.app_id is None:
            raise ConfigurationError("a configuration of several accounts has no one AppID")
        return self.app_id

    def _check_cookie_prefix(self) -> None:
        """A `__Host-`/`__Secure-` session cookie name: browsers keep such a cookie only if
        it is Secure (and, for __Host-, on Path=/ without a Domain): refuse what cannot be."""
        name = self.session_cookie.lower()
        if not name.startswith(("__host-", "__secure-")):
            return
        prefix = self.session_cookie[: name.index("-") + 1]
        https = self.https_only or (self.public_url or "").startswith("https:")
        if not https:
            raise ConfigurationError(
                f"session_cookie {self.session_cookie!r}: browsers keep a {prefix} cookie only "
                "if it is Secure. Set public_url to the site's https origin, or https_only=True."
            )
        if name.startswith("__host-") and (
            self.cookie_domain is not None or self.cookie_path != "/"
        ):
            raise ConfigurationError(
                f"session_cookie {self.session_cookie!r}: browsers keep a __Host- cookie only "
                "on Path=/ without a Domain. Leave cookie_domain unset and cookie_path '/', or "
                "use a __Secure- name."
            )

    def _check_store(self) -> None:
        if self.redis_url is not None:
            check_redis_url(self.redis_url)
        if not isinstance(self.redis_prefix, str) or not _REDIS_PREFIX.match(self.redis_prefix):
            raise ConfigurationError(
                f"redis_prefix must be up to 64 printable characters without spaces or braces, "
                f"not {self.redis_prefix!r}."
            )
        if not isinstance(self.keep_tokens, bool):
            raise ConfigurationError(
                f"keep_tokens must be True or False, not {self.keep_tokens!r}."
            )
        if self.keep_tokens and self.redis_url is None:
            raise ConfigurationError(
                "keep_tokens=True needs redis_url: WeChat's tokens are kept in the session "
                "store, never in a cookie."
            )

    def _check_policies(self) -> None:
        object.__setattr__(self, "rule_set", RuleSet(self.rules))
        if self.other_browsers not in OTHER_BROWSER_POLICIES:
            raise ConfigurationError(
                f"other_browsers must be one of {', '.join(OTHER_BROWSER_POLICIES)}, "
                f"not {self.other_browsers!r}."
            )
        uses_qrconnect = self.other_browsers == "qrconnect" or any(
            rule.other_browsers == "qrconnect" for rule in self.rule_set.rules
        )
        # With accounts, these are checked for each account (whose options they may be).
        if uses_qrconnect and self.accounts is None:
            if not self.website_app_id or not self.website_app_secret:
                raise ConfigurationError(
                    "other_browsers='qrconnect' needs website_app_id and website_app_secret: "
                    "the Open Platform website app (网站应用) of WeChat's QR-code login."
                )
            if not APP_ID.match(self.website_app_id) or self.website_app_id == self.app_id:
                raise ConfigurationError(
                    f"website_app_id {self.website_app_id!r} must be the website app's AppID "
                    "('wx' and 16 hexadecimal digits), which is not the Official Account's."
                )
            check_url("qrconnect_url", self.qrconnect_url)
        check_path("scan_path", self.scan_path)
        if not _is_int(self.scan_max_age) or not 30 <= self.scan_max_age <= 600:
            raise ConfigurationError(
                f"scan_max_age (the life of a scan login's QR code) must be 30 to 600 seconds, "
                f"not {self.scan_max_age!r}."
            )
        object.__setattr__(self, "default_policy", PagePolicy(self.scope, self.other_browsers))

    def _check_paths(self) -> None:
        for name in ("login_path", "logout_path", "jssdk_path", "platform_events_path"):
            value = getattr(self, name)
            if value is not None:
                check_path(name, value)
        jssdk = (self.jssdk_path, self.jssdk_path + ".js") if self.jssdk_path else ()
        own = [p for p in (self.callback_path, self.login_path, self.logout_path, *jssdk) if p]
        if self.platform_events_path:
            own.append(self.platform_events_path)
        if len(set(own)) != len(own):
            raise ConfigurationError(
                "callback_path, login_path, logout_path, jssdk_path and platform_events_path "
                "must be different paths."
            )
        if self.uses_scan and any(
            p == self.scan_path or p.startswith(self.scan_path + "/") for p in own
        ):
            raise ConfigurationError(
                f"scan_path {self.scan_path!r} and its sub-paths must not be callback_path, "
                "login_path or logout_path."
            )
        if self.jssdk_script_url is not None:
            check_url("jssdk_script_url", self.jssdk_script_url)
        # Where the middleware reads the session (the JS-SDK endpoint does not need one).
        covered = [p for p in (self.callback_path, self.login_path, self.logout_path) if p]
        if self.uses_scan:
            covered.append(self.scan_path)
        outside = [p for p in covered if not path_matches(self.cookie_path, p)]
        if outside:
            raise ConfigurationError(
                f"cookie_path {self.cookie_path!r} must cover the middleware's own paths, and "
                f"{', '.join(outside)} is outside it: the browser would not send the session "
                "there (logging out would leave the session alive). Use a cookie_path they "
                "are under, or move them under it (callback_path=..., logout_path=...)."
            )

    def policy(self, path: str) -> PagePolicy:
        """What the page at `path` asks of its visitors: its rule's, completed by the options."""
        return self.rule_set.policy(path, self.default_policy)

    @property
    def uses_wecom_qr(self) -> bool:
        """Whether any page logs other browsers in with WeCom's desktop login."""
        return self.other_browsers == "wecom_qr" or any(
            rule.other_browsers == "wecom_qr" for rule in self.rule_set.rules
        )

    @property
    def uses_scan(self) -> bool:
        """Whether any page logs other browsers in by scanning (other_browsers="scan")."""
        return self.other_browsers == "scan" or any(
            rule.other_browsers == "scan" for rule in self.rule_set.rules
        )

    @property
    def scan_ticket_life(self) -> int:
        """How long a scan login's ticket and its binding cookie are kept: the code's life and
        a minute more, so a desktop asking just after hears "expired", not "not this
        browser"."""
        return self.scan_max_age + 60


# The options' names, in order: Config's fields but the derived ones.
OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(Config) if f.init)
# The options without a default.
REQUIRED: tuple[str, ...] = tuple(
    f.name
    for f in fields(Config)
    if f.init and f.default is MISSING and f.default_factory is MISSING
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
