"""WeChat's wire format: error codes and messages, request ids, and its JSON dialect."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import TypeAlias

__all__ = [
    "API_CONTENT_TYPE",
    "CGI_CONTENT_TYPE",
    "USERINFO_CONTENT_TYPE",
    "JSONValue",
    "errmsg_for",
    "error_payload",
    "new_rid",
    "wechat_json",
]

JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"

# What WeChat has been seen to send: no charset at all (/sns/userinfo among them, the endpoint
# that carries nicknames), and a parameter name that is not "charset" (the /cgi-bin/ APIs).
# Clients that trust either decode nicknames as ISO-8859-1.
API_CONTENT_TYPE = "text/plain"
USERINFO_CONTENT_TYPE = "text/plain"
CGI_CONTENT_TYPE = "application/json; encoding=utf-8"

ERRMSG: Mapping[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40030: "invalid refresh_token",
    40066: "invalid url",
    40097: "invalid args",
    40125: "invalid appsecret, view more at http://t.cn/RAEkdVq",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41003: "refresh_token missing",
    41004: "appsecret missing",
    41008: "missing code",
    41009: "missing openid",
    42001: "access_token expired",
    42002: "refresh_token expired",
    42003: "code expired",
    43001: "require GET method",
    43002: "require POST method",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    48001: "api unauthorized",
    50001: "user unauthorized",
}


def errmsg_for(errcode: int) -> str:
    return ERRMSG.get(errcode, "emulated error")


def new_rid(now: float) -> str:
    # WeChat's rids are three groups of 8 hex digits, the first one a hex Unix time.
    return f"{int(now) & 0xFFFFFFFF:08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


# Messages WeChat ends with " rid: ..." and no comma; the others have ", rid: ...". Clients
# that split on ", rid:" lose the rid of these.
_RID_WITHOUT_COMMA = frozenset({40001, 40125})


def error_payload(errcode: int, now: float) -> dict[str, JSONValue]:
    """WeChat's error body; every answer carries a fresh rid, errcode 0 included."""
    separator = " " if errcode in _RID_WITHOUT_COMMA else ", "
    return {"errcode": errcode, "errmsg": f"{errmsg_for(errcode)}{separator}rid: {new_rid(now)}"}


def _encode_str(value: str) -> str:
    # Only what JSON strictly needs, plus WeChat's escaped slashes ("http:\/\/thirdwx...").
    # Control characters stay raw: that is the quirk strict JSON parsers choke on.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("/", "\\/")
    return f'"{escaped}"'


def _encode(value: JSONValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _encode_str(value)
    if isinstance(value, list):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return "{" + ",".join(f"{_encode_str(k)}:{_encode(v)}" for k, v in value.items()) + "}"


def wechat_json(value: JSONValue) -> bytes:
    """Serialize like WeChat: compact, UTF-8, non-ASCII unescaped, control characters raw.

    The output is not strict JSON when a string holds a control character; parse it with
    ``json.loads(body.decode("utf-8"), strict=False)``.
    """
    return _encode(value).encode("utf-8")
