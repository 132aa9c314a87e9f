"""A local WeChat for development and tests: web-page authorization, quirks included.

``WeChatEmulator`` is an ASGI app serving WeChat's authorize page, the website QR-code login
page (``/connect/qrconnect``, for an Open-Platform website app) and the user-token APIs at
WeChat's paths. Point the middleware at it with
``authorize_url="http://HOST:PORT/connect/oauth2/authorize"`` and
``api_base_url="http://HOST:PORT"``, or run ``python -m wxauth_middleware.emulator``.

It is a development tool: the middleware never imports it, and it answers loopback clients
only unless told otherwise.
"""

from __future__ import annotations

from .app import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
    PERSONA_COOKIE,
    RecordedCall,
    WeChatEmulator,
)
from .credentials import jsapi_signature
from .personas import DEFAULT_PERSONAS, Persona

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_APP_SECRET",
    "DEFAULT_PERSONAS",
    "DEFAULT_WEBSITE_APP_ID",
    "DEFAULT_WEBSITE_APP_SECRET",
    "PERSONA_COOKIE",
    "Persona",
    "RecordedCall",
    "WeChatEmulator",
    "jsapi_signature",
]
