"""WeChat's API paths answered as WeChat does: always HTTP 200 and WeChat's JSON dialect,
the method WeChat documents, parameters recorded in the order sent, and injected faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import Response as StarletteResponse

from .base import EmulatorState, RecordedCall, first_values, route_path
from .grants import GrantError
from .pages import fault_page
from .protocol import (
    API_CONTENT_TYPE,
    CGI_CONTENT_TYPE,
    JSONValue,
    error_payload,
    ip_not_allowed_errmsg,
    wechat_json,
)

__all__ = ["API_PREFIXES", "MAX_RECORDED_CALLS", "APIDispatch", "Endpoint"]

#: `calls` keeps at most this many entries (the newest), so load tests stay bounded.
MAX_RECORDED_CALLS = 10_000
#: Paths below these are WeChat's APIs: whatever they are asked, they answer HTTP 200 and JSON.
API_PREFIXES = ("/sns/", "/cgi-bin/")


@dataclass(frozen=True)
class Endpoint:
    """One WeChat API: its fault-injection name, its handler, the method WeChat documents,
    and the content type it answers with."""

    name: str
    # handler(params), or with `caller` handler(params, the caller's address).
    handler: Callable[..., dict[str, JSONValue]]
    method: str
    content_type: str
    # The /sns/ APIs take a POSTed form like a query string: long-lived clients (social-core,
    # allauth) POST the code exchange and are reported to work.
    form_posts: bool = False
    # The token APIs answer only callers on the account's IP allow-list, when it has one.
    ip_checked: bool = False
    # WeCom's APIs check and name the caller's address themselves.
    caller: bool = False


class APIDispatch(EmulatorState):
    """Routes a call below /sns/ or /cgi-bin/ to its handler in `_apis`."""

    _apis: dict[str, Endpoint]

    def _record(self, call: RecordedCall) -> None:
        with self._calls_lock:
            self.calls.append(call)
            # Trim in chunks so appending stays cheap while the list stays bounded.
            if len(self.calls) > MAX_RECORDED_CALLS + MAX_RECORDED_CALLS // 10:
                del self.calls[: len(self.calls) - MAX_RECORDED_CALLS]

    async def _params(self, request: Request, endpoint: Endpoint) -> tuple[tuple[str, str], ...]:
        query = parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if endpoint.method == "POST":
            return (*query, *await _json_fields(request))
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", "replace")
            return (*query, *parse_qsl(body, keep_blank_values=True))
        return tuple(query)

    def _answer(self, payload: dict[str, JSONValue], content_type: str) -> StarletteResponse:
        # Always HTTP 200, errors included; the content type is set by hand because Starlette
        # would add a charset to text/plain, and WeChat sends none.
        return StarletteResponse(wechat_json(payload), headers={"content-type": content_type})

    async def _api(self, request: Request) -> StarletteResponse:
        path = route_path(request.scope)
        endpoint = self._apis.get(path)
        content_type = CGI_CONTENT_TYPE if endpoint is None else endpoint.content_type
        if request.method == "HEAD":
            # Headers only, and nothing spent: a HEAD must not use up a code.
            return StarletteResponse(headers={"content-type": content_type})
        if endpoint is None:
            self._record(RecordedCall(path, ()))
            return self._answer(self._error(40066), content_type)
        allowed = ("GET", "POST") if endpoint.form_posts else (endpoint.method,)
        if request.method not in allowed:
            self._record(RecordedCall(path, ()))
            errcode = 43002 if endpoint.method == "POST" else 43001
            return self._answer(self._error(errcode), content_type)
        try:
            pairs = await self._params(request, endpoint)
        except GrantError as exc:
            self._record(RecordedCall(path, ()))
            return self._answer(self._error(exc.errcode), content_type)
        self._record(RecordedCall(path, pairs))
        fault = self._faults.draw(endpoint.name)
        if fault is not None:
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.http_status is not None:
                return HTMLResponse(fault_page(fault.http_status), status_code=fault.http_status)
            if fault.errcode is not None:
                return self._answer(self._caller_error(fault.errcode, request), content_type)
            if fault.body is not None:
                return StarletteResponse(fault.body, headers={"content-type": API_CONTENT_TYPE})
        if endpoint.ip_checked and not self.go_live.allows_ip(_caller(request)):
            return self._answer(self._caller_error(40164, request), content_type)
        over_quota = self._quotas.spend(endpoint.name, self._clock())
        if over_quota is not None:
            return self._answer(self._error(over_quota), content_type)
        try:
            values = first_values(pairs)
            payload = (
                endpoint.handler(values, _caller(request))
                if endpoint.caller
                else endpoint.handler(values)
            )
        except GrantError as exc:
            payload = self._error(exc.errcode)
        return self._answer(payload, content_type)

    def _caller_error(self, errcode: int, request: Request) -> dict[str, JSONValue]:
        # 40164 names the caller's address, as WeChat saw it.
        if errcode == 40164:
            return error_payload(40164, self._clock(), ip_not_allowed_errmsg(_caller(request)))
        return self._error(errcode)


def _caller(request: Request) -> str:
    return request.client.host if request.client is not None else ""


async def _json_fields(request: Request) -> tuple[tuple[str, str], ...]:
    """A JSON object body's fields, values as JSON text (strings as they are): 47001 when it
    is not a JSON object, as WeChat answers."""
    try:
        data = json.loads((await request.body()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise GrantError(47001) from None
    if not isinstance(data, dict):
        raise GrantError(47001)
    return tuple(
        (str(key), value if isinstance(value, str) else json.dumps(value))
        for key, value in data.items()
    )
