"""Tell from a ``User-Agent`` header whether a request comes from the WeChat browser.

WeChat web-page authorization (the Official-Account OAuth flow) only works inside WeChat, so the
middleware asks this module, on every request, which client sent it.

Classification
--------------
Every WeChat client puts a ``MicroMessenger/<version>`` token in its user agent. The token is
matched case-insensitively, because real lower-case user agents exist (``micromessenger/8.0.1``);
the bare word ``MicroMessenger`` without the ``/`` is not enough. The rules, first match wins:

1. ``wxwork/`` anywhere (any case) -> :attr:`ClientKind.WECOM`, whatever else the string says.
2. no ``MicroMessenger/`` token -> :attr:`ClientKind.OTHER`.
3. ``miniProgram`` or ``MiniProgramEnv/...`` -> :attr:`ClientKind.MINI_PROGRAM` (a Mini Program
   web-view, which is a WeChat web-view).
4. ``WindowsWechat`` or ``MacWechat`` (also inside ``UnifiedPCWindowsWechat`` /
   ``UnifiedPCMacWechat``) -> :attr:`ClientKind.WECHAT_DESKTOP`.
5. otherwise -> :attr:`ClientKind.WECHAT`, the in-app browser of WeChat on a phone or tablet.

All tokens are compared without regard to case. :attr:`ClientKind.is_wechat` is true for
``WECHAT``, ``WECHAT_DESKTOP`` and ``MINI_PROGRAM``: web-page authorization works in all three.

Why WeCom is excluded
---------------------
WeCom (企业微信, "WeChat Work") is a different app. Its built-in browser sends ``wxwork/<v>``
*and* a ``MicroMessenger/`` token (desktop WeCom even sends ``WindowsWechat``), so a naive
``"MicroMessenger" in ua`` test takes it for WeChat. But WeCom is not the WeChat browser for
Official-Account login: WeCom has its own OAuth with its own user identities, and WeChat's
web-page authorization is not the way to log a WeCom user in, so the middleware must not start the
WeChat flow there. Hence ``wxwork/`` wins over every other token and WeCom is never
``is_wechat``.

Performance
-----------
The check runs on every request, so the common case (not WeChat) is one ``str.lower()`` and a
substring test, which measured several times faster than a compiled ``re.IGNORECASE`` search on
typical 100-300 character user agents (CPython's regex engine compares case-insensitive literals
one character at a time; ``str.lower`` and ``in`` are tight C loops). No regular expression
is used at all, so no input can cause backtracking: the cost is linear in the length of the string
(a 100 KB string takes a fraction of a millisecond, about a millisecond at worst). Real traffic
repeats a small set of user agents, so results are kept in a bounded LRU cache (1024 entries);
strings longer than ``_CACHE_MAX_LENGTH`` (1024) characters are classified but never cached, so
the cache holds at most 1024 strings of at most 1024 characters however hostile the traffic.
"""

from __future__ import annotations

import enum
import functools

__all__ = ["ClientKind", "classify_user_agent", "is_wechat_browser", "is_wecom_browser"]


class ClientKind(enum.Enum):
    """The kind of client that sent a request, as far as its user agent tells."""

    WECHAT = "wechat"
    """WeChat's in-app browser on a phone or tablet (iOS, Android, HarmonyOS, iPad)."""
    WECHAT_DESKTOP = "wechat_desktop"
    """Desktop WeChat for Windows or macOS (``WindowsWechat`` / ``MacWechat`` tokens)."""
    MINI_PROGRAM = "mini_program"
    """A Mini Program web-view inside WeChat (``miniProgram`` / ``MiniProgramEnv/...``)."""
    WECOM = "wecom"
    """WeCom / 企业微信 (``wxwork/...``): NOT the WeChat browser for Official-Account login."""
    OTHER = "other"
    """Anything else: other browsers and apps, crawlers, tools, missing or garbage headers."""

    @property
    def is_wechat(self) -> bool:
        """True for the clients where WeChat web-page authorization works.

        That is :attr:`WECHAT`, :attr:`WECHAT_DESKTOP` and :attr:`MINI_PROGRAM`; never
        :attr:`WECOM` or :attr:`OTHER`.
        """
        # Identity tests against module globals: ``ClientKind.X`` goes through the enum metaclass
        # and ``Enum.__hash__`` is Python code, so both a class lookup and a set test are slower.
        return self is _WECHAT or self is _WECHAT_DESKTOP or self is _MINI_PROGRAM


