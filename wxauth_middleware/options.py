"""The options both middlewares take, written once."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from types import FrameType
from typing import Any, Generic, TypeVar

import httpx

from .accounts import Accounts
from .config import (
    OPTIONS,
    REQUIRED,
    Config,
    ErrorHandler,
    Identity,
    Lang,
    LoginHook,
    SnapshotUsers,
)
from .core import LoginCore
from .env import ENV_PREFIX, options_from_env
from .errors import ConfigurationError
from .relay.sites import RelayBrowsers
from .routing import AccountRouter
from .rules import OtherBrowsers, Rule
from .scopes import Scope
from .startup.advice import config_warnings
from .startup.reachability import ReachabilityCheck

__all__ = ["MiddlewareOptions"]

# The options of the one account, required unless `accounts` is given.
_ONE_ACCOUNT = ("app_id", "app_secret")
# The options of a site that logs in through a relay (Config says which are missing).
_RELAY = ("relay_url", "relay_site_id", "relay_secret")

AppT = TypeVar("AppT")
_M = TypeVar("_M", bound="MiddlewareOptions[Any]")
logger = logging.getLogger("wxauth_middleware")


class MiddlewareOptions(Generic[AppT]):
    """Validates the options into a `Config` and builds the `LoginCore` from it, once.

    Every option is keyword-only and typed, for editors and type checkers; names, types and
    defaults are Config's (a test holds them equal). See docs/options.md.
    """

    # The kind of httpx transport the adapter's client takes (async for ASGI, sync for WSGI).
    _transport_type: type = object
    config: Config
    router: AccountRouter
    _single: LoginCore | None

    def __new__(cls, app: AppT, **options: Any) -> Any:
        # The options are checked here, before Python matches them with __init__'s
        # signature: a missing or misspelt option is a ConfigurationError that says what to
        # pass, not a TypeError about keyword-only arguments.
        try:
            config = _config(options)
            router = AccountRouter(config)
            transport = options.get("transport")
            if transport is not None and not isinstance(transport, cls._transport_type):
                raise ConfigurationError(
                    f"transport must be an {cls._transport_type.__module__}."
                    f"{cls._transport_type.__qualname__} for {cls.__name__}, "
                    f"not {type(transport).__name__}."
                )
        except ConfigurationError as error:
            return cls._failed(error, sys._getframe(1))
        self = super().__new__(cls)
        self.config = config
        self.router = router
        # The core serving every host, with one account (the app_id/app_secret shorthand).
        self._single = router.single
        return self

    @classmethod
    def _failed(cls, error: ConfigurationError, caller: FrameType) -> Any:
        """Raises `error`; an adapter may answer something else to a `caller` that would not
        report it (see the ASGI middleware)."""
        raise error

    def __init__(
        self,
        app: AppT,
        *,
        app_id: str | None = None,
        app_secret: str | None = None,
        accounts: Accounts | None = None,
        secret_key: str | bytes | Sequence[str | bytes],
        scope: Scope = "snsapi_base",
        callback_path: str = "/wxauth/callback",
        public_url: str | None = None,
        authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize",
        api_base_url: str = "https://api.weixin.qq.com",
        session_cookie: str = "wxauth_session",
        max_age: int | None = 14 * 24 * 3600,
        cookie_domain: str | None = None,
        cookie_path: str = "/",
        https_only: bool = False,
        login_max_age: int = 600,
        lang: Lang = "zh_CN",
        http_timeout: float = 10.0,
        login_timeout: float = 20.0,
        retries: int = 2,
        max_connections: int = 20,
        on_error: ErrorHandler | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        rules: Sequence[Rule] = (),
        other_browsers: OtherBrowsers = "pass",
        website_app_id: str | None = None,
        website_app_secret: str | None = None,
        qrconnect_url: str = "https://open.weixin.qq.com/connect/qrconnect",
        login_path: str | None = "/wxauth/login",
        logout_path: str | None = "/wxauth/logout",
        snapshot_users: SnapshotUsers = "interstitial",
        on_login: LoginHook | None = None,
        identity: Identity = "openid",
        verify_files: Mapping[str, str] | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "wxauth:",
        keep_tokens: bool = False,
        scan_path: str = "/wxauth/scan",
        scan_max_age: int = 180,
        jssdk_path: str | None = "/wxauth/jssdk",
        jssdk_script_url: str | None = None,
        platform_events_path: str | None = "/wxauth/platform/events",
        relay_url: str | None = None,
        relay_site_id: str | None = None,
        relay_secret: str | None = None,
        relay_browsers: RelayBrowsers = "wechat",
    ) -> None:
        # Every parameter but app is a field of Config, of the same name (a test holds them
        # equal): __new__ checked them into self.config.
        self.app = app
        self._configured()
        # The outbound client's pool: bounded, so a burst of logins queues for a connection
        # (within the call's timeout) instead of opening sockets without limit.
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        for warning in config_warnings(self.config):
            logger.warning("%s", warning)
        # The emulator and Redis it was given: said in the log if they do not answer.
        self.reachability = ReachabilityCheck(self.config)
        self.reachability.at_startup()
        self.router.when_login_starts(self.reachability.at_first_login)

    @property
    def core(self) -> LoginCore:
        """The decision core of the one account (with several, `router` holds one each)."""
        if self._single is None:
            raise ConfigurationError("this middleware serves several accounts: see its router")
        return self._single

    def _configured(self) -> None:
        """What an adapter sets up once the options are checked."""

    @classmethod
    def from_env(
        cls: type[_M], app: Any, *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> _M:
        """The middleware configured from `WXAUTH_<OPTION>` environment variables
        (`WXAUTH_APP_ID`, `WXAUTH_APP_SECRET`, `WXAUTH_SECRET_KEY`, ...); keyword arguments
        given here win over the environment."""
        options = options_from_env(os.environ if environ is None else environ)
        options.update(overrides)
        try:
            return cls(app, **options)
        except ConfigurationError as exc:
            # Name the variable the bad value came from, not only the option.
            culprit = next(
                (name for name in options if name not in overrides and name in str(exc)), None
            )
            if culprit is None:
                raise
            raise ConfigurationError(f"{exc} (from {ENV_PREFIX}{culprit.upper()})") from exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r}, config={self.config!r})"


def _config(options: Mapping[str, Any]) -> Config:
    # A misspelt name first: `app_secert=` is what makes app_secret "missing".
    for name in options:
        if name not in OPTIONS:
            close = get_close_matches(name, OPTIONS, n=1)
            hint = f": did you mean {close[0]!r}?" if close else " (see the options reference)."
            raise ConfigurationError(f"there is no option {name!r}{hint}")
    # A site logging in through a relay (relay_url) needs no account of its own.
    relayed = any(options.get(name) is not None for name in _RELAY)
    own = options.get("accounts") is not None or relayed
    required = REQUIRED if own else _ONE_ACCOUNT + REQUIRED
    missing = [name for name in required if options.get(name) is None]
    if missing:
        raise ConfigurationError(
            " ".join(
                f"{name} is required: pass {name}=... or set {ENV_PREFIX}{name.upper()}."
                for name in missing
            )
        )
    return Config(**options)
