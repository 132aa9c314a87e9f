"""The decision core without any adapter: the quick path agrees with the full one."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from wxauth_middleware import Rule, WeChatUser
from wxauth_middleware.config import Config
from wxauth_middleware.cookie_writer import cookie_value
from wxauth_middleware.cookies import Session
from wxauth_middleware.core import Forward, LoginCore
from wxauth_middleware.decisions import query_params
from wxauth_middleware.messages import HTTPRequest

from .support import CHROME_UA, SECRET_KEY, WECHAT_UA, WECOM_UA


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("wxauth_session=abc", "abc"),
        ("a=1; wxauth_session=abc; b=2", "abc"),
        ("a=1;wxauth_session=abc", "abc"),
        ("xwxauth_session=evil; wxauth_session=abc", "abc"),
        ("xwxauth_session=evil", ""),
        ("wxauth_session_state_x=1", ""),
        # Several of one name (one planted by a sibling subdomain): none.
        ("wxauth_session=first; wxauth_session=second", ""),
        ("wxauth_session=same; a=1; wxauth_session=same", "same"),
        ("wxauth_session=; wxauth_session=abc", "abc"),
        ("wxauth_session=", ""),
        ("", ""),
        ("wxauth_session= abc ;", "abc"),
        ("utm=x wxauth_session=evil", ""),  # inside another cookie's value: not a cookie
        ("utm=x wxauth_session=evil; wxauth_session=abc", "abc"),
        ('utm="a;b"; wxauth_session=abc', "abc"),
        ("x=wxauth_session=evil; wxauth_session=abc", "abc"),
        ("wxauth_session =spaced; wxauth_session=abc", ""),  # two values of the name: none
        ("wxauth_session =abc; wxauth_session=abc", "abc"),  # the same value twice
        (" \twxauth_session=abc;b", "abc"),
        ("wxauth_session_login=x; wxauth_session=abc", "abc"),  # our other cookies
        ("wxauth_session=abc; wxauth_session_login=x", "abc"),
        ("wxauth_session_login=x; wxauth_session =y; wxauth_session=abc", ""),
        ("wxauth_session_login=wxauth_session; wxauth_session=abc", "abc"),
    ],
)
def test_cookie_value_matches_whole_names(header: str, value: str) -> None:
    assert cookie_value(header, "wxauth_session") == value


def test_cookie_value_follows_the_rule_in_any_header() -> None:
    # Random headers of the pieces that matter, against the rule itself: split into pairs,
    # those whose name (stripped) is the cookie's; their one value, or none when they hold two
    # different values (a planted cookie) or "name=" is nowhere (browsers write no space
    # before the '=').
    def rule(header: str) -> str:
        if "wxauth_session=" not in header:
            return ""
        values = []
        for pair in header.split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip() == "wxauth_session" and value.strip():
                values.append(value.strip())
        return values[0] if len(set(values)) == 1 else ""

    pieces = ["wxauth_session", "=", ";", " ", "x", "wxauth_session=", "v1", "\t", "a=b", "_", "; "]
    rng = random.Random(27)
    for _ in range(20_000):
        header = "".join(rng.choices(pieces, k=rng.randint(0, 8)))
        assert cookie_value(header, "wxauth_session") == rule(header), header


def test_query_params_are_parse_qsl_s_first_values() -> None:
    # Split by hand when there is nothing to unquote; the same answer as parse_qsl's always.
    rng = random.Random(27)
    for _ in range(20_000):
        query = "".join(rng.choices(["a", "b", "=", "&", "%2F", "%", "+", ";", "é"], k=8))
        request = HTTPRequest("GET", "http", "/", "/", query, {})
        expected: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            expected.setdefault(key, value)
        assert query_params(request) == expected, query


def _core(**options: object) -> LoginCore:
    return LoginCore(
        Config(app_id="wx8e6a2d5c0b1f4a37", app_secret="s", secret_key=SECRET_KEY, **options)  # type: ignore[arg-type]
    )


def _request(path: str, user_agent: str, cookie: str) -> HTTPRequest:
    headers = {"user-agent": user_agent, "host": "example.com", "accept": "text/html"}
    if cookie:
        headers["cookie"] = cookie
    return HTTPRequest("GET", "https", path, path, "", headers)


CONFIGS = [
    {},
    {"scope": "snsapi_userinfo"},
    {"rules": [Rule("/profile/**", scope="snsapi_userinfo"), Rule("/static/**", exempt=True)]},
    {"other_browsers": "refuse"},
    {"rules": [Rule("/members/**", other_browsers="refuse")]},
]


@pytest.mark.parametrize("options", CONFIGS)
@pytest.mark.parametrize(
    "path", ["/", "/profile/me", "/static/a.js", "/members/x", "/wxauth/callback"]
)
@pytest.mark.parametrize("user_agent", [WECHAT_UA, CHROME_UA, WECOM_UA, ""])
@pytest.mark.parametrize("session", ["none", "base", "userinfo", "declined", "garbage"])
def test_quick_user_agrees_with_handle(
    options: dict[str, object], path: str, user_agent: str, session: str
) -> None:
    core = _core(**options)
    user = WeChatUser(
        openid="o1", scope="snsapi_userinfo" if session == "userinfo" else "snsapi_base"
    )
    cookie = {
        "none": "",
        "base": core._sessions.encode(Session(user)),
        "userinfo": core._sessions.encode(Session(user)),
        "declined": core._sessions.encode(Session(user, profile_declined=True)),
        "garbage": "x.y.z",
    }[session]
    header = f"__Host-wxauth_session={cookie}" if cookie else ""  # on https
    quick = core.quick_user(path, user_agent, header, "https")
    full = core.handle(_request(path, user_agent, header))
    if quick is not False:
        assert isinstance(full, Forward)
        assert quick == full.user
        assert full.target is None


def test_quick_user_takes_the_common_cases() -> None:
    core = _core()
    cookie = "wxauth_session=" + core._sessions.encode(Session(WeChatUser(openid="o1")))
    assert core.quick_user("/", CHROME_UA, "", "http") is None
    assert core.quick_user("/", WECOM_UA, "a=1", "http") is None
    assert core.quick_user("/", WECHAT_UA, cookie, "http") == WeChatUser(openid="o1")
    assert core.quick_user("/", CHROME_UA, cookie, "http") == WeChatUser(openid="o1")
    # An ASGI header's bytes, decoded only when there is no session: the same decisions.
    assert core.quick_user("/", CHROME_UA.encode(), "", "http") is None
    assert core.quick_user("/", WECHAT_UA.encode(), "", "http") is False
    assert core.quick_user("/", WECHAT_UA.encode(), cookie, "http") == WeChatUser(openid="o1")
    # Left to handle(): WeChat without a session, own paths, a session that may be upgraded.
    assert core.quick_user("/", WECHAT_UA, "", "http") is False
    assert core.quick_user("/wxauth/callback", CHROME_UA, "", "http") is False
    assert _core(scope="snsapi_userinfo").quick_user("/", WECHAT_UA, cookie, "http") is False
