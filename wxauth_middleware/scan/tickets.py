"""Where a scan login's tickets live (`scan/flow.py`): in Redis with `redis_url` (a hash per
ticket, so every step is atomic on one key), else in this process.

A ticket is a small map of fields: "t" its record (written once, when the desktop's page is
made), "s" scanned, "d" the phone's decision, "u" spent. Writes that decide something are "set
if not set": the first one wins, on any instance.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..cookies import Clock
from ..effects import Flow, StoreCommands

__all__ = [
    "MAX_MEMORY_TICKETS",
    "STATUSES",
    "MemoryTickets",
    "RedisTickets",
    "Ticket",
    "TicketStore",
    "read_ticket",
    "ticket_record",
]

# At most this many tickets wait in the process at once (each a few hundred bytes); a flood of
# page visits beyond it gets "try again" rather than the process's memory.
MAX_MEMORY_TICKETS = 100_000
_RECORD_V = 1
STATUSES = ("waiting", "scanned", "confirmed", "cancelled", "expired")


class TicketStore(Protocol):
    """A ticket is a small map of fields: "t" its record, "s" scanned, "d" the phone's decision,
    "u" spent. `set_once` sets a field only if it is not set, and says whether it did."""

    def create(self, ticket: str, record: str, life: int) -> Flow[bool]: ...
    def fields(self, ticket: str) -> Flow[dict[str, str]]: ...
    def set_once(self, ticket: str, name: str, value: str, life: int) -> Flow[bool]: ...


class RedisTickets:
    """Tickets in Redis: one hash `scan:<ticket>` each, expiring with the ticket."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix + "scan:"

    def create(self, ticket: str, record: str, life: int) -> Flow[bool]:
        key = self._prefix + ticket
        yield StoreCommands((("HSET", key, "t", record), ("EXPIRE", key, life)))
        return True

    def fields(self, ticket: str) -> Flow[dict[str, str]]:
        (raw,) = yield StoreCommands((("HGETALL", self._prefix + ticket),))
        return {_text(k): _text(v) for k, v in (raw or {}).items()}

    def set_once(self, ticket: str, name: str, value: str, life: int) -> Flow[bool]:
        key = self._prefix + ticket
        # EXPIRE too: a ticket that expired between the caller's read and this write must not
        # come back as a key without a life.
        done, _ = yield StoreCommands((("HSETNX", key, name, value), ("EXPIRE", key, life)))
        return bool(done)


class MemoryTickets:
    """Tickets in this process (no redis_url): right for one process only, since every step of
    a scan login must find the ticket where the desktop's page made it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # ticket -> (when it may be forgotten, its fields); in creation order, and every ticket
        # lives as long, so the ones to forget are always at the front.
        self._tickets: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tickets)

    def create(self, ticket: str, record: str, life: int) -> Flow[bool]:
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            if len(self._tickets) >= MAX_MEMORY_TICKETS:
                return False
            self._tickets[ticket] = (now + life, {"t": record})
        return True
        yield  # a flow: never reached

    def fields(self, ticket: str) -> Flow[dict[str, str]]:
        with self._lock:
            entry = self._tickets.get(ticket)
            found = dict(entry[1]) if entry is not None and entry[0] > self._clock() else {}
        return found
        yield  # a flow: never reached

    def set_once(self, ticket: str, name: str, value: str, life: int) -> Flow[bool]:
        with self._lock:
            entry = self._tickets.get(ticket)
            if entry is None or entry[0] <= self._clock() or name in entry[1]:
                return False
            entry[1][name] = value
        return True
        yield  # a flow: never reached

    def _forget_expired(self, now: float) -> None:
        tickets = self._tickets
        while tickets:
            ticket, (until, _) = next(iter(tickets.items()))
            if until > now:
                break
            del tickets[ticket]


# -- a ticket as read --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ticket:
    binding: str  # the SHA-256 of the desktop's binding secret
    return_to: str
    expires_at: float
    desktop: str  # what the desktop's user agent says it is
    scope: str  # the scope the desktop's page needs, asked of the phone
    scanned: bool
    decision: str | None  # "cancel", a confirmed session's payload (JSON), or None
    spent: bool

    def status(self, now: float) -> str:
        if self.spent or now >= self.expires_at:
            return "expired"
        if self.decision == "cancel":
            return "cancelled"
        if self.decision is not None:
            return "confirmed"
        return "scanned" if self.scanned else "waiting"


def ticket_record(binding: str, return_to: str, expires_at: float, desktop: str, scope: str) -> str:
    return json.dumps(
        [_RECORD_V, binding, return_to, expires_at, desktop, scope],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def read_ticket(fields: Mapping[str, str]) -> Ticket | None:
    try:
        payload = json.loads(fields.get("t", ""))
    except ValueError:
        return None
    if not isinstance(payload, list) or len(payload) != 6 or payload[0] != _RECORD_V:
        return None
    _, binding, return_to, expires_at, desktop, scope = payload
    if not all(isinstance(v, str) for v in (binding, return_to, desktop, scope)):
        return None
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        return None
    return Ticket(
        binding,
        return_to,
        float(expires_at),
        desktop,
        scope,
        scanned="s" in fields,
        decision=fields.get("d"),
        spent="u" in fields,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
