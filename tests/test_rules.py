from __future__ import annotations

import re
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxauth_middleware import ConfigurationError
from wxauth_middleware.rules import Rule, RuleSet, _Glob

from .support import Stack, location

pytestmark = pytest.mark.anyio


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


# -- matching in linear time -------------------------------------------------------------------


def _reference(pattern: str) -> re.Pattern[str]:
    """The documented meaning of a rule path as a regex: `*` within a segment, `**` across."""
    translated = {"*": "[^/]*", "**": ".*"}
    return re.compile(
        "".join(
            translated.get(piece, re.escape(piece)) for piece in re.split(r"(\*\*|\*)", pattern)
        )
    )


_PATTERNS = st.lists(st.sampled_from(["/", "a", "b", "-", ".", "*", "**"]), max_size=8).map(
    lambda tokens: "/" + "".join(tokens)
)
_PATHS = st.text(alphabet="/ab-.", max_size=14).map(lambda text: "/" + text)


@settings(max_examples=500)
@given(pattern=_PATTERNS.filter(lambda pattern: "***" not in pattern), path=_PATHS)
def test_globs_agree_with_the_reference_regex(pattern: str, path: str) -> None:
    assert Rule(pattern).matches(path) is bool(_reference(pattern).fullmatch(path))


def _lines_run(call: Callable[[], bool]) -> tuple[bool, int]:
    """`call()`, and how many lines of the glob matcher ran for it."""
    code = {_Glob.matches.__code__, _Glob._run.__code__}
    lines = 0

    def count(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal lines
        lines += event == "line"
        return count

    def enter(frame: FrameType, event: str, arg: Any) -> Any:
        return count if frame.f_code in code else None

    previous = sys.gettrace()
    sys.settrace(enter)
    try:
        result = call()
    finally:
        sys.settrace(previous)
    return result, lines


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # A backtracking regex took 6.9 s on the first (3 KB), and would take hours on others.
        pytest.param("/assets/*-*.*.js", "/assets/" + "-." * 1500 + "/.js", False, id="3KB-no"),
        pytest.param("/assets/*-*.*.js", "/assets/" + "-." * 1500 + "x.js", True, id="3KB-yes"),
        pytest.param("/**a**a**a*b", "/" + "a" * 8000 + "/b", False, id="8KB-a"),
        pytest.param("/**-**-**-**.js", "/" + "-" * 8000 + ".js", True, id="8KB-dashes"),
        pytest.param("/*/*/*/*.js", "/" + "a/" * 3000 + "x.js", False, id="6KB-segments"),
        pytest.param("/**/*/**/*-*.css", "/" + "a-/" * 2000 + "x.css", False, id="6KB-mixed"),
    ],
)
def test_matching_work_is_linear_in_the_path(pattern: str, path: str, matches: bool) -> None:
    result, lines = _lines_run(lambda: Rule(pattern).matches(path))
    assert result is matches
    # Five lines per character of the path, each a few operations on an int of len(pattern) bits.
    assert lines <= 5 * len(path) + 20


@pytest.mark.parametrize(
    ("path", "login"),
    [
        ("/assets/" + "-." * 1500 + "x.js", False),
        ("/assets/" + "-." * 1500 + "/.js", True),
    ],
    ids=["exempt", "not-exempt"],
)
async def test_long_paths_get_their_rule_promptly(path: str, login: bool, stack: Stack) -> None:
    emulator = stack.emulator()
    rules = [Rule("/assets/*-*.*.js", exempt=True)]
    async with stack.phone(stack.middleware(rules=rules)) as client:
        response = await client.get(path)
    if login:
        assert response.status_code == 302
        assert location(response).startswith(stack.authorize_url + "?")
    else:
        assert response.status_code == 200
        assert response.json() == {"user": None, "path": path}
    assert emulator.calls == []
