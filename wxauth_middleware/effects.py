"""The effects a sans-I/O flow yields, and the `Flow` type.

A flow is a generator: it yields an effect (a call to WeChat's API, a pause, commands for the
session store, a call of an application hook) and is sent back its result. The drivers
(`drivers.py`) carry effects out; nothing here touches a socket.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "Effect",
    "Flow",
    "HookCall",
    "Sleep",
    "StoreCommands",
    "UpstreamRequest",
    "UpstreamResponse",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """A call to WeChat's API: always a GET with its query parameters in WeChat's order."""

    url: str
    params: tuple[tuple[str, str], ...]
    # The name used in logs and errors, e.g. "sns/oauth2/access_token"; never the query.
    endpoint: str = field(default="")
    # Seconds this call may take; None leaves it to the client's default.
    timeout: float | None = None
    method: Literal["GET"] = "GET"


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
    """A call of an application hook (`on_login`), which may be sync or async: the driver
    makes it the way its side of the world can (awaited, or run in a worker thread)."""

    hook: Callable[..., object]
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: str = ""


# A flow yields the effects to carry out and is sent each one's result: an UpstreamResponse,
# what the hook returned, None, the store's replies.
Effect = UpstreamRequest | HookCall | Sleep | StoreCommands
Flow = Generator[Effect, Any, T]
