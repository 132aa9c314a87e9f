"""The applications the benchmarks measure, bare and wrapped, ASGI and WSGI; and a tiny server
launcher for them.

Not a benchmark itself. Used by the scripts in-process, and as a server process:

    python bench/_apps.py serve NAME PORT [--wechat-url URL] [--log-logins]   (uvicorn)
    gunicorn --chdir bench '_apps:wsgi_app("NAME")' ...                        (WSGI)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import httpx
from _common import (
    APP_ID,
    APP_SECRET,
    SECRET_KEY,
    asgi_scope,
    bare_asgi_app,
    bare_wsgi_app,
    starlette_session_user,
)
from flask import Flask, session
from flask import request as flask_request
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware, get_wechat_user
from wxauth_middleware.contrib.starlette import WeChatAuthBackend

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "SessionUserBackend",
    "asgi_app",
    "flask_app",
    "flask_session_cookie",
    "ours_asgi",
    "ours_wsgi",
    "starlette_session_cookie",
    "wsgi_app",
]


def _options(**overrides: Any) -> dict[str, Any]:
    # WeChat's real URLs by default: no request is made in these benchmarks unless the login
    # benchmark points them at the emulator.
    options: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "secret_key": SECRET_KEY,
        "scope": "snsapi_userinfo",
    }
    options.update(overrides)
    return options


def ours_asgi(inner: ASGIApp = bare_asgi_app, **overrides: Any) -> WeChatAuthMiddleware:
    return WeChatAuthMiddleware(inner, **_options(**overrides))


def ours_wsgi(inner: WSGIApplication = bare_wsgi_app, **overrides: Any) -> WeChatAuthWSGIMiddleware:
    return WeChatAuthWSGIMiddleware(inner, **_options(**overrides))


class SessionUserBackend(AuthenticationBackend):
    """What a Starlette user writes to authenticate from a session-stored user."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        user = conn.session.get("user")
        if user is None:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(user["nickname"])


def asgi_app(name: str, inner: ASGIApp = bare_asgi_app, **overrides: Any) -> ASGIApp:
    """The ASGI stacks, by name."""
    if name == "bare":
        return inner
    if name == "ours":
        return ours_asgi(inner, **overrides)
    if name == "ours+auth":
        return ours_asgi(AuthenticationMiddleware(inner, backend=WeChatAuthBackend()), **overrides)
    if name == "session":
        return SessionMiddleware(inner, secret_key=SECRET_KEY)
    if name == "session+auth":
        return SessionMiddleware(
            AuthenticationMiddleware(inner, backend=SessionUserBackend()), secret_key=SECRET_KEY
        )
    raise ValueError(f"unknown ASGI app {name!r}")


async def starlette_session_cookie() -> str:
    """A valid Starlette `session` cookie holding the bench user, made the way a site makes it:
    by a first request whose endpoint stores the user in the session."""

    async def log_in(scope: Scope, receive: Receive, send: Send) -> None:
        scope["session"]["user"] = starlette_session_user()
        await bare_asgi_app(scope, receive, send)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    app = SessionMiddleware(log_in, secret_key=SECRET_KEY)
    await app(asgi_scope("/login", user_agent="bench"), receive, send)
    for name, value in sent[0]["headers"]:
        if name.lower() == b"set-cookie":
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(value.decode("latin-1"))
            return cookie["session"].value
    raise RuntimeError("SessionMiddleware set no cookie")


# -- WSGI ---------------------------------------------------------------------------------------


def flask_app(kind: str) -> Flask:
    """Flask apps: "bare" (no session), "session" (reads session["user"]), "ours" (reads the
    WeChat user; its wsgi_app wrapped by our middleware)."""
    app = Flask(f"bench_{kind}")
    if kind == "session":
        app.secret_key = SECRET_KEY

        @app.get("/page")
        def page_session() -> str:
            user = session.get("user")
            return "ok" if user is not None else "anonymous"

        @app.get("/login")
        def login() -> str:
            session["user"] = starlette_session_user()
            return "ok"

    elif kind == "ours":

        @app.get("/page")
        def page_ours() -> str:
            return "ok" if get_wechat_user(flask_request) is not None else "anonymous"

        app.wsgi_app = ours_wsgi(app.wsgi_app)  # type: ignore[method-assign]

    elif kind == "bare":

        @app.get("/page")
        def page_bare() -> str:
            return "ok"

    else:
        raise ValueError(f"unknown Flask app {kind!r}")
    return app


def flask_session_cookie(app: Flask) -> str:
    """A valid Flask `session` cookie holding the bench user, from a first request."""
    client = app.test_client()
    client.get("/login")
    cookie = client.get_cookie("session")
    if cookie is None:
        raise RuntimeError("Flask set no session cookie")
    return cookie.value


def wsgi_app(name: str) -> WSGIApplication:
    """The WSGI apps by name, for gunicorn: `'_apps:wsgi_app("ours")'`."""
    if name == "bare":
        return bare_wsgi_app
    if name == "ours":
        return ours_wsgi(bare_wsgi_app)
    if name.startswith("flask-"):
        return flask_app(name.removeprefix("flask-"))
    raise ValueError(f"unknown WSGI app {name!r}")


class BoundedTransport(httpx.AsyncBaseTransport):
    """At most `n` requests inside httpx's connection pool at once; the others wait on a
    semaphore (an O(1) wake-up) instead of in httpcore's queue, which httpcore 1.0 rescans for
    every connection on every state change. All `n` connections are kept alive."""

    def __init__(self, n: int) -> None:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        self._transport = httpx.AsyncHTTPTransport(limits=limits)
        self._slots = asyncio.Semaphore(n)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._slots:
            response = await self._transport.handle_async_request(request)
            # The pool slot is held until the body is read: read it here, inside the bound.
            body = await response.aread()
            await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=body,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


def _serve(argv: list[str]) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python bench/_apps.py serve")
    parser.add_argument("name")
    parser.add_argument("port", type=int)
    parser.add_argument("--wechat-url", help="the emulator's base URL (login benchmark)")
    parser.add_argument("--log-logins", action="store_true", help="log one line per login")
    parser.add_argument(
        "--pool",
        type=int,
        nargs=2,
        metavar=("MAX", "KEEPALIVE"),
        help="give the middleware an httpx transport with these connection limits "
        "(default: the middleware's own client, httpx's defaults 100/20)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="the middleware's max_connections option (when this version has it)",
    )
    parser.add_argument(
        "--bounded",
        type=int,
        metavar="N",
        help="give the middleware a transport that lets at most N calls into httpx's pool at "
        "once (an asyncio.Semaphore), with N connections all kept alive",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.wechat_url:
        overrides |= {
            "authorize_url": f"{args.wechat_url}/connect/oauth2/authorize",
            "api_base_url": args.wechat_url,
        }
    if args.pool:
        limits = httpx.Limits(max_connections=args.pool[0], max_keepalive_connections=args.pool[1])
        overrides["transport"] = httpx.AsyncHTTPTransport(limits=limits)
    if args.bounded:
        overrides["transport"] = BoundedTransport(args.bounded)
    if args.max_connections:
        overrides["max_connections"] = args.max_connections
    if args.log_logins:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("wxauth_middleware")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    else:
        logging.getLogger("wxauth_middleware").setLevel(logging.ERROR)
    app = asgi_app(args.name, **overrides)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(_serve(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
