"""The effects a sans-I/O flow yields, and the `Flow` type.

A flow is a generator: it yields an effect (a call to WeChat's API, a pause, commands for the
session store, a call of an application hook, a flow to run alone) and is sent back its result.
The drivers (`drivers.py`) carry effects out; nothing here touches a socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "Effect",
    "Exclusive",
    "Flow",
    "Gate",
    "HookCall",
    "Sleep",
    "StoreCommands",
    "UpstreamRequest",
    "UpstreamResponse",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """A call to WeChat's API: a GET with its query parameters in WeChat's order, or a POST of
    a JSON body (`json`)."""

    url: str
    params: tuple[tuple[str, str], ...] = ()
    # The name used in logs and errors, e.g. "sns/oauth2/access_token"; never the query.
    endpoint: str = field(default="")
    # Seconds this call may take; None leaves it to the client's default.
    timeout: float | None = None
    method: Literal["GET", "POST"] = "GET"
    # A POST's body, sent as JSON. It may hold the AppSecret: never in a repr.
    json: Mapping[str, object] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before the next attempt (a retry's backoff): the driver sleeps its own way."""

    seconds: float


@dataclass(frozen=True, slots=True)
class StoreCommands:
    """Redis commands for the session store (the `redis_url` option), run in one MULTI/EXEC
    transaction when there are several (all their keys in one hash slot), or, not `atomic`,
    in one pipeline (keys anywhere); the flow is sent the list of their replies."""

    commands: tuple[tuple[str | int | float, ...], ...]
    atomic: bool = True


@dataclass(frozen=True, slots=True)
class HookCall:
    """A call of an application hook (`on_login`), which may be sync or async, or of a
    function too slow for the event loop (a QR code's drawing): the driver makes it the way
    its side of the world can (awaited, or run in a worker thread)."""

    hook: Callable[..., object]
    args: tuple[object, ...]


class Gate:
    """One at a time in this process: flows run under `Exclusive(gate, ...)` run one after
    another (a thread lock for the synchronous driver, an event-loop lock for the async one),
    so a burst of callers that find a credential missing makes one call to WeChat, not many."""

    __slots__ = ("_async_lock", "thread_lock")

    def __init__(self) -> None:
        self.thread_lock = threading.Lock()
        # (the event loop, its lock): a lock belongs to one loop.
        self._async_lock: tuple[object, Any] | None = None

    def async_lock(self, loop: object, make: Callable[[], Any]) -> Any:
        """The lock of event loop `loop`, made with `make` the first time."""
        if self._async_lock is None or self._async_lock[0] is not loop:
            self._async_lock = (loop, make())
        return self._async_lock[1]


@dataclass(frozen=True, slots=True)
class Exclusive:
    """Run `flow` to completion while holding `gate`; the flow is sent what it returned (or
    thrown what it raised). The gate is released however the flow ends, cancellation included."""

    gate: Gate
    flow: Flow[Any]


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: str = ""


# A flow yields the effects to carry out and is sent each one's result: an UpstreamResponse,
# what the hook returned, None, the store's replies, what an exclusive flow returned.
Effect = UpstreamRequest | HookCall | Sleep | StoreCommands | Exclusive
Flow = Generator[Effect, Any, T]
