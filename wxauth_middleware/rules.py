"""Route rules: which paths never start a login, which need the profile scope, and what to do
with browsers other than WeChat, per path. Ordered; the first rule whose pattern matches wins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import ConfigurationError

__all__ = ["OTHER_BROWSER_POLICIES", "Rule", "RuleSet"]

# What to do with a visitor whose browser is not WeChat's (desktop browsers, WeCom, ...):
# "pass" lets them through anonymously; "refuse" answers a "please open in WeChat" page;
# "qrconnect" logs them in with WeChat's website QR-code login.
OTHER_BROWSER_POLICIES: tuple[str, ...] = ("pass", "refuse", "qrconnect")
_SCOPES = ("snsapi_base", "snsapi_userinfo")
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
    scope: str | None = None
    exempt: bool = False
    other_browsers: str | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not _PATTERN.fullmatch(self.path):
            raise ConfigurationError(
                f"Rule path {self.path!r} must be a URL path pattern starting with '/' "
                "(wildcards: * within a segment, ** across segments)."
            )
        if "***" in self.path:
            raise ConfigurationError(f"Rule path {self.path!r}: use * or **, not ***.")
        if self.scope is not None and self.scope not in _SCOPES:
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
        object.__setattr__(self, "_regex", _compile(self.path))

    def matches(self, path: str) -> bool:
        return self._regex.fullmatch(path) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*|\*)", pattern):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


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

    def __bool__(self) -> bool:
        return bool(self.rules)
