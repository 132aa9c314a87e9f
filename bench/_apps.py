"""The two apps bench/logins.py serves, each in a uvicorn process of its own (one worker,
asyncio loop, h11, no access log), logging in against the emulator at EMULATOR_URL:

    python bench/_apps.py ours PORT EMULATOR_URL    # WeChatAuthMiddleware around a page
    python bench/_apps.py floor PORT EMULATOR_URL   # the same login, written by hand

A fourth argument, `uvloop`, serves with uvloop and httptools instead (both must be installed).

The floor is the least a login can cost in this server: a page visit without a valid session
cookie gets a 302 to WeChat's authorize URL and a signed state cookie; the callback checks the
state against that cookie, makes one GET to /sns/oauth2/access_token over a pooled keep-alive
connection (a minimal HTTP/1.1 client on asyncio streams), sets a signed session cookie
(openid and time) and answers 302 back to the page; the page checks the session's signature.
No user-agent rules, no error pages, no retries or timeouts: everything the middleware does
beyond that is what its CPU per login above the floor pays for. `inprocess.py` logs in
through `floor` too, in process.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import sys
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import uvicorn
from _common import APP_ID, APP_SECRET, SECRET_KEY, read_response, request_bytes
from starlette.types import ASGIApp, Receive, Scope, Send

from wxauth_middleware import WeChatAuthMiddleware, get_wechat_user

CALLBACK = "/wxauth/callback"


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    """The site's page: who is logged in, as text."""
    user = get_wechat_user(scope)
    await _answer(send, 200, [], f"hello {user.openid if user else '-'}".encode())


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-type", b"text/plain; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def ours(emulator: str, **options: Any) -> WeChatAuthMiddleware:
    """The middleware around `page`, against the emulator at `emulator`, with `options`."""
    return WeChatAuthMiddleware(
        page,
        app_id=APP_ID,
        app_secret=APP_SECRET,
        secret_key=SECRET_KEY,
        authorize_url=f"{emulator}/connect/oauth2/authorize",
        api_base_url=emulator,
        **options,
    )


class Upstream:
    """GET over a pool of idle keep-alive connections to one host (a new one when none is
    idle; a reused one that turns out closed is replaced once)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.netloc = parts.hostname or "", parts.port or 80, parts.netloc
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(self, target: str) -> tuple[int, bytes]:
        while True:
            reused = bool(self.idle)
            if reused:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(request_bytes(target, self.netloc))
                status, headers, body = await read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if reused:
                    continue
                raise
            if ("connection", "close") in headers:
                writer.close()
            else:
                self.idle.append((reader, writer))
            return status, body


def _sign(value: str) -> str:
    mac = hmac.digest(SECRET_KEY.encode(), value.encode(), "sha256")
    return value + "." + urlsafe_b64encode(mac).decode().rstrip("=")


def _unsign(signed: str) -> str | None:
    value = signed.rpartition(".")[0]
    return value if value and hmac.compare_digest(_sign(value), signed) else None


def floor(emulator: str) -> ASGIApp:
    upstream = Upstream(emulator)
    authorize = f"{emulator}/connect/oauth2/authorize?appid={APP_ID}&redirect_uri="
    token = (
        f"/sns/oauth2/access_token?appid={APP_ID}&secret={APP_SECRET}&grant_type=authorization_code"
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        cookies: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"cookie":
                for pair in value.decode("latin-1").split(";"):
                    key, _, item = pair.strip().partition("=")
                    cookies[key] = item
        if scope["path"] == CALLBACK:
            query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
            state = query.get("state", "")
            saved = _unsign(cookies.get("st", "")) or ""
            saved_state, _, back = saved.partition(" ")
            if not state or state != saved_state or "code" not in query:
                await _answer(send, 400, [], b"bad state")
                return
            status, body = await upstream.get(f"{token}&code={quote(query['code'])}")
            openid = json.loads(body).get("openid") if status == 200 else None
            if not isinstance(openid, str):
                await _answer(send, 502, [], b"no openid")
                return
            session = urlsafe_b64encode(f"{openid} {int(time.time())}".encode()).decode()
            headers = [
                (b"location", unquote(back).encode()),
                (b"set-cookie", f"s={_sign(session)}; Path=/; HttpOnly; SameSite=Lax".encode()),
                (b"set-cookie", b"st=; Path=/; Max-Age=0"),
            ]
            await _answer(send, 302, headers, b"")
            return
        signed = _unsign(cookies.get("s", ""))
        if signed is not None:
            user = urlsafe_b64decode(signed).decode().split(" ")[0]
            await _answer(send, 200, [], f"hello {user}".encode())
            return
        state = secrets.token_hex(8)  # WeChat takes [a-zA-Z0-9] only
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        back = quote(
            scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        )
        redirect = quote(f"http://{host}{CALLBACK}", safe="")
        headers = [
            (
                b"location",
                f"{authorize}{redirect}&response_type=code&scope=snsapi_base&state={state}#wechat_redirect".encode(),
            ),
            (
                b"set-cookie",
                f"st={_sign(state + ' ' + back)}; Path=/; HttpOnly; Max-Age=600".encode(),
            ),
        ]
        await _answer(send, 302, headers, b"")

    return app


def main(argv: list[str]) -> int:
    if (
        len(argv) not in (3, 4)
        or argv[0] not in ("ours", "floor")
        or argv[3:] not in ([], ["uvloop"])
    ):
        print(__doc__, file=sys.stderr)
        return 2
    kind, port, emulator = argv[:3]
    fast = argv[3:] == ["uvloop"]
    app = ours(emulator) if kind == "ours" else floor(emulator)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(port),
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
