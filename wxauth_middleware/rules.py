"""Route rules: which paths never start a login, which need the profile scope, and what to do
with browsers other than WeChat, per path. Ordered; the first rule whose pattern matches wins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from .errors import ConfigurationError
from .scopes import SCOPES, Scope

__all__ = ["OTHER_BROWSER_POLICIES", "OtherBrowsers", "PagePolicy", "Rule", "RuleSet"]

# What to do with a visitor whose browser is not WeChat's (desktop browsers, WeCom, ...):
# "pass" lets them through anonymously; "refuse" answers a "please open in WeChat" page;
# "qrconnect" logs them in with WeChat's website QR-code login; "scan" shows a QR code that
# WeChat on a phone scans to log this browser in, with the Official Account alone (scan.py);
# "wecom_qr" logs them in with WeCom's desktop login, on a WeCom app's host (wecom/).
OtherBrowsers = Literal["pass", "refuse", "qrconnect", "scan", "wecom_qr"]
OTHER_BROWSER_POLICIES: tuple[OtherBrowsers, ...] = get_args(OtherBrowsers)
_PATTERN = re.compile(r"/[A-Za-z0-9\-._~!$&'()+,;=:@%/*]*")


@dataclass(frozen=True, slots=True)
class Rule:
    """What the middleware does on the paths matching `path`.

    `path` is a glob on the URL path: `*` matches within one segment, `**` across segments
    (so `/static/**` is everything under /static/, `/api/*/export` one level). Without a
    wildcard it matches that exact path.

    - `exempt`: never start a login here (static files, health checks, webhooks); a session
      still puts its user on the request.
    - `scope`: the scope pages here need; `"snsapi_userinfo"` upgrades a session obtained with
      the silent `snsapi_base` scope, once.
    - `other_browsers`: this path's policy for browsers other than WeChat's, instead of the
      site's `other_browsers` option.
    """

    path: str
    scope: Scope | None = None
    exempt: bool = False
    other_browsers: OtherBrowsers | None = None
    _glob: _Glob = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not _PATTERN.fullmatch(self.path):
            raise ConfigurationError(
                f"Rule path {self.path!r} must be a URL path pattern starting with '/' "
                "(wildcards: * within a segment, ** across segments)."
            )
        if "***" in self.path:
            raise ConfigurationError(f"Rule path {self.path!r}: use * or **, not ***.")
        if self.scope is not None and self.scope not in SCOPES:
            raise ConfigurationError(
                f"Rule {self.path!r}: scope must be 'snsapi_base' or 'snsapi_userinfo', "
                f"not {self.scope!r}."
            )
        if self.other_browsers is not None and self.other_browsers not in OTHER_BROWSER_POLICIES:
            raise ConfigurationError(
                f"Rule {self.path!r}: other_browsers must be one of "
                f"{', '.join(OTHER_BROWSER_POLICIES)}, not {self.other_browsers!r}."
            )
        if self.exempt and (self.scope is not None or self.other_browsers is not None):
            raise ConfigurationError(
                f"Rule {self.path!r}: an exempt rule starts no login, so scope and "
                "other_browsers make no sense on it."
            )
        object.__setattr__(self, "_glob", _Glob(self.path))

    def matches(self, path: str) -> bool:
        return self._glob.matches(path)


class _Glob:
    """A rule path, matched in time linear in the path whatever the pattern.

    The literal head and tail are compared as strings. What lies between (from the first star
    to the last) is a sequence of tokens, a literal character, `*` or `**`, run as an automaton
    whose state i means "the first i tokens matched": every state is tracked at once, as one
    bit of an int, so each character costs a few operations on an int of len(pattern) bits.
    (A backtracking regex is not linear: `/assets/*-*.*.js` took seconds on a 3 KB path.)
    """

    __slots__ = ("_accept", "_across", "_head", "_literal", "_middle", "_stars", "_tail")

    def __init__(self, pattern: str) -> None:
        first, last = pattern.find("*"), pattern.rfind("*") + 1
        self._head, self._middle, self._tail = (
            (pattern, "", "")
            if first < 0
            else (pattern[:first], pattern[first:last], pattern[last:])
        )
        self._literal: dict[str, int] = {}  # character -> the states it moves on by one
        self._stars = 0  # `*` and `**`: stay on any character but '/', or move on matching none
        self._across = 0  # `**`: also stay on '/'
        state = 0
        for piece in re.split(r"(\*\*|\*)", self._middle):
            if piece in ("*", "**"):
                self._stars |= 1 << state
                self._across |= (piece == "**") << state
                state += 1
            else:
                for char in piece:
                    self._literal[char] = self._literal.get(char, 0) | 1 << state
                    state += 1
        self._accept = 1 << state

    def matches(self, path: str) -> bool:
        if not self._middle:
            return path == self._head
        start, stop = len(self._head), len(path) - len(self._tail)
        if stop < start or not path.startswith(self._head) or not path.endswith(self._tail):
            return False
        if self._middle == "**":
            return True
        if self._middle == "*":
            return path.find("/", start, stop) < 0
        return self._run(path[start:stop])

    def _run(self, text: str) -> bool:
        literal, stars, across = self._literal, self._stars, self._across
        # Star tokens are never adjacent ("***" is refused): one step closes over them.
        states = 1 | (1 & stars) << 1
        for char in text:
            stay = across if char == "/" else stars
            states = (states & literal.get(char, 0)) << 1 | states & stay
            if not states:
                return False
            states |= (states & stars) << 1
        return bool(states & self._accept)


@dataclass(frozen=True, slots=True)
class PagePolicy:
    """What a page asks of its visitors: the scope it needs, what other browsers get, and
    whether it is exempt from logins altogether."""

    scope: Scope
    other_browsers: OtherBrowsers
    exempt: bool = False


class RuleSet:
    """The rules in order, validated once; `match` gives the first that applies, or None."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        if isinstance(rules, (str, Rule)) or not all(isinstance(r, Rule) for r in rules):
            raise ConfigurationError("rules must be a list of wxauth_middleware.Rule objects.")
        self.rules = tuple(rules)

    def match(self, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(path):
                return rule
        return None

    def policy(self, path: str, default: PagePolicy) -> PagePolicy:
        """The policy of `path`: the first matching rule's, completed by `default`."""
        rule = self.match(path) if self.rules else None
        if rule is None:
            return default
        return PagePolicy(
            rule.scope or default.scope, rule.other_browsers or default.other_browsers, rule.exempt
        )

    def __bool__(self) -> bool:
        return bool(self.rules)
