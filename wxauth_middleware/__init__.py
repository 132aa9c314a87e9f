"""Log in with WeChat (web-page authorization) for any ASGI or WSGI application.

from wxauth_middleware import WeChatAuthMiddleware

app = WeChatAuthMiddleware(app, app_id="wx...", app_secret="...", secret_key="...")
"""

from .accounts import OfficialAccount
from .asgi import WeChatAuthMiddleware
from .errors import (
    AccountUnavailable,
    ConfigurationError,
    InvalidRequest,
    LoginDeclined,
    LoginStateError,
    LoginVetoed,
    StoreUnavailable,
    TokenUnavailable,
    UpstreamError,
    UpstreamResponseError,
    UpstreamTimeout,
    UpstreamUnavailable,
    WeChatAPIError,
    WeChatAuthError,
)
from .messages import HTTPRequest, HTTPResponse
from .pages import default_error_response
from .platform import Platform
from .relay.app import WeChatAuthRelay, WeChatAuthRelayWSGI
from .relay.sites import RelaySite
from .rules import Rule
from .user import WeChatUser, WeComUser, get_wechat_user
from .useragent import ClientKind, classify_user_agent, is_wechat_browser
from .wecom.app import WeComApp
from .wsgi import WeChatAuthWSGIMiddleware

__all__ = [
    "AccountUnavailable",
    "ClientKind",
    "ConfigurationError",
    "HTTPRequest",
    "HTTPResponse",
    "InvalidRequest",
    "LoginDeclined",
    "LoginStateError",
    "LoginVetoed",
    "OfficialAccount",
    "Platform",
    "RelaySite",
    "Rule",
    "StoreUnavailable",
    "TokenUnavailable",
    "UpstreamError",
    "UpstreamResponseError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "WeChatAPIError",
    "WeChatAuthError",
    "WeChatAuthMiddleware",
    "WeChatAuthRelay",
    "WeChatAuthRelayWSGI",
    "WeChatAuthWSGIMiddleware",
    "WeChatUser",
    "WeComApp",
    "WeComUser",
    "classify_user_agent",
    "default_error_response",
    "get_wechat_user",
    "is_wechat_browser",
]

__version__ = "0.1.0"
