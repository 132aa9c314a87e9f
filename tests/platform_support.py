"""Helpers of the third-party platform tests: one platform's credentials, the middleware of
its account, pushes as WeChat makes them, and the application's calls through either
adapter."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import anyio
import httpx

from wxauth_middleware import OfficialAccount, Platform, WeChatAuthWSGIMiddleware
from wxauth_middleware.emulator import DEFAULT_APP_ID, WeChatEmulator
from wxauth_middleware.platform.crypto import MessageCipher, msg_signature

from .support import Middleware, Stack, emulator_form

COMPONENT_APPID = "wx5c1d0e7f3a9b2468"
COMPONENT_SECRET = "platform-secret-0123456789abcdef"
TOKEN = "PlatformToken42"
AES_KEY = "Zx9cVbNm1AsDfGhJkL2qWeRtYuIoP3lKjHgFdSa4ZxC"
SPEC = (COMPONENT_APPID, COMPONENT_SECRET, TOKEN, AES_KEY)
PLATFORM = Platform(COMPONENT_APPID, COMPONENT_SECRET, TOKEN, AES_KEY)
EVENTS_PATH = "/wxauth/platform/events"
ADMIN_RETURN = "http://localhost:8000/admin/authorized"


def platform_emulator(stack: Stack, *, authorized: bool = False, **options: Any) -> WeChatEmulator:
    """The stack's emulator playing the platform; `authorized`: its first account authorized
    it already (at WeChat: the middleware knows nothing of it)."""
    emulator = stack.emulator(platform=SPEC, **options)
    if authorized:
        assert emulator.platform is not None
        emulator.platform.authorize(DEFAULT_APP_ID)
    return emulator


def platform_middleware(stack: Stack, **options: Any) -> Middleware:
    """The stack's middleware with the emulator's first account, of the platform."""
    account = OfficialAccount(app_id=DEFAULT_APP_ID, platform=PLATFORM)
    return stack.middleware(app_id=None, app_secret=None, accounts=[account], **options)


async def call(middleware: Middleware, name: str, *args: Any, **kwargs: Any) -> Any:
    """The application's call `name` of either middleware (the WSGI one's in a thread)."""
    method = getattr(middleware, name)
    if isinstance(middleware, WeChatAuthWSGIMiddleware):
        return await anyio.to_thread.run_sync(lambda: method(*args, **kwargs))
    return await method(*args, **kwargs)


def signed_push(
    timestamp: str,
    nonce: str,
    inner: str,
    *,
    receive_id: str = COMPONENT_APPID,
    token: str = TOKEN,
    aes_key: str = AES_KEY,
) -> tuple[str, bytes]:
    """A push made by hand: `inner` (the decrypted XML) encrypted for `receive_id` and signed
    with `token`."""
    encrypt = MessageCipher(aes_key, receive_id).encrypt(inner)
    signature = msg_signature(token, timestamp, nonce, encrypt)
    query = f"timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={signature}"
    body = f"<xml><AppId>{COMPONENT_APPID}</AppId><Encrypt>{encrypt}</Encrypt></xml>"
    return query, body.encode()


def ticket_xml(ticket: str, appid: str = COMPONENT_APPID) -> str:
    return (
        f"<xml><AppId>{appid}</AppId><CreateTime>1</CreateTime>"
        "<InfoType>component_verify_ticket</InfoType>"
        f"<ComponentVerifyTicket>{ticket}</ComponentVerifyTicket></xml>"
    )


async def push(
    client: httpx.AsyncClient, emulator: WeChatEmulator, info_type: str, **fields: str
) -> httpx.Response:
    """The emulator's push of `info_type`, delivered by `client` (in-process site)."""
    platform = emulator.platform
    assert platform is not None
    if info_type == "component_verify_ticket":
        fields.setdefault("ComponentVerifyTicket", platform.new_ticket())
    query, body = platform.envelope(info_type, fields)
    return await client.post(f"{EVENTS_PATH}?{query}", content=body)


async def consent(
    client: httpx.AsyncClient, page: httpx.Response, app_id: str, decision: str = "allow"
) -> httpx.Response:
    """The admin's answer on the emulator's consent page: `app_id` chosen among its radios."""
    form, fields = emulator_form(page)
    radios = re.findall(r'<input type="radio" name="authorizer" value="([^"]*)"', form.group(2))
    assert app_id in radios, radios
    fields |= {"authorizer": app_id, "decision": decision}
    return await client.post(str(page.url.join(unescape(form.group(1)))), data=fields)
