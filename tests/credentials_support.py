"""A scripted WeChat for the Official Account's own API (httpx.MockTransport), the middleware
around it, and calling the middleware's methods the way each adapter is called."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

import httpx

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware

from .support import SECRET_KEY, inner_app, inner_wsgi_app

API = "https://api.weixin.qq.com"
APP_ID = "wx0123456789abcdef"
APP_SECRET = "account-secret-0123456789"
# WeChat's published example (JS-SDK documentation, appendix 1).
EXAMPLE_TICKET = (
    "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
)
EXAMPLE_NONCE = "Wm3WZYTPz0wzccnW"
EXAMPLE_TIMESTAMP = 1414587457
EXAMPLE_URL = "http://mp.weixin.qq.com?params=value"
EXAMPLE_SIGNATURE = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


class ScriptedWeChat:
    """The account's side of WeChat's API, counting calls: stable_token (normal mode: the
    same token while valid; force_refresh: a new one), getticket and user/info, which refuse
    a token that is not the current one with 40001. `delay` makes each call take a while, so
    that concurrent callers really overlap."""

    def __init__(self, delay: float = 0.0, ticket: str = EXAMPLE_TICKET) -> None:
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.generation = 1
        self.ticket = ticket
        self.answers: dict[str, dict[str, Any]] = {}  # path -> a canned (error) answer
        self._lock = threading.Lock()

    @property
    def token(self) -> str:
        return f"ACCOUNT-TOKEN-{self.generation}-" + "x" * 200

    def rotate(self) -> None:
        """What force_refresh from another client does: the current token is invalidated."""
        self.generation += 1

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            self.calls[path] += 1
        if path in self.answers:
            return httpx.Response(200, json=self.answers[path])
        if path == "/cgi-bin/stable_token":
            assert request.method == "POST"
            body = json.loads(request.content)
            assert body["grant_type"] == "client_credential"
            assert (body["appid"], body["secret"]) == (APP_ID, APP_SECRET)
            if body["force_refresh"]:
                self.rotate()
            return httpx.Response(200, json={"access_token": self.token, "expires_in": 7200})
        assert request.method == "GET"
        if request.url.params.get("access_token") != self.token:
            return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})
        if path == "/cgi-bin/ticket/getticket":
            assert request.url.params["type"] == "jsapi"
            return httpx.Response(
                200, json={"errcode": 0, "errmsg": "ok", "ticket": self.ticket, "expires_in": 7200}
            )
        assert path == "/cgi-bin/user/info"
        subscribed = request.url.params["openid"] == "o-follower"
        return httpx.Response(200, json={"subscribe": int(subscribed), "openid": "x"})

    def transport(self, kind: str) -> httpx.MockTransport:
        if kind == "asgi":

            async def handle_async(request: httpx.Request) -> httpx.Response:
                await asyncio.sleep(self.delay)
                return self.answer(request)

            return httpx.MockTransport(handle_async)

        def handle(request: httpx.Request) -> httpx.Response:
            time.sleep(self.delay)
            return self.answer(request)

        return httpx.MockTransport(handle)

    def count(self, name: str) -> int:
        return self.calls[f"/cgi-bin/{name}"]


Middleware = WeChatAuthMiddleware | WeChatAuthWSGIMiddleware


def middleware(kind: str, wechat: ScriptedWeChat, **options: Any) -> Middleware:
    options = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "secret_key": SECRET_KEY,
        "transport": wechat.transport(kind),
        **options,
    }
    if kind == "asgi":
        return WeChatAuthMiddleware(inner_app(), **options)
    return WeChatAuthWSGIMiddleware(inner_wsgi_app, **options)


def call(app: Middleware, name: str, *args: Any, **kwargs: Any) -> Any:
    """`app.<name>(...)`: awaited on a fresh event loop for the ASGI middleware."""
    if isinstance(app, WeChatAuthMiddleware):

        async def run() -> Any:
            try:
                return await getattr(app, name)(*args, **kwargs)
            finally:
                await app.aclose()

        return asyncio.run(run())
    try:
        return getattr(app, name)(*args, **kwargs)
    finally:
        app.close()


def burst(app: Middleware, name: str, n: int, *args: Any) -> list[Any]:
    """`n` concurrent first calls: asyncio.gather for ASGI, `n` threads for WSGI. Each one's
    result, or what it raised."""
    if isinstance(app, WeChatAuthMiddleware):

        async def run() -> list[Any]:
            calls = (getattr(app, name)(*args) for _ in range(n))
            try:
                return list(await asyncio.gather(*calls, return_exceptions=True))
            finally:
                await app.aclose()

        return asyncio.run(run())
    results: list[Any] = [None] * n
    start = threading.Barrier(n)

    def worker(i: int) -> None:
        start.wait()
        try:
            results[i] = getattr(app, name)(*args)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    app.close()
    return results
