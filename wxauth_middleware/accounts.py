"""Several Official Accounts in one application: the `OfficialAccount` value and the
`accounts` option, checked once.

An account is a value: the middleware chooses it from the request's host and hands it (its
own configuration, its own core) to everything that serves the request. Nothing here is a
"current account" kept in a module, a thread or a context variable.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Union

from .errors import ConfigurationError
from .hosts import checked_host
from .platform import Platform
from .wecom.app import WeComApp

__all__ = [
    "APP_ID",
    "AccountLoader",
    "Accounts",
    "AnyAccount",
    "OfficialAccount",
    "check_app_id",
    "check_credentials",
    "checked_accounts",
    "host_name",
    "is_async_loader",
]

# An AppID is "wx" and 16 hexadecimal digits (Official Accounts and website apps alike).
APP_ID = re.compile(r"^wx[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class OfficialAccount:
    """One Official Account (公众号) the middleware logs users in with.

    `hosts` are the host names it serves (exact, case-insensitive, without a port); they are
    required when there are several accounts. `public_url`, `scope`, `website_app_id` and
    `website_app_secret` override the middleware's options of the same name for this
    account; None keeps the middleware's. The AppSecrets are never in a repr.
    """

    app_id: str
    app_secret: str | None = field(default=None, repr=False)
    hosts: Sequence[str] = ()
    public_url: str | None = None
    scope: str | None = None
    website_app_id: str | None = None
    website_app_secret: str | None = field(default=None, repr=False)
    # A third-party platform (第三方平台) the account authorized: it logs users in on the
    # account's behalf, and the account has no AppSecret here.
    platform: Platform | None = None

    def __post_init__(self) -> None:
        if self.platform is None:
            check_credentials(self.app_id, self.app_secret, "OfficialAccount ")
        elif not isinstance(self.platform, Platform):
            raise ConfigurationError(
                f"OfficialAccount {self.app_id}: platform must be a Platform(...), "
                f"not {type(self.platform).__name__}."
            )
        elif self.app_secret is not None:
            raise ConfigurationError(
                f"OfficialAccount {self.app_id}: an account of a platform (platform=...) has "
                "no app_secret: the platform logs its users in on its behalf. Give one or the "
                "other."
            )
        else:
            check_app_id(self.app_id, "OfficialAccount ")
        if isinstance(self.hosts, str):
            raise ConfigurationError(
                f"OfficialAccount {self.app_id}: hosts must be a list of host names, "
                f"not the string {self.hosts!r} (write hosts=[{self.hosts!r}])."
            )
        if not isinstance(self.hosts, Sequence):
            raise ConfigurationError(
                f"OfficialAccount {self.app_id}: hosts must be a list of host names, "
                f"not {type(self.hosts).__name__}."
            )
        # Normalised once: lower case, without a final dot; frozen (and hashable).
        object.__setattr__(
            self,
            "hosts",
            tuple(checked_host(f"OfficialAccount {self.app_id}", h) for h in self.hosts),
        )
        if len(set(self.hosts)) != len(self.hosts):
            raise ConfigurationError(f"OfficialAccount {self.app_id}: a host is listed twice.")


def check_credentials(app_id: object, app_secret: object, owner: str = "") -> None:
    """Checks an Official Account's AppID and AppSecret (`owner` names whose they are)."""
    check_app_id(app_id, owner)
    if not isinstance(app_secret, str) or not app_secret:
        raise ConfigurationError(
            f"{owner}app_secret is required and must be a non-empty string"
            + (f" (the AppSecret of {app_id})." if owner else ".")
        )
    if any(c.isspace() for c in app_secret):
        raise ConfigurationError(f"{owner}app_secret contains white space: check for a stray copy.")


def check_app_id(app_id: object, owner: str = "") -> None:
    if not isinstance(app_id, str) or not app_id:
        raise ConfigurationError(f"{owner}app_id is required and must be a non-empty string.")
    if not APP_ID.match(app_id):
        raise ConfigurationError(
            f"{owner}app_id {app_id!r} is not an AppID: use the Official Account's AppID, "
            "'wx' and 16 hexadecimal digits (like 'wx1234567890abcdef'), from the "
            "Official Account's console (设置与开发 > 基本配置)."
        )


# A loader of accounts kept in a database: the account serving a host name, or None.
# An account of either kind: an Official Account, or a WeCom app.
AnyAccount = Union[OfficialAccount, WeComApp]  # noqa: UP007 (a runtime alias)
AccountLoader = Callable[[str], "AnyAccount | Awaitable[AnyAccount | None] | None"]
# The `accounts` option: a list of accounts, or a loader.
Accounts = Union[Sequence[AnyAccount], AccountLoader]  # noqa: UP007 (a runtime alias)


def host_name(host_header: str) -> str:
    """The host name of a Host header ("A.example.com:8000" -> "a.example.com"), as the
    accounts' `hosts` hold it; "" for none."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0].rstrip(".")


def is_async_loader(loader: object) -> bool:
    """Whether calling `loader` gives an awaitable (an `async def`, or an object with one)."""
    return inspect.iscoroutinefunction(loader) or inspect.iscoroutinefunction(
        getattr(loader, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


def checked_accounts(accounts: object, one: object) -> tuple[AnyAccount, ...] | AccountLoader:
    """The `accounts` option, checked: a tuple of accounts (no host claimed twice, hosts
    given when there are several) or a loader; `one`, the app_id or app_secret option, it excludes.
    Raises ConfigurationError saying what to fix."""
    if one is not None:
        raise ConfigurationError(
            "accounts= takes the place of app_id/app_secret: give the accounts only (app_id "
            "and app_secret are the shorthand for one account that serves every host)."
        )
    if callable(accounts) and not isinstance(accounts, (list, tuple)):
        return accounts  # type: ignore[return-value,unused-ignore]
    if isinstance(accounts, (str, bytes)) or not isinstance(accounts, Sequence):
        raise ConfigurationError(
            "accounts must be a list of OfficialAccount and WeComApp, or a callable "
            "accounts(host) that returns the host's account or None; not "
            f"{type(accounts).__name__}."
        )
    checked = tuple(accounts)
    if not checked:
        raise ConfigurationError("accounts is empty: list at least one OfficialAccount.")
    # The hosts of each kind (an Official Account and a WeCom app may share one), and the
    # accounts seen (an Official Account by AppID, a WeCom app by corp and agent).
    hosts: dict[tuple[str, str], str] = {}
    seen: set[str] = set()
    for account in checked:
        if isinstance(account, WeComApp):
            kind, name, what = "wecom", account.label, "WeComApp"
        elif isinstance(account, OfficialAccount):
            kind, name, what = "wechat", account.app_id, "OfficialAccount"
        else:
            raise ConfigurationError(
                "accounts must hold OfficialAccount objects or WeComApp objects, not "
                f"{type(account).__name__}."
            )
        if name in seen:
            raise ConfigurationError(
                f"accounts lists {name} twice: give one {what} with all of its hosts."
            )
        seen.add(name)
        if len(checked) > 1 and not account.hosts:
            raise ConfigurationError(
                f"{what} {name} has no hosts: with several accounts, each "
                "names the hosts it serves (hosts=['a.example.com'])."
            )
        for host in account.hosts:
            other = hosts.setdefault((kind, host), name)
            if other != name:
                raise ConfigurationError(
                    f"host {host!r} is claimed by two accounts, {other} and {name}: "
                    f"a host is served by one {what} (and at most one of the other kind)."
                )
    return checked
