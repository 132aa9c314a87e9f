"""WeChat's wire format: error codes and messages, request ids, and its JSON dialect."""

from __future__ import annotations

import ipaddress
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
    "ip_not_allowed_errmsg",
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
    # Today's wording (2023 on): it points at stable_token, the cure for the multi-instance bug.
    40001: (
        "invalid credential, access_token is invalid or not latest, could get access_token by "
        "getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r"
    ),
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40030: "invalid refresh_token",
    40066: "invalid url",
    40097: "invalid args",
    40125: "invalid appsecret, view more at http://t.cn/RAEkdVq",
    40163: "code been used",
    # The caller's address is filled in: see ip_not_allowed_errmsg.
    40164: "invalid ip, not in whitelist",
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
    48006: "forbid to clear quota because of reaching the limit",
    50001: "user unauthorized",
    # Third-party platforms (第三方平台).
    61003: "component is not authorized by this account",
    61004: "access clientip is not registered",
    61005: "component ticket is expired",
    61006: "component ticket is invalid",
    61010: "code is expired",
    61023: "refresh_token is invalid",
}


def errmsg_for(errcode: int) -> str:
    return ERRMSG.get(errcode, "emulated error")


def new_rid(now: float) -> str:
    # WeChat's rids are three groups of 8 hex digits, the first one a hex Unix time.
    return f"{int(now) & 0xFFFFFFFF:08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


# Messages WeChat ends with " rid: ..." and no comma (the /cgi-bin/ credential APIs' today);
# the others have ", rid: ...". Clients that split on ", rid:" lose the rid of these.
_RID_WITHOUT_COMMA = frozenset({40001, 40125, 40164, 41002, 45009, 45011})


def ip_not_allowed_errmsg(address: str) -> str:
    """40164's message for a caller at `address`, as WeChat words it: the IPv4 address and its
    IPv6 form (``invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist``)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"invalid ip {address} ipv6 {address}, not in whitelist"
    if isinstance(ip, ipaddress.IPv4Address):
        return f"invalid ip {ip} ipv6 ::ffff:{ip}, not in whitelist"
    v4 = ip.ipv4_mapped
    return f"invalid ip {v4 or ip} ipv6 {ip}, not in whitelist"


def error_payload(errcode: int, now: float, errmsg: str | None = None) -> dict[str, JSONValue]:
    """WeChat's error body (`errmsg` instead of the code's usual message, if given); every
    answer carries a fresh rid, errcode 0 included."""
    separator = " " if errcode in _RID_WITHOUT_COMMA else ", "
    message = errmsg_for(errcode) if errmsg is None else errmsg
    return {"errcode": errcode, "errmsg": f"{message}{separator}rid: {new_rid(now)}"}


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
