"""What a platform keeps, for every instance and across restarts: in Redis with `redis_url`
(under `<redis_prefix>platform:{<component_appid>}:...`, one hash slot per platform), else in
the process (one process only; a restart waits for WeChat's next push, up to 10 minutes).

- `ticket`: the last good component_verify_ticket (12 hours, as WeChat says);
- `authorizer:<appid>:refresh`: each authorizer's refresh token, kept for good (no expiry:
  a lost one means the account's admin must authorize again, 61023), replaced when WeChat
  sends a new one;
- `authorizer:<appid>:revoked`: set by an `unauthorized` event, cleared by an authorization;
- `nonce:<nonce>`: the nonces of the pushes accepted lately (a replay is refused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..effects import Flow, StoreCommands

__all__ = ["TICKET_LIFE", "MemoryValues", "PlatformStore", "RedisValues", "Values"]

# How long a component_verify_ticket is good for.
TICKET_LIFE = 12 * 3600


class Values(Protocol):
    """A few string values by key, some expiring."""

    def get(self, *keys: str) -> Flow[list[str | None]]: ...
    def put(self, key: str, value: str, life: int | None) -> Flow[None]: ...
    def put_new(self, key: str, value: str, life: int) -> Flow[bool]: ...
    def delete(self, key: str) -> Flow[None]: ...


class RedisValues:
    def get(self, *keys: str) -> Flow[list[str | None]]:
        replies = yield StoreCommands(tuple(("GET", key) for key in keys))
        return [_text(raw) for raw in replies]

    def put(self, key: str, value: str, life: int | None) -> Flow[None]:
        command: tuple[str | int, ...] = ("SET", key, value)
        yield StoreCommands((command + (("EX", life) if life else ()),))

    def put_new(self, key: str, value: str, life: int) -> Flow[bool]:
        (done,) = yield StoreCommands((("SET", key, value, "NX", "EX", life),))
        return bool(done)

    def delete(self, key: str) -> Flow[None]:
        yield StoreCommands((("DEL", key),))


class MemoryValues:
    """The same in this process (no redis_url). Nonces are bounded by their short life."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, str]] = {}

    def _live(self, key: str) -> str | None:
        held = self._values.get(key)
        if held is None:
            return None
        if held[0] <= self._clock():
            del self._values[key]
            return None
        return held[1]

    def get(self, *keys: str) -> Flow[list[str | None]]:
        with self._lock:
            return [self._live(key) for key in keys]
        yield  # pragma: no cover - a flow that needs no effect

    def put(self, key: str, value: str, life: int | None) -> Flow[None]:
        with self._lock:
            self._values[key] = (self._clock() + life if life else float("inf"), value)
            if len(self._values) > 10_000:  # drop what expired (nonces, mostly)
                for old in [k for k, (until, _) in self._values.items() if until <= self._clock()]:
                    del self._values[old]
        return
        yield  # pragma: no cover

    def put_new(self, key: str, value: str, life: int) -> Flow[bool]:
        with self._lock:
            if self._live(key) is not None:
                return False
        yield from self.put(key, value, life)
        return True

    def delete(self, key: str) -> Flow[None]:
        with self._lock:
            self._values.pop(key, None)
        return
        yield  # pragma: no cover


class PlatformStore:
    """A platform's kept values, by name."""

    def __init__(self, values: Values, prefix: str, component_appid: str) -> None:
        self._values = values
        self._prefix = f"{prefix}platform:{{{component_appid}}}:"

    def _authorizer(self, app_id: str, what: str) -> str:
        return f"{self._prefix}authorizer:{app_id}:{what}"

    def ticket(self) -> Flow[str | None]:
        (ticket,) = yield from self._values.get(self._prefix + "ticket")
        return ticket

    def keep_ticket(self, ticket: str) -> Flow[None]:
        yield from self._values.put(self._prefix + "ticket", ticket, TICKET_LIFE)

    def first_push(self, nonce: str, life: int) -> Flow[bool]:
        """Whether a push of `nonce` is new (and remember it for `life` seconds)."""
        return (yield from self._values.put_new(self._prefix + "nonce:" + nonce, "1", life))

    def refresh_token(self, app_id: str) -> Flow[str | None]:
        (token,) = yield from self._values.get(self._authorizer(app_id, "refresh"))
        return token

    def keep_refresh_token(self, app_id: str, token: str) -> Flow[None]:
        yield from self._values.put(self._authorizer(app_id, "refresh"), token, None)

    def readiness(self, app_id: str) -> Flow[tuple[bool, bool]]:
        """Whether the platform has a ticket, and whether `app_id` revoked its authorization:
        one round trip."""
        ticket, revoked = yield from self._values.get(
            self._prefix + "ticket", self._authorizer(app_id, "revoked")
        )
        return ticket is not None, revoked is not None

    def set_revoked(self, app_id: str, revoked: bool) -> Flow[None]:
        key = self._authorizer(app_id, "revoked")
        if revoked:
            yield from self._values.put(key, "1", None)
        else:
            yield from self._values.delete(key)


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
