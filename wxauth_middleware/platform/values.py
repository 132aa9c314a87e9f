"""The `Platform` value: a third-party platform's credentials, checked once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.util import find_spec

from ..errors import ConfigurationError
from .crypto import aes_key

__all__ = ["COMPONENT_APP_ID", "Platform"]

# A platform's AppID is an AppID like any other: "wx" and 16 hexadecimal digits.
COMPONENT_APP_ID = re.compile(r"^wx[0-9a-f]{16}$")
# WeChat's message token: 3 to 32 letters and digits.
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")


@dataclass(frozen=True, slots=True)
class Platform:
    """A third-party platform (第三方平台) of WeChat's Open Platform: its AppID and AppSecret,
    and the message token and 43-character EncodingAESKey of its pushed events (开发资料 >
    消息校验Token, 消息加解密Key). Secrets are never in a repr."""

    component_appid: str
    component_appsecret: str = field(repr=False)
    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)

    def __post_init__(self) -> None:
        appid = self.component_appid
        if not isinstance(appid, str) or not COMPONENT_APP_ID.match(appid):
            raise ConfigurationError(
                f"Platform component_appid {appid!r} is not an AppID: use the platform's "
                "AppID ('wx' and 16 hexadecimal digits) from the Open Platform's console "
                "(第三方平台 > 基本信息)."
            )
        secret = self.component_appsecret
        if not isinstance(secret, str) or not secret or any(c.isspace() for c in secret):
            raise ConfigurationError(
                f"Platform {appid}: component_appsecret is required, without white space."
            )
        if not isinstance(self.token, str) or not _TOKEN.match(self.token):
            raise ConfigurationError(
                f"Platform {appid}: token must be the message token (消息校验Token), 3 to 32 "
                "letters and digits."
            )
        if find_spec("cryptography") is None:
            raise ConfigurationError(
                "Platform needs the cryptography package for WeChat's message encryption: "
                "pip install 'wxauth-middleware[platform]'."
            )
        try:
            aes_key(self.encoding_aes_key)
        except ValueError as exc:
            raise ConfigurationError(
                f"Platform {appid}: encoding_aes_key (消息加解密Key) is not valid: {exc}."
            ) from None
