"""Every cookie the middleware writes (`CookieWriter`), and reading the session cookie of a
request (`cookie_value`); what the cookies carry is signed by `cookies.py`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.requests import cookie_parser

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .config import Config
    from .messages import HTTPRequest

__all__ = ["COOKIE_PREFIXES", "CookieWriter", "cookie_value"]

# Cookie name prefixes browsers enforce (RFC 6265bis): __Host- cookies are Secure, on '/',
# without a Domain; __Secure- cookies are Secure.
COOKIE_PREFIXES = ("__Host-", "__Secure-")


class CookieWriter:
    """Every cookie the middleware sets or clears, each attribute decided here, once.

    All are HttpOnly and SameSite=Lax (not Strict: the login callback is a top-level
    navigation coming from WeChat's site, and a Strict cookie would not be sent with it).
    Secure on https; also on http when public_url says the public site is https (a
    TLS-terminating proxy in front) or https_only is set. The session cookie lives on
    cookie_path; on https, without cookie_domain and on '/', it is a `__Host-` cookie (unless
    session_cookie names a prefix already), which a sibling subdomain cannot plant (cookie
    tossing: its own session, on a longer path, sent first). The login-state cookie (the
    logins in progress) lives on '/', where a new login finds the others; on https, without
    cookie_domain, it is a `__Host-` cookie too (its signed value binds a login to this
    browser). A scan login's binding cookie lives only on scan_path (and below), where it is
    read.
    """

    def __init__(self, config: Config) -> None:
        self._session = config.session_cookie
        self._max_age = config.max_age
        self._path = config.cookie_path
        self._domain = config.cookie_domain
        self._state_max_age = config.login_max_age
        self._binding_max_age = config.scan_ticket_life
        self._binding_path = config.scan_path
        self._always_secure = config.https_only or (config.public_url or "").startswith("https:")
        self._scheme_decides = config.public_url is None
        base = config.session_cookie
        for prefix in COOKIE_PREFIXES:
            if base.lower().startswith(prefix.lower()):
                base = base[len(prefix) :]
        self._login_host = f"__Host-{base}_login"
        host_only = self._domain is None and self._path == "/"
        prefix_free = base == self._session
        self._session_host = f"__Host-{base}" if prefix_free and host_only else self._session
        # A prefixed session name (https guaranteed) makes the others __Secure- (the binding
        # cookie's path, and cookie_domain, rule __Host- out for them).
        secure = "__Secure-" if base != config.session_cookie else ""
        self._login = f"{secure}{base}_login"
        self._binding_prefix = f"{secure}{base}_scan_"
        self.logged_out_name = f"{secure}{base}_out"
        self._session_names = {s: self.session_name(s) for s in ("http", "https", "ws", "wss")}
        # Set-Cookie is written by hand (`_set`): what goes in unquoted is checked once, here
        # (Config checks the name and the domain; a path of a URL may hold a ';').
        for option, path in (("cookie_path", self._path), ("scan_path", self._binding_path)):
            if not _ATTRIBUTE.fullmatch(path):
                raise ConfigurationError(f"{option} {path!r}: a cookie's path cannot hold ';'.")

    def secure(self, request: HTTPRequest) -> bool:
        return self.secure_scheme(request.scheme)

    def secure_scheme(self, scheme: str) -> bool:
        """Whether cookies are Secure for a request (or websocket) of `scheme`."""
        return self._always_secure or (self._scheme_decides and scheme in ("https", "wss"))

    def session_name(self, scheme: str) -> str:
        """The name of the session cookie, for a request of `scheme`."""
        return self._session_host if self.secure_scheme(scheme) else self._session

    def session_name_of(self, scheme: str) -> str:
        """`session_name(scheme)`, found in one look for the usual schemes (every request
        with a cookie asks)."""
        return self._session_names.get(scheme) or self.session_name(scheme)

    def session_value(self, cookie_header: str, scheme: str) -> str:
        """The session cookie's value in a Cookie header, "" if none (or several)."""
        return cookie_value(cookie_header, self.session_name_of(scheme))

    def session(self, request: HTTPRequest, value: str) -> tuple[str, str]:
        name = self.session_name(request.scheme)
        return self._set(request, name, value, self._max_age, self._path, self._domain)

    def clear_session(self, request: HTTPRequest) -> tuple[str, str]:
        name = self.session_name(request.scheme)
        return self._set(request, name, "", 0, self._path, self._domain)

    def login_name(self, request: HTTPRequest) -> str:
        """The name of the login-state cookie, for this request's scheme."""
        if self._domain is None and self.secure(request):
            return self._login_host
        return self._login

    def login_value(self, request: HTTPRequest) -> str | None:
        """The login-state cookie's value in the request, None if it sent none."""
        return cookie_parser(request.header("cookie")).get(self.login_name(request))

    def login_state(self, request: HTTPRequest, value: str) -> tuple[str, str]:
        """Sets the login-state cookie to `value` (the codec's)."""
        name = self.login_name(request)
        domain = None if name == self._login_host else self._domain
        return self._set(request, name, value, self._state_max_age, "/", domain)

    def logged_out(self, request: HTTPRequest, *, clear: bool = False) -> tuple[str, str]:
        """Marks this browser as logged out on purpose (until it closes, or `clear`): WeChat's
        visitor is then shown the logged-out page instead of being logged in again silently."""
        value, max_age = ("", 0) if clear else ("1", None)
        return self._set(request, self.logged_out_name, value, max_age, "/", self._domain)

    def binding_name(self, ticket: str) -> str:
        """The name of the cookie that binds a scan login's `ticket` to its desktop browser."""
        return self._binding_prefix + ticket

    def binding(self, request: HTTPRequest, ticket: str, value: str) -> tuple[str, str]:
        return self._set(
            request,
            self.binding_name(ticket),
            value,
            self._binding_max_age,
            self._binding_path,
            self._domain,
        )

    def clear_binding(self, request: HTTPRequest, ticket: str) -> tuple[str, str]:
        return self._set(
            request, self.binding_name(ticket), "", 0, self._binding_path, self._domain
        )

    def _set(
        self,
        request: HTTPRequest,
        name: str,
        value: str,
        max_age: int | None,
        path: str,
        domain: str | None,
    ) -> tuple[str, str]:
        # Values are signed values or random tokens (base64url, digits, dots) or empty, and
        # names and attributes were checked in __init__: nothing needs quoting.
        header = f"{name}={value}"
        if max_age is not None:
            header += f"; Max-Age={max_age}"
        header += f"; Path={path}"
        if domain is not None:
            header += f"; Domain={domain}"
        header += "; HttpOnly; SameSite=Lax"
        if self.secure(request):
            header += "; Secure"
        return ("set-cookie", header)


# What a cookie's Path may be written with (RFC 6265: any character but controls and ';').
_ATTRIBUTE = re.compile(r"[ -:<-~]+")


def cookie_value(header: str, name: str) -> str:
    """The value of the cookie `name` in a Cookie header, or "".

    The header is split into its `name=value` pairs and names are compared whole: a session
    hidden inside another cookie's value (`utm=x wxauth_session=...`) is not a session.
    Several cookies of that name with different values give "": a browser sends every
    cookie that matches, the longest path first, so one planted by a sibling subdomain
    (`Domain=` the parent, `Path=/pay`) would win otherwise. No session, not another's.
    """
    key = name + "="
    start = header.find(key)
    if start < 0:
        return ""
    # Commonly the name starts the header or follows "; " there, and is found nowhere else
    # but in longer names (`name_login`, the login-state cookie's): the value is up to the
    # next ';', found without splitting the header, which holds the site's other cookies too.
    # Anything else is read pair by pair.
    once = header.count(name) == header.count(name + "_") + 1
    if once and (start == 0 or header[start - 2 : start] == "; "):
        end = header.find(";", start)
        return header[start + len(key) : end if end >= 0 else None].strip()
    found = ""
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if found and value and value != found:
                return ""
            found = found or value
    return found
