"""What a relay keeps in Redis, as sans-I/O flows: its logins in progress, its tickets, and
each site's count of logins this minute. Keys, under `redis_prefix`:

- `relay:start:{<id>}`: a login the relay started for a site (the site, the browser's binding,
  the scope), until it is finished (taken with GETDEL: once) or `login_max_age` has passed;
- `relay:done:{<id>}`: who finished the login of `<id>`, for which site, with which ticket, so
  that a duplicate of the finishing request (WeChat's double redirect) gets the same ticket;
- `relay:ticket:<sha256 of the ticket>`: a finished login waiting for its site (the site, the
  binding, the user), taken once with GETDEL, gone after TICKET_LIFE seconds. The key holds
  the ticket's hash: whoever reads Redis's keys holds no ticket;
- `relay:rate:<kind>:<site>:<minute>`: the site's logins started, and tickets redeemed, that
  minute.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..effects import Flow, Sleep, StoreCommands

__all__ = ["TICKET_LIFE", "Finished", "RelayRecords", "Started"]

# How long a ticket can be redeemed: the browser's one redirect back to its site, and the
# site's one call to the relay.
TICKET_LIFE = 60
# How often a duplicate finishing request looks for the first one's ticket.
_POLL = 0.05


@dataclass(frozen=True, slots=True)
class Started:
    """A login the relay started for `site`, bound to the browser of `binding`."""

    site: str
    binding: str
    scope: str
    issued: int


@dataclass(frozen=True, slots=True)
class Finished:
    """A login the relay finished for `site`: its user (as `relay/links.py` writes it), or
    None when the visitor refused the profile and had no session to keep."""

    site: str
    binding: str
    user: dict[str, Any] | None
    issued: int
    profile_declined: bool


class RelayRecords:
    """The relay's records in Redis (`redis_prefix` + "relay:")."""

    def __init__(self, prefix: str, login_life: int) -> None:
        self._prefix = prefix + "relay:"
        self._login_life = login_life

    def keep_start(self, started: Started) -> Flow[str]:
        """Keeps a login started; returns its id (opaque, in the relay's own URLs only)."""
        rid = secrets.token_hex(16)
        value = json.dumps([started.site, started.binding, started.scope, started.issued])
        yield StoreCommands((("SET", self._start_key(rid), value, "EX", self._login_life),))
        return rid

    def take_start(self, rid: str, identity: str) -> Flow[tuple[Started | None, bool]]:
        """Takes the login of id `rid` for the visitor `identity` (no one can take it again):
        the login (None if there is none) and whether this request is the first to finish
        it. False is a duplicate of the finishing request: `earlier_finish` says its ticket."""
        who = hashlib.sha256(identity.encode()).hexdigest()
        raw, first = yield StoreCommands(
            (
                ("GETDEL", self._start_key(rid)),
                ("SET", self._done_key(rid), json.dumps([who]), "NX", "EX", self._login_life),
            )
        )
        fields = _json(raw)
        if not (isinstance(fields, list) and len(fields) == 4):
            return None, bool(first)
        site, binding, scope, issued = fields
        if not (isinstance(site, str) and isinstance(binding, str) and isinstance(scope, str)):
            return None, bool(first)
        if not isinstance(issued, int):
            return None, bool(first)
        return Started(site, binding, scope, issued), bool(first)

    def finished(self, rid: str, identity: str, site: str, ticket: str) -> Flow[None]:
        """Says that the login `rid` was finished by `identity` for `site` with `ticket`."""
        who = hashlib.sha256(identity.encode()).hexdigest()
        value = json.dumps([who, site, ticket])
        yield StoreCommands((("SET", self._done_key(rid), value, "EX", self._login_life),))

    def earlier_finish(self, rid: str, identity: str, wait: float) -> Flow[tuple[str, str] | None]:
        """The site and ticket the first request finishing login `rid` gave the visitor
        `identity`, waiting up to `wait` seconds for it to say; None if it was another
        visitor's, or did not say in time."""
        who = hashlib.sha256(identity.encode()).hexdigest()
        waited = 0.0
        while True:
            (raw,) = yield StoreCommands((("GET", self._done_key(rid)),))
            fields = _json(raw)
            if not (isinstance(fields, list) and fields and fields[0] == who):
                return None
            if len(fields) == 3 and all(isinstance(value, str) for value in fields):
                return fields[1], fields[2]
            if waited >= wait:
                return None
            yield Sleep(_POLL)
            waited += _POLL

    def keep_ticket(self, ticket: str, finished: Finished) -> Flow[None]:
        """Keeps a finished login for its site, redeemed with `ticket` (`new_ticket()`)."""
        value = json.dumps(
            [
                finished.site,
                finished.binding,
                finished.user,
                finished.issued,
                finished.profile_declined,
            ]
        )
        yield StoreCommands((("SET", self._ticket_key(ticket), value, "EX", TICKET_LIFE),))

    def take_ticket(self, ticket: str) -> Flow[Finished | None]:
        """The finished login of `ticket`, which no one can take again; None if there is
        none (never kept, taken already, or expired)."""
        (raw,) = yield StoreCommands((("GETDEL", self._ticket_key(ticket)),))
        fields = _json(raw)
        if not (isinstance(fields, list) and len(fields) == 5):
            return None
        site, binding, user, issued, declined = fields
        if not (isinstance(site, str) and isinstance(binding, str)):
            return None
        if not (isinstance(user, dict) or (user is None and declined is True)):
            return None
        if not (isinstance(issued, int) and isinstance(declined, bool)):
            return None
        return Finished(site, binding, user, issued, declined)

    @staticmethod
    def new_ticket() -> str:
        """A new ticket: unguessable, URL-safe."""
        return secrets.token_urlsafe(32)

    def count(self, kind: str, site: str, minute: int) -> Flow[int]:
        """One more `kind` ("start", "redeem") of `site` in `minute` (since the epoch); how
        many it has had."""
        key = f"{self._prefix}rate:{kind}:{site}:{minute}"
        count, _ = yield StoreCommands((("INCR", key), ("EXPIRE", key, 120)))
        return int(count)

    # A login's two keys share a Redis Cluster hash slot (its id in braces): they change in
    # one transaction.
    def _start_key(self, rid: str) -> str:
        return f"{self._prefix}start:{{{rid}}}"

    def _done_key(self, rid: str) -> str:
        return f"{self._prefix}done:{{{rid}}}"

    def _ticket_key(self, ticket: str) -> str:
        return f"{self._prefix}ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"


def _json(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
