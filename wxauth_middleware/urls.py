"""URL building and checking: WeChat's authorize URL, the site's origin, safe return paths."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import quote, urlsplit

from .errors import ConfigurationError

__all__ = [
    "PATH_SAFE",
    "authorize_url",
    "beside_authorize",
    "check_origin",
    "check_path",
    "check_url",
    "is_valid_state",
    "path_matches",
    "request_origin",
    "safe_return_path",
]

# Characters a request path may carry unencoded (RFC 3986 pchar and '/').
PATH_SAFE = "/:@!$&'()*+,;=-._~"

# WeChat accepts a state of at most 128 characters from this alphabet, nothing else.
_STATE = re.compile(r"[A-Za-z0-9]{1,128}")
# A Host header we are willing to put into a URL: a DNS name or IPv4 address, or a bracketed
# IPv6 address, with an optional port. Anything else (spaces, slashes, '@', CR/LF) is refused.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
# A return path we will redirect to: it must start with a single '/', and hold only the
# printable ASCII a browser sends in a request target, without a backslash (browsers read
# '\' as '/', which turns '/\evil.com' into the off-site '//evil.com').
_RETURN_PATH = re.compile(r"/(?![/\\])[!#-\[\]-~]*")
MAX_RETURN_PATH = 1024
# An option's URL path: '/' and the characters of a path, no query or fragment.
_PATH = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$")
# WeChat's authorize path: what the emulator serves its other pages beside.
_AUTHORIZE_PATH = "/connect/oauth2/authorize"


def authorize_url(
    base: str,
    app_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    component_appid: str | None = None,
) -> str:
    """WeChat's authorize URL with its parameters in the order WeChat enforces.

    WeChat regex-matches the link: appid, redirect_uri, response_type, scope, state in this
    order, redirect_uri percent-encoded in full (':' and '/' too), and the '#wechat_redirect'
    fragment, which a browser keeps across the 302. A login on an account's behalf (a
    third-party platform's) adds component_appid after state.
    """
    platform = f"&component_appid={_quoted(component_appid)}" if component_appid else ""
    return (
        f"{base}?appid={_quoted(app_id)}&redirect_uri={_quoted(redirect_uri)}"
        f"&response_type=code&scope={scope}&state={state}{platform}#wechat_redirect"
    )


@lru_cache(maxsize=1024)
def _quoted(value: str) -> str:
    # Percent-encoded in full: an AppID and a site's redirect_uri, the same for every login.
    return quote(value, safe="")


def is_valid_state(state: str) -> bool:
    return _STATE.fullmatch(state) is not None


# The same few hosts on every request: remembered, a bounded few (the Host header is the
# client's to choose).
@lru_cache(maxsize=64)
def request_origin(scheme: str, host: str) -> str | None:
    """The origin a request was made to, from its scheme and Host header, or None if the Host
    header is not a plain host[:port] (it is attacker-controlled: never copy it blindly)."""
    if scheme not in ("http", "https") or not _HOST.fullmatch(host):
        return None
    host = host.lower()
    # The shape is right; now what a URL can hold: a port in range, a real IPv6 address.
    try:
        parts = urlsplit(f"{scheme}://{host}")
        port = parts.port
        if host.startswith("["):
            ipaddress.IPv6Address(parts.hostname or "")
    except ValueError:
        return None
    if port == 0:
        return None
    default_port = ":443" if scheme == "https" else ":80"
    if host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}"


def safe_return_path(target: str | None) -> str | None:
    """`target` if it is a path on this site that is safe to redirect to, else None.

    Accepted: '/' followed by printable ASCII, no backslash, not '//' (scheme-relative), at
    most MAX_RETURN_PATH characters. Refused: absolute URLs, 'javascript:' and other schemes
    (they don't start with '/'), CR/LF and other control characters, non-ASCII look-alikes.
    """
    if not target or len(target) > MAX_RETURN_PATH or not _RETURN_PATH.fullmatch(target):
        return None
    return target


def same_origin_path(url: str, origin: str) -> str | None:
    """The path and query of `url` when it is on `origin` (e.g. a Referer), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if f"{parts.scheme}://{parts.netloc}".lower() != origin:
        return None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return safe_return_path(target)


def beside_authorize(authorize_url: str, path: str) -> str:
    """`path` on the host of `authorize_url` (the emulator's, mounted under a prefix or not)."""
    parts = urlsplit(authorize_url)
    base = parts.path
    prefix = base.removesuffix(_AUTHORIZE_PATH) if base.endswith(_AUTHORIZE_PATH) else ""
    return f"{parts.scheme}://{parts.netloc}{prefix}{path}"


def path_matches(cookie_path: str, path: str) -> bool:
    """Whether a browser sends a cookie of `cookie_path` to `path` (RFC 6265, 5.1.4)."""
    return (
        path == cookie_path
        or (cookie_path.endswith("/") and path.startswith(cookie_path))
        or path.startswith(cookie_path + "/")
    )


def check_path(name: str, value: object) -> None:
    if not isinstance(value, str) or not _PATH.match(value):
        raise ConfigurationError(
            f"{name} must be a URL path starting with '/', without query or fragment, "
            f"not {value!r}."
        )


def check_url(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string URL, not {value!r}.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL, not {value!r}.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(f"{name} must have no query, fragment or credentials: {value!r}.")
    # The scheme in lower case ("HTTPS://" is https): what decides TLS is never a raw string.
    return parts.scheme + value[len(parts.scheme) :]


def check_origin(name: str, value: object) -> str:
    url = check_url(name, value)
    parts = urlsplit(url)
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"{name} must be an origin such as 'https://example.com', without a path: {url!r}."
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{name} has an invalid port: {url!r}.") from exc
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
