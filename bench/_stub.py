"""A stub of WeChat's API for the in-process benchmark (`inprocess.py`): an asyncio server on
127.0.0.1 in the benchmark's own process, keep-alive, canned answers, every one checked by
nothing (the middleware checks them).

- `/sns/oauth2/access_token?...&code=CODE`: a grant whose openid is made from the code (so
  logins with distinct codes make distinct users) and whose scope is `snsapi_userinfo` for a
  code that starts with `info`, else `snsapi_base`;
- `/sns/userinfo?...&openid=OPENID`: a profile of that openid, as WeChat sends it;
- `/cgi-bin/stable_token` (POST) and `/cgi-bin/ticket/getticket`: the account's token and
  the JS-SDK's `TICKET`.

Not a benchmark itself; `inprocess.py` imports it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
PROFILE = {
    "nickname": "小明",
    "sex": 0,
    "province": "",
    "city": "",
    "country": "",
    "headimgurl": "https://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTLz3aibxF1xSBk0mEiaibJ8RjF"
    "8ibibGia1CQ3kBgxDrTSvLVQpRia8gBiaGvibCg5Y8aWlUOaKwUu8DhicL9Q/132",
    "privilege": [],
    "unionid": "o6_bmasdasdsad6_2sgVt7hMZOPfL",
}


def openid_of(code: str) -> str:
    """The openid a code stands for (28 characters, as WeChat's)."""
    return "o" + code.encode().hex()[:27].rjust(27, "0")


_TOKEN = json.dumps({"access_token": "SERVER-TOKEN", "expires_in": 7200}).encode()
_TICKET = json.dumps({"errcode": 0, "errmsg": "ok", "ticket": TICKET, "expires_in": 7200}).encode()
_UNKNOWN = json.dumps({"errcode": 40066, "errmsg": "invalid url"}).encode()


def _param(query: str, name: str) -> str:
    return query.partition(name + "=")[2].partition("&")[0]


def _answer(target: str) -> bytes:
    # Cheap on purpose: the stub's CPU is in the login figures (it runs in the same process).
    path, _, query = target.partition("?")
    if path == "/sns/oauth2/access_token":
        code = _param(query, "code")
        scope = "snsapi_userinfo" if code.startswith("info") else "snsapi_base"
        return (
            b'{"access_token":"ACCESS","expires_in":7200,"refresh_token":"REFRESH",'
            b'"openid":"%s","scope":"%s"}' % (openid_of(code).encode(), scope.encode())
        )
    if path == "/sns/userinfo":
        openid = _param(query, "openid")
        return json.dumps({"openid": openid, **PROFILE}, ensure_ascii=False).encode()
    if path == "/cgi-bin/stable_token":
        return _TOKEN
    if path == "/cgi-bin/ticket/getticket":
        return _TICKET
    return _UNKNOWN


@asynccontextmanager
async def stub_wechat() -> AsyncIterator[str]:
    """The stub, serving until the block ends; its base URL."""
    connections: dict[asyncio.StreamWriter, asyncio.Task[Any] | None] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[writer] = asyncio.current_task()
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                body = _answer(lines[0].split(" ")[1])
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in connections:
            writer.close()  # the middleware's kept connections: their readers end
        await asyncio.gather(*(task for task in connections.values() if task is not None))
        await server.wait_closed()
