"""The endpoint WeChat pushes a platform's encrypted events to (`platform_events_path`, the
platform's 授权事件接收URL): `POST ?timestamp=&nonce=&msg_signature=&encrypt_type=aes` with
an XML body holding `Encrypt` (wechat-protocol.md §14).

A push is applied only if its signature verifies (with the platform's token), its
timestamp is within `PUSH_WINDOW` seconds of ours, its nonce was not seen in that window (on
any instance, with Redis), and it decrypts to a message for the platform (its appid): then
the answer is `200 success`. Anything else changes nothing, gets a 4xx, and is logged without
the body, the ticket or any key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from ..decisions import query_params
from ..effects import Flow
from ..errors import StoreUnavailable, WeChatAuthError
from ..messages import HTTPRequest, HTTPResponse
from .crypto import MessageCipher, MessageError, parse_xml, signature_matches
from .service import PlatformService

__all__ = ["PUSH_WINDOW", "PlatformEvents"]

logger = logging.getLogger("wxauth_middleware")

# How far a push's timestamp may be from this server's clock, either way (seconds).
PUSH_WINDOW = 300
_TEXT = (("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store"))


def _text(status: int, body: str) -> HTTPResponse:
    return HTTPResponse(status, _TEXT, body.encode("utf-8"))


SUCCESS = _text(200, "success")


class PlatformEvents:
    """Receives the pushes of the platforms `services` (by component_appid)."""

    def __init__(
        self, services: Mapping[str, PlatformService], clock: Callable[[], float] = time.time
    ) -> None:
        self._services = dict(services)
        self._ciphers = {
            appid: MessageCipher(service.platform.encoding_aes_key, appid)
            for appid, service in services.items()
        }
        self._clock = clock

    def __call__(self, request: HTTPRequest) -> HTTPResponse | Flow[HTTPResponse]:
        if request.method != "POST":
            return HTTPResponse(
                405,
                (*_TEXT, ("allow", "POST")),
                "This is a third-party platform's event URL (授权事件接收URL): WeChat POSTs "
                "its events here.\n".encode(),
            )
        return self._receive(request)

    def _refuse(self, status: int, why: str, appid: str = "?") -> HTTPResponse:
        logger.warning("wxauth platform %s: push refused: %s", appid, why)
        return _text(status, f"refused: {why}\n")

    def _receive(self, request: HTTPRequest) -> Flow[HTTPResponse]:
        params = query_params(request)
        timestamp, nonce = params.get("timestamp", ""), params.get("nonce", "")
        signature = params.get("msg_signature", "")
        if params.get("encrypt_type", "aes") != "aes":
            return self._refuse(400, "encrypt_type is not aes")
        if not (timestamp.isdigit() and nonce and signature) or len(nonce) > 64:
            return self._refuse(400, "timestamp, nonce or msg_signature missing or malformed")
        try:
            outer = parse_xml(request.body)
        except MessageError as exc:
            return self._refuse(400, str(exc))
        encrypt = outer.get("Encrypt", "")
        appid = outer.get("AppId") or outer.get("ToUserName") or ""
        if not appid and len(self._services) == 1:
            appid = next(iter(self._services))
        service = self._services.get(appid)
        if service is None or not encrypt:
            return self._refuse(400, "no Encrypt, or for a platform not configured here", appid)
        if not signature_matches(service.platform.token, timestamp, nonce, encrypt, signature):
            return self._refuse(
                403, "msg_signature does not verify (forged, or another token)", appid
            )
        if abs(self._clock() - int(timestamp)) > PUSH_WINDOW:
            return self._refuse(403, "timestamp out of the accepted window (replayed?)", appid)
        try:
            inner = parse_xml(self._ciphers[appid].decrypt(encrypt).encode("utf-8"))
        except MessageError as exc:
            return self._refuse(400, str(exc), appid)
        if inner.get("AppId", appid) != appid:
            return self._refuse(400, "the message names another platform", appid)
        try:
            if not (yield from service.store.first_push(nonce, 2 * PUSH_WINDOW)):
                return self._refuse(
                    409, "a push of this nonce was already received (replay)", appid
                )
            yield from self._apply(service, inner)
        except StoreUnavailable:
            logger.error("wxauth platform %s: push not kept: the store is unavailable", appid)
            return _text(503, "store unavailable: push again\n")
        return SUCCESS

    def _apply(self, service: PlatformService, event: dict[str, str]) -> Flow[None]:
        kind, appid = event.get("InfoType", ""), service.component_appid
        authorizer = event.get("AuthorizerAppid", "")
        if kind == "component_verify_ticket":
            ticket = event.get("ComponentVerifyTicket", "")
            if not ticket:
                logger.warning("wxauth platform %s: a ticket push without a ticket", appid)
                return
            yield from service.store.keep_ticket(ticket)
            logger.info("wxauth platform %s: component_verify_ticket kept", appid)
        elif kind == "unauthorized" and authorizer:
            yield from service.store.set_revoked(authorizer, True)
            logger.warning(
                "wxauth platform %s: account %s revoked its authorization", appid, authorizer
            )
        elif kind in ("authorized", "updateauthorized") and authorizer:
            code = event.get("AuthorizationCode", "")
            yield from service.store.set_revoked(authorizer, False)
            try:
                yield from service.authorized(code)
            except WeChatAuthError as exc:
                # The admin's return to redirect_uri (platform_authorized) completes it too.
                logger.warning(
                    "wxauth platform %s: account %s %s, but its code could not be exchanged "
                    "yet: %s",
                    appid,
                    authorizer,
                    kind,
                    exc.message,
                )
        else:
            logger.info("wxauth platform %s: event %r received (nothing to do)", appid, kind)
