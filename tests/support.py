"""Test helpers: a WeChat "phone" (an httpx client that follows the login across the app and
the emulator), user agents, and a small app to put behind the middleware."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from html import unescape
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.validate import validator

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wxauth_middleware import (
    WeChatAuthMiddleware,
    WeChatAuthRelay,
    WeChatAuthWSGIMiddleware,
    WeComUser,
    get_wechat_user,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator
from wxauth_middleware.user import User

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.42(0x18002a2d) NetType/WIFI "
    "Language/zh_CN"
)
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
WECOM_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh ColorScheme/Light"
)
SECRET_KEY = "test-signing-key-0123456789abcdef"
APP_ORIGIN = "http://localhost:8000"


def user_json(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    if isinstance(user, WeComUser):
        return {
            "wecom": True,
            "identity": user.identity,
            "userid": user.userid,
            "openid": user.openid,
            "scope": user.scope,
            "mobile": user.mobile,
        }
    return {
        "openid": user.openid,
        "unionid": user.unionid,
        "nickname": user.nickname,
        "scope": user.scope,
        "snapshot": user.is_snapshot_user,
    }


async def _whoami(request: Request) -> Response:
    return JSONResponse(
        {"user": user_json(get_wechat_user(request)), "path": request.url.path},
        headers={"x-app": "reached"},
    )


async def _plain(request: Request) -> Response:
    return PlainTextResponse("plain")


async def _ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": user_json(websocket.scope.get("wechat_user"))})
    await websocket.close()


def inner_app() -> Starlette:
    """The site behind the middleware: every page answers who is logged in, as JSON."""
    return Starlette(
        routes=[
            Route("/plain", _plain),
            WebSocketRoute("/ws", _ws),
            Route("/{path:path}", _whoami, methods=["GET", "HEAD", "POST"]),
        ]
    )


def make_emulator(**options: Any) -> WeChatEmulator:
    options.setdefault("domains", ("localhost", "example.com"))
    return WeChatEmulator(**options)


def inner_wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same site as `inner_app`, in WSGI."""
    path = environ["PATH_INFO"]
    if path == "/plain":
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"plain"]
    body = json.dumps(
        {"user": user_json(get_wechat_user(environ)), "path": path}, ensure_ascii=False
    ).encode()
    start_response(
        "200 OK",
        [("content-type", "application/json"), ("x-app", "reached")],
    )
    return [body]


class ThreadedWSGITransport(httpx.AsyncBaseTransport):
    """Lets an async client call a WSGI app the way a threaded WSGI server would: httpx's
    WSGI transport (which closes the app's iterable, as PEP 3333 asks) in a worker thread."""

    def __init__(self, app: Any) -> None:
        self._transport = httpx.WSGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        sync_request = httpx.Request(
            request.method, request.url, headers=request.headers, content=body
        )

        def exchange() -> tuple[int, httpx.Headers, bytes]:
            response = self._transport.handle_request(sync_request)
            try:
                return response.status_code, response.headers, response.read()
            finally:
                response.close()

        status, headers, content = await anyio.to_thread.run_sync(exchange)
        return httpx.Response(status, headers=headers, content=content)


class Switchboard:
    """An ASGI app that forwards to the current test's emulator, so one real server serves a
    fresh emulator to every test."""

    emulator: WeChatEmulator | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.emulator is not None, "no emulator for this test"
        await self.emulator(scope, receive, send)


Middleware = WeChatAuthMiddleware | WeChatAuthWSGIMiddleware


def middleware_options(wechat_url: str, **options: Any) -> dict[str, Any]:
    """The middleware's options for the emulator's account and the emulator at `wechat_url`,
    `options` added (or overriding them)."""
    return {
        "app_id": DEFAULT_APP_ID,
        "app_secret": DEFAULT_APP_SECRET,
        "secret_key": SECRET_KEY,
        "authorize_url": f"{wechat_url}/connect/oauth2/authorize",
        "api_base_url": wechat_url,
        **options,
    }


