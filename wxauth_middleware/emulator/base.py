"""What every part of the emulator shares: the server state its parts read and change,
the recorded API calls, and small helpers for parameters and paths."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import Scope

from .credentials import CredentialStore
from .faults import FaultPlan
from .golive import GoLive, QuotaCounter
from .grants import GrantError, GrantStore
from .personas import Persona
from .platform_state import EmulatedPlatform
from .protocol import JSONValue, error_payload
from .wecom_state import WeComCorp

__all__ = ["EmulatorState", "Params", "RecordedCall", "first_values", "route_path"]

Params = dict[str, str]


@dataclass(frozen=True)
class RecordedCall:
    """One API call as received: WeChat's path (without any mount prefix) and the parameters
    in the order the client sent them (query string, then a POSTed form; for stable_token the
    JSON body's fields, values as JSON text)."""

    path: str
    params: tuple[tuple[str, str], ...]

    def param(self, name: str) -> str | None:
        """The first value of `name`, or None."""
        return next((v for k, v in self.params if k == name), None)


def route_path(scope: Scope) -> str:
    """The request's path below the mount point (Starlette keeps the full path in "path")."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


def first_values(params: Sequence[tuple[str, str]]) -> Params:
    # The first occurrence wins, as with the authorize link.
    values: Params = {}
    for key, value in params:
        values.setdefault(key, value)
    return values


class EmulatorState:
    """The server state of one emulator, set up by ``WeChatEmulator.__init__``; the route and
    API mixins read and change it. Each part guards itself or is guarded by `_calls_lock`,
    since tests and the demo touch it from other threads."""

    app_id: str
    # Every registered Official Account's AppID, `app_id` first.
    official_app_ids: tuple[str, ...]
    website_app_id: str | None
    domains: tuple[str, ...]
    auto_approve: bool
    personas: tuple[Persona, ...]
    default_persona: str
    allow_remote: bool
    calls: list[RecordedCall]
    # appid -> AppSecret, for every app the token APIs answer.
    _secrets: dict[str, str]
    _personas: dict[str, Persona]
    # Personas that can scan a website's QR code (not snapshot-mode users).
    _scanners: dict[str, Persona]
    # The Official Accounts' followers and non-followers, by (the account, their openid).
    _by_openid: dict[tuple[str, str], Persona]
    _clock: Callable[[], float]
    _grants: GrantStore
    _credentials: CredentialStore
    _faults: FaultPlan
    _calls_lock: threading.Lock
    #: The account's go-live settings (IP allow-list, JS接口安全域名, quotas), and its calls.
    go_live: GoLive
    #: The WeCom corp the emulator plays, if any.
    wecom: WeComCorp | None
    _quotas: QuotaCounter
    #: The third-party platform it plays (--platform), if any.
    platform: EmulatedPlatform | None

    def _error(self, errcode: int) -> dict[str, JSONValue]:
        return error_payload(errcode, self._clock())

    def _check_secret(self, app_id: str, params: Params) -> None:
        secret = params.get("secret", "")
        if not secret:
            raise GrantError(41004)
        expected = self._secrets[app_id]
        if not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
            raise GrantError(40125)  # what WeChat answers a wrong AppSecret today
