"""The drivers: carrying out the effects the sans-I/O flows yield.

`drive_sync` (WSGI) and `drive_async` (ASGI) run a flow to completion with the middleware's own
connection pool for WeChat's API (`_http/sync_pool.py`, `_http/pool.py`) or an httpx client,
redis-py for the store, the application's hooks, sleeps, and a lock around the flows that must
run one at a time (`Exclusive`). This is the only module that talks to WeChat; the error mapping
of httpx's exceptions and the filter that keeps credentials out of httpx's log lines live here
with it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx
from asgiref.sync import async_to_sync, sync_to_async

from ._http.http11 import Answer
from ._http.pool import Pool
from ._http.sync_pool import SyncPool
from .accounts import host_name
from .effects import (
    Effect,
    Exclusive,
    Flow,
    HookCall,
    Sleep,
    StoreCommands,
    UpstreamRequest,
    UpstreamResponse,
)
from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .storage.redis_client import run_async, run_sync

if TYPE_CHECKING:
    from .core import LoginCore
    from .routing import AccountRouter
    from .storage.redis_client import AsyncClient, SyncClient

__all__ = [
    "drive_async",
    "drive_sync",
    "load_account_async",
    "load_account_sync",
    "running_loop",
]

T = TypeVar("T")


# Query parameters that are credentials: the AppSecret, WeChat's tokens, the one-time code.
_SECRET_PARAMS = frozenset(
    {"secret", "access_token", "refresh_token", "code", "component_access_token"}
)


class _RedactCredentials(logging.Filter):
    """Masks credentials in the URLs httpx logs ("HTTP Request: GET <url> ..." at INFO).

    WeChat's API takes the AppSecret and tokens as query parameters, so httpx's request log
    line would otherwise write them to the application's logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) for arg in record.args
        ):
            record.args = tuple(
                _redacted(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _redacted(url: httpx.URL) -> httpx.URL:
    if not any(key in _SECRET_PARAMS for key in url.params):
        return url
    params = [(k, "redacted" if k in _SECRET_PARAMS else v) for k, v in url.params.multi_items()]
    return url.copy_with(params=params)


_httpx_logger = logging.getLogger("httpx")
_httpx_logger.addFilter(_RedactCredentials())


def _upstream_error(exc: Exception, request: UpstreamRequest) -> UpstreamError:
    # The message names the endpoint only: the query holds the AppSecret and tokens.
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        # Nothing was sent: as transient as a refused connection.
        return UpstreamUnavailable(
            f"WeChat {request.endpoint} could not be connected to in time ({name})",
            transient=True,
        )
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return UpstreamTimeout(f"WeChat {request.endpoint} timed out ({name})")
    return UpstreamUnavailable(
        f"WeChat {request.endpoint} could not be reached ({name})",
        transient=isinstance(exc, httpx.ConnectError),
    )


def drive_sync(
    flow: Flow[T],
    client: httpx.Client | SyncPool,
    limiter: threading.Semaphore | None = None,
    store: SyncClient | None = None,
) -> T:
    """Run `flow` to completion with the WSGI middleware's own connection pool or a synchronous
    httpx client (and redis-py client, for a flow of the session store). Whatever an effect
    raises is thrown into the flow, which decides what it means."""
    try:
        effect = next(flow)
        while True:
            try:
                result = _perform_sync(effect, client, limiter, store)
            except Exception as exc:
                effect = flow.throw(exc)
            except BaseException as exc:
                # Interrupted: the flow releases what it holds (its cleanup's effects are
                # carried out), then the interruption goes on.
                effect = flow.throw(exc)
                drive_sync(_resumed(flow, effect), client, limiter, store)
                raise
            else:
                effect = flow.send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value


async def drive_async(
    flow: Flow[T],
    client: httpx.AsyncClient | Pool,
    limiter: anyio.Semaphore | None = None,
    store: AsyncClient | None = None,
) -> T:
    """Run `flow` to completion with an asynchronous httpx client, or the ASGI middleware's
    own connection pool (asyncio only), the same way."""
    try:
        effect = next(flow)
        while True:
            try:
                result = await _perform_async(effect, client, limiter, store)
            except Exception as exc:
                effect = flow.throw(exc)
            except BaseException as exc:
                # Cancelled: the flow releases what it holds, its cleanup shielded from the
                # cancellation, then the cancellation goes on.
                effect = flow.throw(exc)
                with anyio.CancelScope(shield=True):
                    await drive_async(_resumed(flow, effect), client, limiter, store)
                raise
            else:
                effect = flow.send(result)
    except StopIteration as stop:
        value: T = stop.value
        return value


def _resumed(flow: Flow[T], effect: Effect) -> Flow[None]:
    """The rest of `flow`, from `effect` on, whatever it finally raises or returns: the
    cleanup of a flow that an interruption was thrown into."""
    try:
        while True:
            effect = flow.send((yield effect))
    except BaseException:  # the interruption it re-raises, or its end: cleanup is over
        return


def _perform_sync(
    effect: Effect,
    client: httpx.Client | SyncPool,
    limiter: threading.Semaphore | None,
    store: SyncClient | None,
) -> object:
    if isinstance(effect, StoreCommands):
        assert store is not None, "a store flow driven without a store client"
        return run_sync(store, effect)
    if isinstance(effect, HookCall):
        # An async hook runs on a private event loop: only at login, never per request.
        result = effect.hook(*effect.args)
        return async_to_sync(_awaited)(result) if inspect.isawaitable(result) else result
    if isinstance(effect, Sleep):
        time.sleep(effect.seconds)
        return None
    if isinstance(effect, Exclusive):
        with effect.gate.thread_lock:
            return drive_sync(effect.flow, client, limiter, store)
    if isinstance(client, SyncPool):
        pool = client.for_url(effect.url)
        request, timeout = _pool_request(effect, pool)
        try:
            answer = pool.request(request, timeout)
        except (httpx.HTTPError, OSError) as exc:
            raise _upstream_error(exc, effect) from None
        return _pooled_response(effect, answer)
    # httpx's timeouts bound each phase (each read); this bounds the whole call, the wait for
    # a free slot and a body trickled a byte at a time included.
    deadline = time.monotonic() + (effect.timeout or math.inf)
    try:
        if limiter is not None and not limiter.acquire(timeout=effect.timeout):
            raise TimeoutError("no free slot for a call to WeChat")
        try:
            with client.stream(
                effect.method,
                effect.url,
                params=effect.params,
                json=effect.json,
                timeout=effect.timeout,
            ) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("no whole answer in time")
                    body += chunk
        finally:
            if limiter is not None:
                limiter.release()
    except (httpx.HTTPError, TimeoutError) as exc:
        raise _upstream_error(exc, effect) from None
    return UpstreamResponse(r.status_code, bytes(body), r.headers.get("content-type", ""))


async def _perform_async(
    effect: Effect,
    client: httpx.AsyncClient | Pool,
    limiter: anyio.Semaphore | None,
    store: AsyncClient | None,
) -> object:
    if isinstance(effect, StoreCommands):
        assert store is not None, "a store flow driven without a store client"
        return await run_async(store, effect)
    if isinstance(effect, HookCall):
        # A plain hook runs in a worker thread: a database call in it must not block the loop.
        if inspect.iscoroutinefunction(effect.hook):
            return await effect.hook(*effect.args)
        result = await sync_to_async(effect.hook, thread_sensitive=False)(*effect.args)
        return await result if inspect.isawaitable(result) else result
    if isinstance(effect, Sleep):
        await anyio.sleep(effect.seconds)
        return None
    if isinstance(effect, Exclusive):
        async with effect.gate.async_lock(running_loop(), anyio.Lock):
            return await drive_async(effect.flow, client, limiter, store)
    if isinstance(client, Pool):
        return await _pooled(effect, client.for_url(effect.url))
    try:
        # httpx's timeouts bound each phase; this bounds the whole call, the wait for a free
        # slot included.
        with anyio.fail_after(effect.timeout or math.inf):
            async with limiter if limiter is not None else contextlib.nullcontext():
                r = await client.request(
                    effect.method,
                    effect.url,
                    params=effect.params,
                    json=effect.json,
                    timeout=effect.timeout,
                )
    except (httpx.HTTPError, TimeoutError) as exc:
        raise _upstream_error(exc, effect) from None
    return _response(r)


async def _pooled(effect: UpstreamRequest, pool: Pool) -> UpstreamResponse:
    request, timeout = _pool_request(effect, pool)
    try:
        answer = await pool.request(request, timeout)
    except (httpx.HTTPError, OSError) as exc:
        raise _upstream_error(exc, effect) from None
    return _pooled_response(effect, answer)


def _pool_request(effect: UpstreamRequest, pool: Pool | SyncPool) -> tuple[bytes, float]:
    """The bytes of `effect` as httpx would send them, and the time it may take; the pool
    bounds the whole call, the wait for a free connection included."""
    # A POST's body as httpx encodes json=... (compact, UTF-8).
    json_body = (
        None if effect.json is None else httpx.Request("POST", "/", json=effect.json).content
    )
    return pool.target.request(effect.url, effect.params, json_body), effect.timeout or pool.timeout


def _pooled_response(effect: UpstreamRequest, answer: Answer) -> UpstreamResponse:
    if _httpx_logger.isEnabledFor(logging.INFO):
        # httpx's log line for a call, its credentials masked the same way.
        url = _redacted(httpx.URL(effect.url, params=effect.params))
        _httpx_logger.info(
            'HTTP Request: %s %s "HTTP/1.1 %d %s"',
            effect.method,
            url,
            answer.status,
            answer.reason,
        )
    return UpstreamResponse(answer.status, answer.body, answer.content_type)


def running_loop() -> object:
    """The running event loop: what the async clients and locks belong to."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # another async library (trio): one lock for the process
        return None


async def _awaited(awaitable: Awaitable[object]) -> object:
    return await awaitable


def _response(r: httpx.Response) -> UpstreamResponse:
    return UpstreamResponse(r.status_code, r.content, r.headers.get("content-type", ""))


# -- the `accounts` callable: asked for a host's account, within http_timeout ---------------


def load_account_sync(router: AccountRouter, host_header: str) -> LoginCore | None:
    """The core serving a host, from the router's loader (WSGI): one call per host at a
    time, the other requests for the host wait for it. Raises AccountUnavailable."""
    name = host_name(host_header)
    loading, mine = router.begin(name)
    timeout = router.config.http_timeout
    if mine:
        try:
            router.answered(name, _call_in_thread(router.loader, name, timeout))
        except Exception as exc:
            router.failed(name, exc)
        finally:
            router.end(name, loading)
    else:
        loading.done.wait(timeout)
    return router.settled(name)


async def load_account_async(router: AccountRouter, host_header: str) -> LoginCore | None:
    """The core serving a host, from the router's loader (ASGI): an async loader awaited, a
    sync one in a thread (never blocking the event loop)."""
    name = host_name(host_header)
    loading, mine = router.begin(name)
    timeout = router.config.http_timeout
    loader = router.loader
    if mine:
        loading.async_done = anyio.Event()
        try:
            answer: object
            with anyio.fail_after(timeout):
                if router.loader_is_async:
                    assert loader is not None
                    called = loader(name)
                    answer = await called if inspect.isawaitable(called) else called
                else:
                    answer = await anyio.to_thread.run_sync(_call_in_thread, loader, name, timeout)
            router.answered(name, answer)
        except Exception as exc:
            router.failed(name, exc)
        finally:
            router.end(name, loading)
            loading.async_done.set()
    elif isinstance(loading.async_done, anyio.Event):
        with anyio.move_on_after(timeout):
            await loading.async_done.wait()
    else:  # the WSGI middleware is asking (one router, both adapters): wait in a thread
        await anyio.to_thread.run_sync(loading.done.wait, timeout)
    return router.settled(name)


def _call_in_thread(loader: Callable[[str], Any] | None, name: str, timeout: float) -> object:
    """`loader(name)` in a thread of its own (an async loader on a private event loop): its
    answer, or its exception; TimeoutError after `timeout` seconds, the caller free then
    while the thread finishes on its own (a daemon: it never holds the process's exit)."""
    assert loader is not None
    outcome: list[tuple[bool, object]] = []
    done = threading.Event()

    def run() -> None:
        try:
            answer = loader(name)
            if inspect.isawaitable(answer):
                answer = asyncio.run(_awaited(answer))
            outcome.append((True, answer))
        except BaseException as exc:  # carried to the caller
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="wxauth-accounts", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"the accounts callable took more than {timeout} s")
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value