_OTHER = ClientKind.OTHER
_WECOM = ClientKind.WECOM
_MINI_PROGRAM = ClientKind.MINI_PROGRAM
_WECHAT_DESKTOP = ClientKind.WECHAT_DESKTOP
_WECHAT = ClientKind.WECHAT

# Lower-case needles, searched for in ``ua.lower()``.
_WECHAT_NEEDLE = "micromessenger/"
_WECOM_NEEDLE = "wxwork/"
_MINI_PROGRAM_NEEDLE = "miniprogram"  # ``miniProgram`` and ``MiniProgramEnv/...``
_WINDOWS_NEEDLE = "windowswechat"  # also ``UnifiedPCWindowsWechat``
_MAC_NEEDLE = "macwechat"  # also ``UnifiedPCMacWechat``

_CACHE_SIZE = 1024
_CACHE_MAX_LENGTH = 1024
"""User agents longer than this are not cached (real ones are under 500 characters)."""


def _classify(user_agent: str) -> ClientKind:
    low = user_agent.lower()
    if _WECHAT_NEEDLE not in low:
        return _WECOM if _WECOM_NEEDLE in low else _OTHER
    if _WECOM_NEEDLE in low:
        return _WECOM
    if _MINI_PROGRAM_NEEDLE in low:
        return _MINI_PROGRAM
    if _WINDOWS_NEEDLE in low or _MAC_NEEDLE in low:
        return _WECHAT_DESKTOP
    return _WECHAT


_classify_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(_classify)


def classify_user_agent(user_agent: str | None) -> ClientKind:
    """Classify a ``User-Agent`` header value; see the module docstring for the rules.

    ``None`` (no header) and the empty string are :attr:`ClientKind.OTHER`. Never raises for any
    ``str``, whatever its length or content.
    """
    if not user_agent:
        return _OTHER
    if len(user_agent) > _CACHE_MAX_LENGTH:
        return _classify(user_agent)
    return _classify_cached(user_agent)


def is_wechat_browser(user_agent: str | None) -> bool:
    """True if the user agent is WeChat (mobile, desktop or Mini Program web-view), not WeCom.

    Same as ``classify_user_agent(user_agent).is_wechat``, without the property call.
    """
    # Most traffic is not WeChat: one lower() and one substring test settle it, cheaper than
    # hashing the string for the cache.
    if not user_agent or _WECHAT_NEEDLE not in user_agent.lower():
        return False
    kind = classify_user_agent(user_agent)
    return kind is _WECHAT or kind is _WECHAT_DESKTOP or kind is _MINI_PROGRAM


def is_wecom_browser(user_agent: str | None) -> bool:
    """True if the user agent is WeCom's (企业微信, ``wxwork/``), on a phone or a desktop."""
    return bool(user_agent) and _WECOM_NEEDLE in user_agent.lower()  # type: ignore[union-attr]


# (token, name) pairs, first match wins: the browser, then the system, as a person names them.
_BROWSERS = (
    ("edg/", "Edge"),
    ("opr/", "Opera"),
    ("firefox/", "Firefox"),
    ("qqbrowser/", "QQ Browser"),
    ("360se", "360 Browser"),
    ("chrome/", "Chrome"),
    ("chromium/", "Chromium"),
    ("safari/", "Safari"),
)
_SYSTEMS = (
    ("windows", "Windows"),
    ("iphone", "iOS"),  # before macOS: iPhones say "like Mac OS X"
    ("ipad", "iPadOS"),
    ("android", "Android"),  # before Linux: Android says "Linux" too
    ("cros", "ChromeOS"),
    ("macintosh", "macOS"),
    ("linux", "Linux"),
)


def describe_user_agent(user_agent: str | None) -> str:
    """A short human name of the browser and system a user agent says it is ("Chrome ·
    Windows"), for a person to recognise their own computer; "" when it says nothing known.
    A user agent can claim anything: this describes, it proves nothing."""
    low = (user_agent or "")[:_CACHE_MAX_LENGTH].lower()
    browser = next((name for token, name in _BROWSERS if token in low), "")
    system = next((name for token, name in _SYSTEMS if token in low), "")
    return " · ".join(part for part in (browser, system) if part)
