from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from wxauth_middleware.urls import (
    authorize_url,
    is_valid_state,
    request_origin,
    safe_return_path,
    same_origin_path,
)


def test_authorize_url_is_exactly_what_wechat_matches() -> None:
    url = authorize_url(
        "https://open.weixin.qq.com/connect/oauth2/authorize",
        "wx8e6a2d5c0b1f4a37",
        "https://example.com/wxauth/callback",
        "snsapi_userinfo",
        "abc123",
    )
    assert url == (
        "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx8e6a2d5c0b1f4a37"
        "&redirect_uri=https%3A%2F%2Fexample.com%2Fwxauth%2Fcallback"
        "&response_type=code&scope=snsapi_userinfo&state=abc123#wechat_redirect"
    )
    query = urlsplit(url).query
    assert [k for k, _ in parse_qsl(query)] == [
        "appid",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
    ]


@pytest.mark.parametrize(
    ("state", "valid"),
    [
        ("a", True),
        ("A" * 128, True),
        ("0123456789abcdefABCDEF", True),
        ("", False),
        ("A" * 129, False),
        ("abc.def", False),
        ("abc-def", False),
        ("abc_def", False),
        ("abc def", False),
        ("状态", False),
    ],
)
def test_state_alphabet_and_length(state: str, valid: bool) -> None:
    assert is_valid_state(state) is valid


@pytest.mark.parametrize(
    ("scheme", "host", "origin"),
    [
        ("http", "example.com", "http://example.com"),
        ("https", "Example.COM", "https://example.com"),
        ("https", "example.com:443", "https://example.com"),
        ("http", "example.com:80", "http://example.com"),
        ("http", "127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http", "[::1]:8000", "http://[::1]:8000"),
        ("http", "", None),
        ("http", "evil.com/path", None),
        ("http", "user@evil.com", None),
        ("http", "evil.com\r\nSet-Cookie: x=1", None),
        ("http", "a b", None),
        ("http", "example.com:80:80", None),
        ("ftp", "example.com", None),
        ("http", "-bad.com", None),
    ],
)
def test_request_origin_refuses_malformed_hosts(scheme: str, host: str, origin: str | None) -> None:
    assert request_origin(scheme, host) == origin


@pytest.mark.parametrize(
    "target",
    ["/", "/page", "/page?x=1&y=%2F", "/a/b/c.html#frag", "/%E4%B8%AD%E6%96%87", "/p?next=//x"],
)
def test_safe_return_paths_are_kept(target: str) -> None:
    assert safe_return_path(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "page",
        "//evil.com",
        "//evil.com/path",
        "/\\evil.com",
        "/\\/evil.com",
        "\\/evil.com",
        "\\\\evil.com",
        "/x\\y",
        "https://evil.com/",
        "http:/evil.com",
        "javascript:alert(1)",
        "/x\r\nLocation: https://evil.com",
        "/x\nx",
        "/x\tx",
        "/x y",
        "/\uff45vil",  # FULLWIDTH LATIN SMALL LETTER E look-alike
        "/\u2215\u2215evil.com",  # DIVISION SLASH look-alikes
        "/" + "a" * 1024,
    ],
)
def test_unsafe_return_paths_are_refused(target: str | None) -> None:
    assert safe_return_path(target) is None


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://example.com/spa?tab=2", "/spa?tab=2"),
        ("https://EXAMPLE.com/", "/"),
        ("https://example.com", "/"),
        ("http://example.com/spa", None),
        ("https://evil.com/spa", None),
        ("https://example.com.evil.com/", None),
        ("https://example.com@evil.com/", None),
        ("//example.com/x", None),
        ("not a url", None),
        ("http://[::1", None),
        ("", None),
    ],
)
def test_same_origin_path(url: str, path: str | None) -> None:
    assert same_origin_path(url, "https://example.com") == path
