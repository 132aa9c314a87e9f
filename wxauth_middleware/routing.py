"""Which account serves a request: chosen by its host, as a value.

`AccountRouter` maps a request's host to the `LoginCore` of the account that serves it, or to
None (a host no account serves: the request passes through untouched). With the one-account
shorthand (`app_id`/`app_secret`) there is one core for every host, as before.

Each account gets a core of its own, made from a configuration of its own: its AppID and
AppSecret, its overrides, signing keys derived from `secret_key` and its AppID, and its own
Redis namespace. Isolation holds by construction: a session, a login in progress or a scan
ticket signed for one account does not verify for another, and its stored records live under
the account's keys. The cores are made on an account's first request: a configured account
holds only its configuration until then.

The `accounts` callable (accounts kept in a database) is asked once per host and its answer
kept for ACCOUNT_LIFE seconds (None, "no account here", for NO_ACCOUNT_LIFE; a failure for
FAILURE_LIFE); one call per host at a time, the other requests for that host wait for it. A
loader that fails, answers something unusable or is slower than `http_timeout` makes that
host's requests `AccountUnavailable` (503), and no other host's.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit

from .accounts import AccountLoader, AnyAccount, OfficialAccount, host_name, is_async_loader
from .config import Config
from .cookies import Clock, wall_clock
from .core import LoginCore
from .errors import AccountUnavailable, ConfigurationError
from .platform.events import PlatformEvents
from .platform.service import PlatformService
from .useragent import is_wechat_browser, is_wecom_browser
from .wechat.credentials import signable_url
from .wecom.app import WeComApp

__all__ = [
    "ACCOUNT_LIFE",
    "FAILURE_LIFE",
    "NO_ACCOUNT_LIFE",
    "AccountRouter",
    "account_config",
    "wecom_config",
]

logger = logging.getLogger("wxauth_middleware")

# How long the loader's answer for a host is kept: an account, "no account", a failure.
ACCOUNT_LIFE = 60.0
NO_ACCOUNT_LIFE = 10.0
FAILURE_LIFE = 2.0
# How many hosts' answers, and how many loaded accounts' cores, a process keeps at most.
MAX_HOSTS = 100_000
MAX_LOADED_CORES = 10_000


def account_config(base: Config, account: OfficialAccount) -> Config:
    """The configuration of one account of `base` (a configuration with `accounts`): the
    middleware's options with the account's credentials and overrides, and signing keys of
    its own (HMAC of each secret key and the AppID, rotation kept). Raises
    ConfigurationError naming the account."""
    label = b"wxauth_middleware.account " + account.app_id.encode()
    keys = [hmac.digest(key, label, "sha256") for key in base.secret_keys]
    try:
        return replace(
            base,
            accounts=None,
            app_id=account.app_id,
            app_secret=account.app_secret,
            secret_key=keys,
            public_url=account.public_url or base.public_url,
            scope=account.scope or base.scope,  # type: ignore[arg-type]
            website_app_id=account.website_app_id or base.website_app_id,
            website_app_secret=account.website_app_secret or base.website_app_secret,
            on_behalf=account.platform is not None,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"OfficialAccount {account.app_id}: {exc}") from None


def wecom_config(base: Config, app: WeComApp) -> Config:
    """The configuration of a WeCom app of `base`: the middleware's options with the app's
    URLs and overrides, its scope in WeChat's words (a profile scope for snsapi_privateinfo),
    and signing keys of its own (of the corp and agent)."""
    label = b"wxauth_middleware.wecom " + app.key.encode()
    keys = [hmac.digest(key, label, "sha256") for key in base.secret_keys]
    others = app.other_browsers or (
        base.other_browsers if base.other_browsers in ("pass", "refuse", "wecom_qr") else "pass"
    )
    try:
        return replace(
            base,
            accounts=(app,),
            app_id=None,
            app_secret=None,
            secret_key=keys,
            public_url=app.public_url or base.public_url,
            scope="snsapi_userinfo" if app.scope == "snsapi_privateinfo" else "snsapi_base",
            other_browsers=others,  # type: ignore[arg-type]
            authorize_url=app.authorize_url,
            api_base_url=app.api_base_url,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"WeComApp {app.label}: {exc}") from None


def config_of(base: Config, account: AnyAccount) -> Config:
    """The configuration of an account of `base`, of either kind."""
    if isinstance(account, WeComApp):
        return wecom_config(base, account)
    return account_config(base, account)


def _core_key(config: Config) -> str:
    """What a core is kept under: the WeCom app's corp and agent, or the AppID."""
    wecom = config.wecom
    return f"wecom:{wecom.key}" if wecom is not None else config.app_id or ""


