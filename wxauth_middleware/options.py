"""The options both middlewares take, written once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import urlsplit

from .config import Config, ErrorHandler
from .core import LoginCore
from .errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

__all__ = ["MiddlewareOptions"]

AppT = TypeVar("AppT")
logger = logging.getLogger("wxauth_middleware")

_WECHAT_AUTHORIZE_HOST = "open.weixin.qq.com"
_WECHAT_API_HOST = "api.weixin.qq.com"


class MiddlewareOptions(Generic[AppT]):
    """Validates the options into a `Config` and builds the `LoginCore` from it, once.

    Every option is keyword-only; see the README's options table.
    """

    # The kind of httpx transport the adapter's client takes (async for ASGI, sync for WSGI).
    _transport_type: type = object

    def __init__(
        self,
        app: AppT,
        *,
        app_id: str,
        app_secret: str,
        secret_key: str | bytes | Sequence[str | bytes],
        scope: str = "snsapi_base",
        callback_path: str = "/wxauth/callback",
        public_url: str | None = None,
        authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize",
        api_base_url: str = "https://api.weixin.qq.com",
        session_cookie: str = "wxauth_session",
        max_age: int | None = 14 * 24 * 3600,
        cookie_domain: str | None = None,
        cookie_path: str = "/",
        https_only: bool = False,
        login_max_age: int = 600,
        lang: str = "zh_CN",
        http_timeout: float = 10.0,
        on_error: ErrorHandler | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        self.config = Config(
            app_id=app_id,
            app_secret=app_secret,
            secret_key=secret_key,
            scope=scope,
            callback_path=callback_path,
            public_url=public_url,
            authorize_url=authorize_url,
            api_base_url=api_base_url,
            session_cookie=session_cookie,
            max_age=max_age,
            cookie_domain=cookie_domain,
            cookie_path=cookie_path,
            https_only=https_only,
            login_max_age=login_max_age,
            lang=lang,
            http_timeout=http_timeout,
            on_error=on_error,
            transport=transport,
        )
        if transport is not None and not isinstance(transport, self._transport_type):
            raise ConfigurationError(
                f"transport must be an {self._transport_type.__module__}."
                f"{self._transport_type.__qualname__} for {type(self).__name__}, "
                f"not {type(transport).__name__}."
            )
        self.core = LoginCore(self.config)
        if (
            urlsplit(authorize_url).hostname != _WECHAT_AUTHORIZE_HOST
            or urlsplit(api_base_url).hostname != _WECHAT_API_HOST
        ):
            # Legitimate with the emulator or a relay, a mistake in production: say it once.
            logger.warning(
                "wxauth: not talking to WeChat itself: authorize_url=%s api_base_url=%s",
                authorize_url,
                api_base_url,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r}, config={self.config!r})"
