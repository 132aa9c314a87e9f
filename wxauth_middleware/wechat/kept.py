"""Credentials kept in the process and, with `redis_url`, in Redis for every instance: the
machinery behind an Official Account's access_token and jsapi_ticket (`credentials.py`), a WeCom
app's token and tickets (`wecom/credentials.py`) and a platform's component_access_token
(`platform/service.py`).

A credential is a `Slot`: its copy in this process until shortly before it expires; callers
that find none wait for one call to WeChat (`Exclusive`), whose result they all get. With Redis
it is also kept under the slot's key (expiring with the credential): an instance that finds
none takes the lock `<key>:lock` (SET NX PX) and fetches; the others poll the key meanwhile. A
lock holder that dies is harmless: the lock expires, and a waiter that waited `lock_life`
fetches for itself. Redis being down leaves each instance with its own copy, never an error.

While WeChat fails to issue a credential, the failure is remembered: for FAILURE_MEMORY
seconds after the first failure, doubling with each failure in a row up to
FAILURE_MEMORY_MAX, callers get the same error at once instead of asking WeChat again. So
anonymous traffic (the JS-SDK endpoint answers any browser) cannot burn the daily quota or
prolong WeChat's outage; a success forgets the failures.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..effects import Exclusive, Flow, Gate, Sleep, StoreCommands
from ..errors import StoreUnavailable, WeChatAuthError
from .api import Issued

__all__ = [
    "FAILURE_MEMORY",
    "FAILURE_MEMORY_MAX",
    "RENEW_MARGIN",
    "Held",
    "Issue",
    "Keeper",
    "Slot",
]

logger = logging.getLogger("wxauth_middleware")

# A credential is renewed this many seconds before it expires (or at half its life, if less).
RENEW_MARGIN = 300
# How often an instance waiting for another's refresh looks for its result in Redis.
LOCK_POLL = 0.05
# How long a failure to issue a credential is remembered (seconds; see the module's docstring).
FAILURE_MEMORY = 2.0
FAILURE_MEMORY_MAX = 60.0
# Deletes the lock only if it is still this instance's (it may have expired and been retaken).
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


@dataclass(frozen=True, slots=True)
class Held:
    value: str
    # When to stop using it (the clock's time).
    renew_at: float

    def __repr__(self) -> str:
        return f"Held(renew_at={self.renew_at}, ...)"


class Slot:
    """One credential: its copy in this process, its gate, its keys in Redis."""

    __slots__ = ("failed", "failures", "gate", "held", "key", "lock_key", "name", "retry_at")

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key
        self.lock_key = key + ":lock"
        self.gate = Gate()
        self.held: Held | None = None
        # The last refresh's failure (time.monotonic(), error), until a refresh succeeds;
        # the failures in a row, and until when (time.monotonic()) their error is the answer.
        self.failed: tuple[float, WeChatAuthError] | None = None
        self.failures = 0
        self.retry_at = -math.inf

    def failure(self, error: WeChatAuthError) -> None:
        now = time.monotonic()
        self.failed = (now, error)
        self.failures += 1
        memory = min(FAILURE_MEMORY * 2 ** min(self.failures - 1, 16), FAILURE_MEMORY_MAX)
        self.retry_at = now + memory
        logger.warning(
            "wxauth: WeChat did not issue the account's %s (%s, %d failure(s) in a row): "
            "asking again in %.0f s at the earliest",
            self.name,
            error.code,
            self.failures,
            memory,
        )

    def remembered_failure(self, asked: float) -> WeChatAuthError | None:
        """The error to answer without asking WeChat: the refresh this caller waited for
        failed, or one failed a moment ago."""
        failed = self.failed
        if failed is None or (failed[0] < asked and time.monotonic() >= self.retry_at):
            return None
        # A copy each time: raising one object again and again would chain its tracebacks.
        error = failed[1].leading_back_to("")
        error.return_to = failed[1].return_to
        return error.with_traceback(None)

    def success(self, held: Held) -> None:
        self.failed, self.failures, self.retry_at = None, 0, -math.inf
        self.held = held

    def fresh(self, now: float, rejected: str | None) -> str | None:
        held = self.held
        if held is None or held.renew_at <= now or held.value == rejected:
            return None
        return held.value


# A flow that asks WeChat for a credential, given the one just rejected (if any).
Issue = Callable[[str | None], Flow[Issued]]


class Keeper:
    """Keeps slots: `clock` dates them; `shared` says whether Redis holds them too;
    `lock_life` bounds how long an instance waits for another's refresh."""

    def __init__(self, clock: Callable[[], float], shared: bool, lock_life: float) -> None:
        self._clock = clock
        self._shared = shared
        self._lock_life = lock_life

    def get(self, slot: Slot, issue: Issue, rejected: str | None) -> Flow[str]:
        value = slot.fresh(self._clock(), rejected)
        if value is None:
            asked = time.monotonic()
            value = yield Exclusive(slot.gate, self._refresh(slot, issue, rejected, asked))
        return value

    def _refresh(self, slot: Slot, issue: Issue, rejected: str | None, asked: float) -> Flow[str]:
        value = slot.fresh(self._clock(), rejected)
        if value is not None:
            return value  # refreshed by the caller this one waited for
        failed = slot.remembered_failure(asked)
        if failed is not None:
            # A burst of callers while WeChat is down makes one call, not one each in turn,
            # and the next callers wait a while before asking again.
            raise failed
        try:
            held = yield from self._fetch(slot, issue, rejected)
        except WeChatAuthError as exc:
            slot.failure(exc)
            raise
        slot.success(held)
        return held.value

    def _fetch(self, slot: Slot, issue: Issue, rejected: str | None) -> Flow[Held]:
        held = None
        if self._shared:
            try:
                held = yield from self._shared_refresh(slot, issue, rejected)
            except StoreUnavailable:
                logger.warning(
                    "wxauth: Redis is unavailable: this instance fetches and keeps the "
                    "account's %s on its own until Redis answers again",
                    slot.name,
                )
        if held is None:
            held = self._held((yield from issue(rejected)))
        return held

    def _shared_refresh(self, slot: Slot, issue: Issue, rejected: str | None) -> Flow[Held]:
        """The credential from Redis, or fetched by this instance under the lock and put
        there. Raises StoreUnavailable only before anything was asked of WeChat."""
        lock_life = self._lock_life
        token = secrets.token_hex(8)
        owner: str | None = token
        give_up = time.monotonic() + lock_life
        while True:
            held = yield from self._stored(slot, rejected)
            if held is not None:
                return held
            (locked,) = yield StoreCommands(
                (("SET", slot.lock_key, token, "NX", "PX", int(lock_life * 1000)),)
            )
            if locked:
                # The holder before may have stored it between the two commands.
                held = yield from self._stored(slot, rejected)
                if held is not None:
                    yield from self._unlock(slot, token)
                    return held
                break
            if time.monotonic() >= give_up:
                logger.warning(
                    "wxauth: another instance did not bring the account's %s in %.0f s: "
                    "fetching it here",
                    slot.name,
                    lock_life,
                )
                owner = None
                break
            yield Sleep(LOCK_POLL)
        try:
            held = self._held((yield from issue(rejected)))
        except Exception:
            if owner is not None:
                yield from self._unlock(slot, owner)
            raise
        life_ms = max(1, int((held.renew_at - self._clock()) * 1000))
        commands: list[tuple[str | int | float, ...]] = [
            ("SET", slot.key, held.value, "PX", life_ms)
        ]
        if owner is not None:
            commands.append(("EVAL", _UNLOCK, 1, slot.lock_key, owner))
        with contextlib.suppress(StoreUnavailable):  # this instance keeps it anyway
            yield StoreCommands(tuple(commands))
        return held

    def _stored(self, slot: Slot, rejected: str | None) -> Flow[Held | None]:
        raw, life_ms = yield StoreCommands((("GET", slot.key), ("PTTL", slot.key)))
        if raw is None or not isinstance(life_ms, int) or life_ms <= 0:
            return None
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if value == rejected:
            return None
        return Held(value, self._clock() + life_ms / 1000)

    def _unlock(self, slot: Slot, owner: str) -> Flow[None]:
        # A lock left behind expires by itself: a failure here costs others a short wait.
        with contextlib.suppress(StoreUnavailable):
            yield StoreCommands((("EVAL", _UNLOCK, 1, slot.lock_key, owner),))

    def _held(self, issued: Issued) -> Held:
        margin = min(RENEW_MARGIN, issued.expires_in / 2)
        return Held(issued.value, self._clock() + issued.expires_in - margin)