class Loading:
    """A host's call of the loader in progress, which other requests for the host wait for:
    `done` (threads), `async_done` (an event of the asynchronous driver's, when it makes
    the call)."""

    __slots__ = ("async_done", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.async_done: Any = None


# A host's answer from the loader: until when it holds, the core (None: no account), and
# whether it is a failure (the host's requests are AccountUnavailable until then).
_Answer = tuple[float, "LoginCore | None", bool]


class AccountRouter:
    """The cores of a middleware's accounts, by host (and by AppID, for the application's
    calls). `single` is the core serving every host, when there is one."""

    def __init__(self, config: Config, clock: Clock = wall_clock) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self.single: LoginCore | None = None
        # Called as any account's login starts (the startup checks look once more then).
        self._login_starts: Callable[[], None] = _nothing
        # A listed account's configuration by host, and by AppID; its core once made.
        self._configs: dict[str, Config] = {}
        self._by_app_id: dict[str, Config] = {}
        self._cores: dict[str, LoginCore] = {}
        # The cores made so far by host name: a request's lookup is one dict access.
        self._ready: dict[str, LoginCore] = {}
        # Hosts served by an Official Account and a WeCom app: (the Official Account's
        # configuration, the WeCom app's, whether other browsers get the WeCom app).
        self._shared: dict[str, tuple[Config, Config, bool]] = {}
        # The loader's: answers by host (until when), cores by account, calls in progress.
        self.loader: AccountLoader | None = None
        self.loader_is_async = False
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._loaded: OrderedDict[AnyAccount, LoginCore] = OrderedDict()
        self._loading: dict[str, Loading] = {}
        # The third-party platforms of the listed accounts, by component_appid; by AppID,
        # the platform of each account of one; the endpoint of their pushed events.
        self.platforms: dict[str, PlatformService] = {}
        self._platform_of: dict[str, PlatformService] = {}
        self.events: PlatformEvents | None = None
        accounts = config.accounts
        if config.uses_wecom_qr and not (
            callable(accounts)
            or (isinstance(accounts, tuple) and any(isinstance(a, WeComApp) for a in accounts))
        ):
            raise ConfigurationError(
                "other_browsers='wecom_qr' is WeCom's desktop login: it needs a WeComApp in "
                "accounts=[...]."
            )
        if accounts is None:
            self.single = self._new_core(config, "")
        elif isinstance(accounts, tuple):
            wecom: dict[str, Config] = {}
            for account in accounts:
                if not isinstance(account, WeComApp) and account.platform is not None:
                    self._platform_of[account.app_id] = self._platform(account)
                own = config_of(config, account)
                label = account.label if isinstance(account, WeComApp) else account.app_id
                self._by_app_id[label] = own
                for host in account.hosts:
                    (wecom if isinstance(account, WeComApp) else self._configs)[host] = own
            for host, app_config in wecom.items():
                shared = self._configs.get(host)
                if shared is None:
                    self._configs[host] = app_config
                else:
                    # WeCom's browser gets the WeCom app, WeChat's the Official Account, and
                    # other browsers the WeCom app if it logs them in (wecom_qr).
                    self._shared[host] = (shared, app_config, app_config.uses_wecom_qr)
                    del self._configs[host]
            if self.platforms and config.platform_events_path is not None:
                self.events = PlatformEvents(self.platforms, clock)
            if len(accounts) == 1 and not accounts[0].hosts:
                self.single = self._core(config_of(config, accounts[0]))
        else:
            assert callable(accounts)
            self.loader = accounts
            self.loader_is_async = is_async_loader(accounts)

    def when_login_starts(self, hook: Callable[[], None]) -> None:
        """`hook` is called as a login starts, whichever account's."""
        self._login_starts = hook
        with self._lock:
            cores = [self.single, *self._cores.values(), *self._loaded.values()]
        for core in cores:
            if core is not None:
                core.login.starting = hook

    def _new_core(
        self, config: Config, prefix: str, platform: PlatformService | None = None
    ) -> LoginCore:
        core = LoginCore(config, self._clock, prefix, platform)
        core.login.starting = self._login_starts
        return core

    @property
    def shared(self) -> bool:
        """Whether some host is served by an Official Account and a WeCom app (the
        request's User-Agent chooses)."""
        return bool(self._shared)

    def _platform(self, account: OfficialAccount) -> PlatformService:
        platform = account.platform
        assert platform is not None
        service = self.platforms.get(platform.component_appid)
        if service is None:
            service = self.platforms[platform.component_appid] = PlatformService(
                platform, self.config, self._clock
            )
        elif service.platform != platform:
            raise ConfigurationError(
                f"accounts name platform {platform.component_appid} twice, with different "
                "credentials: give every account the same Platform(...)."
            )
        return service

    def platform(self, component_appid: str | None, call: str) -> PlatformService:
        """The platform `component_appid` (optional when there is one), for the application's
        `call`. Raises ValueError saying what to pass."""
        if component_appid is None and len(self.platforms) == 1:
            return next(iter(self.platforms.values()))
        if component_appid is None:
            raise ConfigurationError(
                f"{call}: no account has a platform (OfficialAccount(..., platform=...))"
                if not self.platforms
                else f"{call} needs component_appid=... with several platforms."
            )
        service = self.platforms.get(component_appid)
        if service is None:
            raise ConfigurationError(
                f"{call}: {component_appid!r} is not the platform of any account."
            )
        return service

    def _core(self, config: Config) -> LoginCore:
        """The core of a listed account's configuration, made on first use."""
        key = _core_key(config)
        core = self._cores.get(key)
        if core is None:
            with self._lock:
                core = self._cores.get(key)
                if core is None:
                    platform = self._platform_of.get(config.app_id or "")
                    core = self._new_core(config, f"{key}:", platform)
                    self._cores[key] = core
        return core

    # -- by host ---------------------------------------------------------------------------

    def find(self, host_header: str, user_agent: str = "") -> LoginCore | Literal[False] | None:
        """The core serving `host_header` (a Host header), None for none, or False when the
        loader must be asked (drivers.py's `load_account_sync` / `load_account_async`). On a
        host of an Official Account and a WeCom app, `user_agent` chooses. Raises
        AccountUnavailable while the loader's failure for this host is remembered."""
        core = self._ready.get(host_header)
        if core is not None:
            return core
        name = host_name(host_header)
        if self._shared:
            pair = self._shared.get(name)
            if pair is not None:
                official, wecom, others = pair
                if is_wecom_browser(user_agent) or (others and not is_wechat_browser(user_agent)):
                    return self._core(wecom)
                return self._core(official)
        if self.loader is None:
            config = self._configs.get(name)
            if config is None:
                return None
            core = self._ready[name] = self._core(config)
            return core
        answer = self._answers.get(name)
        if answer is None:
            return False
        until, core, failed = answer
        if until < self._clock():
            return False
        if failed:
            raise AccountUnavailable(f"the accounts callable failed for host {name}")
        return core

    # -- asking the loader: the drivers' (drivers.py) steps --------------------------------

    def begin(self, name: str) -> tuple[Loading, bool]:
        """The call in progress for host `name`, and whether it is the caller's to make."""
        with self._lock:
            loading = self._loading.get(name)
            if loading is not None:
                return loading, False
            loading = self._loading[name] = Loading()
            return loading, True

    def end(self, name: str, loading: Loading) -> None:
        with self._lock:
            self._loading.pop(name, None)
        loading.done.set()

    def answered(self, name: str, account: object) -> None:
        if account is None:
            self._remember(name, NO_ACCOUNT_LIFE, None, False)
            return
        if not isinstance(account, (OfficialAccount, WeComApp)):
            problem = (
                f"answered {type(account).__name__}, not an OfficialAccount, a WeComApp or None"
            )
            self.failed(name, TypeError(problem))
            return
        if isinstance(account, OfficialAccount) and account.platform is not None:
            problem = (
                f"answered account {account.app_id} of a platform: list the accounts of a "
                "platform in accounts=[...] (its events come before any request)"
            )
            self.failed(name, ValueError(problem))
            return
        if account.hosts and name not in account.hosts:
            # Never another tenant's account: a loader's mix-up is a failure, not a login.
            label = account.label if isinstance(account, WeComApp) else account.app_id
            problem = f"answered account {label}, whose hosts do not include it"
            self.failed(name, LookupError(problem))
            return
        try:
            core = self._loaded_core(account)
        except ConfigurationError as exc:
            self.failed(name, exc)
            return
        self._remember(name, ACCOUNT_LIFE, core, False)

    def _loaded_core(self, account: AnyAccount) -> LoginCore:
        with self._lock:
            core = self._loaded.get(account)
            if core is not None:
                self._loaded.move_to_end(account)
                return core
        config = config_of(self.config, account)
        core = self._new_core(config, f"{_core_key(config)}:")
        with self._lock:
            core = self._loaded.setdefault(account, core)
            while len(self._loaded) > MAX_LOADED_CORES:
                self._loaded.popitem(last=False)
        return core

    def failed(self, name: str, exc: BaseException) -> None:
        reason = "did not answer in time" if isinstance(exc, TimeoutError) else repr(exc)
        logger.error("wxauth accounts callable failed for host %s: %s", name, reason)
        self._remember(name, FAILURE_LIFE, None, True)

    def _remember(self, name: str, life: float, core: LoginCore | None, failed: bool) -> None:
        with self._lock:
            self._answers[name] = (self._clock() + life, core, failed)
            self._answers.move_to_end(name)
            while len(self._answers) > MAX_HOSTS:
                self._answers.popitem(last=False)

    def settled(self, name: str) -> LoginCore | None:
        found = self.find(name)
        if found is False:  # the call in progress outlasted the wait
            raise AccountUnavailable(f"the accounts callable did not answer for host {name}")
        return found

    # -- by AppID (the application's own calls) ---------------------------------------------

    def by_app_id(self, app_id: str | None, call: str) -> LoginCore:
        """The core of the account `app_id` (a WeCom app's: "<corp id>/<agent id>"), for the
        application's `call`: optional with one account. Raises ValueError saying what to
        pass."""
        if self.single is not None:
            wecom = self.single.config.wecom
            own = self.single.config.app_id if wecom is None else wecom.label
            if app_id is not None and app_id != own:
                raise ConfigurationError(f"{call}: app_id {app_id!r} is not this middleware's.")
            return self.single
        if app_id is None:
            raise ConfigurationError(
                f"{call} needs app_id=... with several accounts: say which account's."
            )
        config = self._by_app_id.get(app_id)
        if config is not None:
            return self._core(config)
        with self._lock:
            loaded = [
                core
                for account, core in self._loaded.items()
                if isinstance(account, OfficialAccount) and account.app_id == app_id
            ]
        if loaded:
            return loaded[-1]
        known = (
            "is not one of the accounts"
            if self.loader is None
            else (
                "has not been loaded by the accounts callable (it is known once a request of one "
                "of its hosts came)"
            )
        )
        raise ConfigurationError(f"{call}: app_id {app_id!r} {known}.")

    def url_host(self, url: str) -> str:
        """The host of an absolute http(s) `url` to sign (ValueError for anything else)."""
        return urlsplit(signable_url(url)).netloc


def _nothing() -> None:
    pass