@dataclass
class Stack:
    """One way of serving the site: the ASGI or the WSGI middleware, against an emulator served
    over real HTTP on 127.0.0.1, so both adapters make real calls to "WeChat"."""

    kind: str
    switchboard: Switchboard
    wechat_url: str

    @property
    def authorize_url(self) -> str:
        return f"{self.wechat_url}/connect/oauth2/authorize"

    def emulator(self, **options: Any) -> WeChatEmulator:
        """A fresh emulator, from now on the one the server answers with."""
        emulator = make_emulator(**options)
        self.switchboard.emulator = emulator
        return emulator

    def middleware(self, **options: Any) -> Middleware:
        """The middleware around the default site (`inner_app` or `inner_wsgi_app`)."""
        if self.kind == "asgi":
            return self.around(inner_app(), None, **options)
        return self.around(None, inner_wsgi_app, **options)

    def around(self, asgi_app: Any, wsgi_app: Any, **options: Any) -> Middleware:
        """The stack's middleware around `asgi_app` or `wsgi_app` (whichever its kind takes),
        with the emulator's account and `options`."""
        if self.kind == "asgi":
            return WeChatAuthMiddleware(asgi_app, **middleware_options(self.wechat_url, **options))
        return WeChatAuthWSGIMiddleware(wsgi_app, **middleware_options(self.wechat_url, **options))

    @asynccontextmanager
    async def phone(
        self, middleware: Middleware, *, user_agent: str = WECHAT_UA, origin: str = APP_ORIGIN
    ) -> AsyncIterator[httpx.AsyncClient]:
        """A browser: the site at `origin` in-process, WeChat over the network."""
        transport: httpx.AsyncBaseTransport
        if isinstance(middleware, WeChatAuthWSGIMiddleware):
            # wsgiref's validator checks every exchange against PEP 3333.
            transport = ThreadedWSGITransport(validator(middleware))
        else:
            transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(
            mounts={origin: transport},
            base_url=origin,
            headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
        ) as client:
            yield client
        # No lifespan here (the middleware must work without one): close its client by hand.
        await close(middleware)


async def close(middleware: Middleware) -> None:
    """Close the middleware's clients (to WeChat, to Redis), as a server's shutdown does."""
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        middleware.close()
    else:
        await middleware.aclose()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Start and stop `app` as an ASGI server does (the middleware closes its HTTP client to
    WeChat at shutdown)."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](1)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](1)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def serve() -> None:
        await app(scope, app_inbox.receive, app_outbox.send)

    async with anyio.create_task_group() as tasks, to_app, app_inbox, app_outbox, from_app:
        tasks.start_soon(serve)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        yield
        await to_app.send({"type": "lifespan.shutdown"})
        assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


@asynccontextmanager
async def browser(app: Any, user_agent: str = WECHAT_UA) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: an ASGI site in-process (started and stopped as a server would), the
    emulator ("WeChat") over the network."""
    async with (
        lifespan(app),
        httpx.AsyncClient(
            mounts={APP_ORIGIN: httpx.ASGITransport(app=app)},
            base_url=APP_ORIGIN,
            headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
        ) as client,
    ):
        yield client


async def websocket_messages(
    app: Any, path: str, cookie: str = "", *, host: str = "localhost:8000"
) -> list[dict[str, Any]]:
    """Open a websocket to `app` as an ASGI server would; what the app sent, up to its close."""
    headers = [(b"host", host.encode()), (b"cookie", cookie.encode())]
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "server": ("localhost", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers if cookie else headers[:1],
        "subprotocols": [],
    }
    incoming = iter([{"type": "websocket.connect"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming, {"type": "websocket.disconnect", "code": 1000})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


# The parameters WeChat's authorize and qrconnect pages require, in the order it enforces.
WECHAT_PARAMS = ["appid", "redirect_uri", "response_type", "scope", "state"]


def authorize_params(url: str, base: str) -> dict[str, str]:
    """The parameters of a WeChat authorize (or qrconnect) link, after checking what WeChat
    enforces: the page `base`, the parameter order and the #wechat_redirect fragment."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == base, url
    assert parts.fragment == "wechat_redirect", url
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert [name for name, _ in query] == WECHAT_PARAMS, url
    return dict(query)


def attribute(page: httpx.Response, name: str) -> str:
    """The (unescaped) value of the first `name="..."` in the page."""
    match = re.search(rf'{name}="([^"]*)"', page.text)
    assert match is not None, page.text
    return unescape(match.group(1))


def session_cookie_set(response: httpx.Response) -> bool:
    """Whether `response` sets a session cookie (not one that deletes it)."""
    return any(
        value.startswith("wxauth_session=") and not value.startswith("wxauth_session=;")
        for value in response.headers.get_list("set-cookie")
    )


