"""Fault injection: slow, failing and malformed answers on demand."""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import TypedDict

__all__ = [
    "ENDPOINTS",
    "FaultDecision",
    "FaultKwargs",
    "FaultOptions",
    "FaultPlan",
    "fault_kwargs_from_json",
]

# The API endpoints faults can target; "*" targets them all. The authorize page is a browser
# page, not an API, and is never faulted.
ENDPOINTS = (
    "access_token",
    "refresh_token",
    "userinfo",
    "auth",
    "stable_token",
    "token",
    "getticket",
    "user_info",
    # WeCom's (the emulator's corp).
    "wecom_gettoken",
    "wecom_getuserinfo",
    "wecom_getuserdetail",
    "wecom_jsapi_ticket",
    "wecom_agent_ticket",
    # A third-party platform's (--platform).
    "api_component_token",
    "api_create_preauthcode",
    "api_query_auth",
    "api_authorizer_token",
    "component_access_token",
    "component_refresh_token",
)


@dataclass
class _Fault:
    endpoint: str
    latency: float
    errcode: int | None
    http_status: int | None
    body: bytes | None
    remaining: int | None
    probability: float

    @property
    def has_outcome(self) -> bool:
        return self.http_status is not None or self.errcode is not None or self.body is not None


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one API call: wait `latency`, then answer with at most one outcome."""

    latency: float = 0.0
    http_status: int | None = None
    errcode: int | None = None
    body: bytes | None = None


def _check(
    endpoint: str,
    latency: float,
    errcode: int | None,
    http_status: int | None,
    body: bytes | None,
    times: int | None,
    probability: float,
) -> None:
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be '*' or one of {', '.join(ENDPOINTS)}; got {endpoint!r}")
    if not math.isfinite(latency) or latency < 0:
        raise ValueError(f"latency must be a number of seconds >= 0; got {latency!r}")
    if http_status is not None and not 200 <= http_status <= 599:
        raise ValueError(f"http_status must be between 200 and 599; got {http_status!r}")
    if body is not None and not isinstance(body, bytes):
        raise ValueError("body must be bytes")
    if times is not None and times < 1:
        raise ValueError(f"times must be >= 1, or None for 'until cleared'; got {times!r}")
    if not 0 < probability <= 1:
        raise ValueError(f"probability must be > 0 and <= 1; got {probability!r}")
    if latency == 0 and errcode is None and http_status is None and body is None:
        raise ValueError("a fault needs latency, errcode, http_status or body")


class FaultPlan:
    """The active faults, in injection order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        # Random failures only need to look random; nothing here is security sensitive.
        self._rng = random.Random()  # noqa: S311

    def add(
        self,
        endpoint: str = "*",
        *,
        latency: float = 0.0,
        errcode: int | None = None,
        http_status: int | None = None,
        body: bytes | None = None,
        times: int | None = 1,
        probability: float = 1.0,
    ) -> None:
        _check(endpoint, latency, errcode, http_status, body, times, probability)
        fault = _Fault(endpoint, latency, errcode, http_status, body, times, probability)
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def draw(self, endpoint: str) -> FaultDecision | None:
        """Fire the faults matching one call to `endpoint`.

        Every matching fault whose probability roll succeeds fires and uses up one of its
        `times`: latencies add up, and the first fired fault with an outcome decides the
        answer. Later outcome faults are not fired, so they keep their count.
        """
        latency = 0.0
        chosen: _Fault | None = None
        fired = False
        with self._lock:
            for fault in self._faults:
                if fault.endpoint not in ("*", endpoint):
                    continue
                if fault.has_outcome and chosen is not None:
                    continue
                if fault.probability < 1 and self._rng.random() >= fault.probability:
                    continue
                fired = True
                latency += fault.latency
                if fault.has_outcome:
                    chosen = fault
                if fault.remaining is not None:
                    fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        if not fired:
            return None
        if chosen is None:
            return FaultDecision(latency=latency)
        return FaultDecision(latency, chosen.http_status, chosen.errcode, chosen.body)


_JSON_KEYS = ("endpoint", "latency", "errcode", "http_status", "body", "times", "probability")


class FaultOptions(TypedDict, total=False):
    """What a fault does: `WeChatEmulator.inject`'s keyword arguments."""

    latency: float
    errcode: int | None
    http_status: int | None
    body: bytes | None
    times: int | None
    probability: float


class FaultKwargs(FaultOptions, total=False):
    """All of `WeChatEmulator.inject`'s arguments, as the control API receives them."""

    endpoint: str


def _number(key: str, value: object) -> float:
    # bool is an int in Python but never a sensible number of seconds or a probability.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number; got {value!r}")
    return float(value)


def _optional_int(key: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer or null; got {value!r}")
    return value


def fault_kwargs_from_json(data: object) -> FaultKwargs:
    """Validate the control API's JSON object into `FaultPlan.add` keyword arguments.

    `body` is a string in JSON and becomes its UTF-8 bytes. Raises ValueError for keys or
    types other than the documented ones; value ranges are checked by `FaultPlan.add`.
    """
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object of inject() keyword arguments")
    unknown = sorted(set(data) - set(_JSON_KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown}; allowed: {', '.join(_JSON_KEYS)}")
    kwargs: FaultKwargs = {}
    if "endpoint" in data:
        if not isinstance(data["endpoint"], str):
            raise ValueError(f"endpoint must be a string; got {data['endpoint']!r}")
        kwargs["endpoint"] = data["endpoint"]
    if "latency" in data:
        kwargs["latency"] = _number("latency", data["latency"])
    if "probability" in data:
        kwargs["probability"] = _number("probability", data["probability"])
    if "errcode" in data:
        kwargs["errcode"] = _optional_int("errcode", data["errcode"])
    if "http_status" in data:
        kwargs["http_status"] = _optional_int("http_status", data["http_status"])
    if "times" in data:
        kwargs["times"] = _optional_int("times", data["times"])
    if "body" in data:
        body = data["body"]
        if body is not None and not isinstance(body, str):
            raise ValueError(f"body must be a string or null; got {body!r}")
        kwargs["body"] = None if body is None else body.encode("utf-8")
    return kwargs
