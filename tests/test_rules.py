from __future__ import annotations

import pytest

from wxauth_middleware import ConfigurationError
from wxauth_middleware.rules import Rule, RuleSet


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/healthz", "/healthz", True),
        ("/healthz", "/healthz/", False),
        ("/healthz", "/healthzz", False),
        ("/static/**", "/static/app.js", True),
        ("/static/**", "/static/css/site.css", True),
        ("/static/**", "/static/", True),
        ("/static/**", "/static", False),
        ("/static/**", "/staticfoo/x", False),
        ("/api/*/export", "/api/orders/export", True),
        ("/api/*/export", "/api/orders/2024/export", False),
        ("/api/*", "/api/", True),
        ("/*.txt", "/robots.txt", True),
        ("/*.txt", "/a/robots.txt", False),
        ("/**", "/anything/at/all", True),
        ("/a.b", "/aXb", False),  # '.' is literal, not a regex
        ("/user/(x)", "/user/(x)", True),
        ("/profile/**", "/profile/me", True),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert Rule(pattern).matches(path) is matches


def test_first_matching_rule_wins() -> None:
    rules = RuleSet(
        [
            Rule("/profile/public", exempt=True),
            Rule("/profile/**", scope="snsapi_userinfo"),
            Rule("/**", other_browsers="refuse"),
        ]
    )
    assert rules.match("/profile/public") == Rule("/profile/public", exempt=True)
    assert rules.match("/profile/me") == Rule("/profile/**", scope="snsapi_userinfo")
    assert rules.match("/") == Rule("/**", other_browsers="refuse")
    assert RuleSet([]).match("/") is None
    assert not RuleSet([])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "static/**"}, "starting with '/'"),
        ({"path": ""}, "starting with '/'"),
        ({"path": "/a b"}, "starting with '/'"),
        ({"path": "/a?b=1"}, "starting with '/'"),
        ({"path": "/***"}, "not \\*\\*\\*"),
        ({"path": "/x", "scope": "snsapi_login"}, "scope must be"),
        ({"path": "/x", "other_browsers": "block"}, "other_browsers must be one of"),
        ({"path": "/x", "exempt": True, "scope": "snsapi_userinfo"}, "exempt rule"),
    ],
)
def test_invalid_rules_are_refused_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Rule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rules", ["/static/**", [Rule("/x"), "/y"], Rule("/x")])
def test_rules_must_be_a_list_of_rules(rules: object) -> None:
    with pytest.raises(ConfigurationError, match=r"list of wxauth_middleware\.Rule"):
        RuleSet(rules)  # type: ignore[arg-type]