async def shown(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """GET `url` as a browser does at the callback. A page the callback shows itself is
    answered in place, with its own status, and replaces the address bar's URL (which holds
    the code and state) with a clean one: checked here, and that clean address must show the
    same page again (a reload), never redirecting. The answer is the callback's own."""
    response = await client.get(url, **kwargs)
    clean = clean_address(response.text)
    if clean is None:
        return response
    parts = urlsplit(clean)
    if parts.path != "/wxauth/callback" and "使用完整服务" in response.text:
        # The snapshot interstitial shows the page's own address: WeChat's "use full
        # service" bar reopens it, for real.
        assert not parts.netloc, clean
        assert not {"code", "state"} & {name for name, _ in parse_qsl(parts.query)}, clean
        return response
    assert parts.path == "/wxauth/callback", clean
    assert [name for name, _ in parse_qsl(parts.query)] == ["page"], clean  # no code, state
    again = await client.get(clean, **kwargs)
    assert again.status_code == response.status_code, again.text  # never a redirect
    assert clean_address(again.text) is None  # the clean address is clean already
    return response


def clean_address(page: str) -> str | None:
    """The address a page of the callback's puts in the address bar, if it replaces it."""
    found = re.search(r'<script>history\.replaceState\(null,"",("[^<]*")\)</script>', page)
    return json.loads(found.group(1)) if found else None


def location(response: httpx.Response) -> str:
    assert response.status_code in (301, 302, 303, 307), response.text
    return response.headers["location"]


def emulator_form(page: httpx.Response) -> tuple[re.Match[str], dict[str, str]]:
    """The form of an emulator's page (its action is group 1, its HTML group 2) and its hidden
    fields."""
    form = re.search(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', page.text, re.S)
    assert form is not None, page.text
    fields = {
        unescape(name): unescape(value)
        for name, value in re.findall(
            r'<input type="hidden" name="([^"]*)" value="([^"]*)"', form.group(2)
        )
    }
    return form, fields


async def submit_emulator_form(
    client: httpx.AsyncClient,
    page: httpx.Response,
    *,
    button_id: str,
    persona: str,
    persona_offered: bool = False,
) -> httpx.Response:
    """Fill in a page of the emulator's (consent, QR-code scan) as a user would: its hidden
    fields, `persona` chosen (with `persona_offered`, it must be one of the page's radios) and
    the button `button_id` pressed; submit it."""
    form, fields = emulator_form(page)
    if persona_offered:
        radios = re.findall(
            r'<input type="radio" name="persona"[^>]*value="([^"]*)"', form.group(2)
        )
        assert persona in radios, radios
    button = re.search(rf'<button[^>]*id="{button_id}"[^>]*>', form.group(2))
    assert button is not None
    name = re.search(r'name="([^"]*)"', button.group(0))
    value = re.search(r'value="([^"]*)"', button.group(0))
    assert name is not None
    assert value is not None
    fields[name.group(1)] = value.group(1)
    fields["persona"] = persona
    return await client.post(str(page.url.join(unescape(form.group(1)))), data=fields)


async def approve_consent(
    client: httpx.AsyncClient, consent: httpx.Response, *, persona: str, allow: bool = True
) -> httpx.Response:
    """Fill in the emulator's consent page as a user would, and submit it."""
    button_id = "allow" if allow else "refuse"
    return await submit_emulator_form(client, consent, button_id=button_id, persona=persona)


async def login(
    client: httpx.AsyncClient, path: str = "/page", *, persona: str | None = None
) -> httpx.Response:
    """Visit `path`, follow the whole login, and return the final response from the app."""
    start = await client.get(path)
    authorize = await client.get(location(start))
    if authorize.status_code == 200 and persona is not None:
        authorize = await approve_consent(client, authorize, persona=persona)
    callback = await shown(client, location(authorize))
    if callback.status_code == 200:
        return callback  # a snapshot user: no session, the callback showed the page
    back = location(callback)
    assert urlsplit(back).netloc == "", back
    return await client.get(back)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` served over HTTP on 127.0.0.1 (uvicorn, or a threaded WSGI server); its URL."""
    if isinstance(app, (WeChatAuthMiddleware, WeChatAuthRelay)):
        with serve(app) as url:
            yield url
        return
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        app.close()
