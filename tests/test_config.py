from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from wxauth_middleware import ConfigurationError, WeChatAuthMiddleware, WeChatAuthWSGIMiddleware
from wxauth_middleware.config import Config

VALID: dict[str, Any] = {
    "app_id": "wx8e6a2d5c0b1f4a37",
    "app_secret": "3f2a9c0e5b7d41a68e0c2f9b4d1a7e63",
    "secret_key": "a-long-enough-signing-key-0123456789",
}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


def test_valid_options_normalise() -> None:
    config = Config(**VALID, public_url="https://Example.com:443/", api_base_url="http://x:1/")
    assert config.public_url == "https://example.com:443"
    assert config.api_base_url == "http://x:1"
    assert config.secret_keys == (b"a-long-enough-signing-key-0123456789",)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"other_browsers": "scan", "scan_path": "/sc;an"}, "scan_path"),
        (
            {
                "cookie_path": "/a;b/",
                "callback_path": "/a;b/cb",
                "login_path": None,
                "logout_path": None,
            },
            "cookie_path",
        ),
    ],
)
def test_a_cookie_path_with_a_semicolon_is_refused(options: dict[str, Any], option: str) -> None:
    # A path of a URL may hold ';', a cookie's Path may not (it would end the attribute).
    with pytest.raises(ConfigurationError, match=f"{option} .*cannot hold ';'"):
        WeChatAuthMiddleware(_app, **VALID, **options)
    with pytest.raises(ConfigurationError, match=f"{option} .*cannot hold ';'"):
        WeChatAuthWSGIMiddleware(lambda environ, start_response: [], **VALID, **options)


def test_a_cookie_path_over_the_own_paths_is_accepted() -> None:
    assert Config(**VALID, cookie_path="/wxauth").cookie_path == "/wxauth"
    config = Config(
        **VALID,
        cookie_path="/app/",
        callback_path="/app/cb",
        login_path="/app/in",
        logout_path=None,
    )
    assert config.cookie_path == "/app/"


def test_key_rotation_list_keeps_order() -> None:
    config = Config(**{**VALID, "secret_key": ["old-key-0123456789abc", b"new-key-0123456789abc"]})
    assert config.secret_keys == (b"old-key-0123456789abc", b"new-key-0123456789abc")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("app_id", "", "app_id is required"),
        ("app_id", "wx 123", "is not an AppID"),
        ("app_id", "wx12345", "16 hexadecimal digits"),
        ("app_id", "1234567890abcdef", "16 hexadecimal digits"),
        ("app_id", "wx1234567890ABCDEF", "16 hexadecimal digits"),
        ("app_id", "wx1234567890abcdefa", "16 hexadecimal digits"),
        ("app_secret", "", "app_secret is required"),
        ("app_secret", "abc def", "white space"),
        ("secret_key", "", "non-empty"),
        ("secret_key", [], "secret_key is required"),
        ("secret_key", 42, "secret_key must be a string"),
        ("scope", "snsapi_login", "scope must be"),
        ("callback_path", "wxauth/callback", "callback_path must be a URL path"),
        ("callback_path", "/cb?x=1", "callback_path must be a URL path"),
        ("public_url", "example.com", "absolute http"),
        ("public_url", "https://example.com/app", "without a path"),
        ("public_url", "https://example.com?x=1", "no query"),
        ("public_url", "ftp://example.com", "absolute http"),
        ("authorize_url", "/connect/oauth2/authorize", "absolute http"),
        ("api_base_url", "https://user:pw@api.weixin.qq.com", "credentials"),
        ("session_cookie", "bad name", "not a valid cookie name"),
        ("max_age", 0, "max_age must be"),
        ("max_age", True, "max_age must be"),
        ("login_max_age", 10, "login_max_age must be"),
        ("cookie_domain", "exa mple.com", "not a domain"),
        ("cookie_path", "/app", "/wxauth/callback, /wxauth/login, /wxauth/logout is outside"),
        ("cookie_path", "/wx", "must cover the middleware's own paths"),
        ("lang", "fr", "lang must be one of"),
        ("http_timeout", 0, "http_timeout must be"),
        ("on_error", "not callable", "on_error must be a callable"),
    ],
)
def test_invalid_option_raises_value_error_naming_it(option: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        WeChatAuthMiddleware(_app, **{**VALID, option: value})
    assert isinstance(info.value, ConfigurationError)


@pytest.mark.parametrize("middleware", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
@pytest.mark.parametrize("missing", ["app_id", "app_secret", "secret_key"])
def test_a_missing_required_option_names_it_and_its_variable(
    middleware: type[Any], missing: str
) -> None:
    options = {name: value for name, value in VALID.items() if name != missing}
    with pytest.raises(ConfigurationError) as info:
        middleware(_app, **options)
    assert str(info.value) == (
        f"{missing} is required: pass {missing}=... or set WXAUTH_{missing.upper()}."
    )


@pytest.mark.parametrize("middleware", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
def test_a_misspelt_option_is_named_with_the_likely_one(middleware: type[Any]) -> None:
    with pytest.raises(
        ConfigurationError, match="no option 'public_uri': did you mean 'public_url'"
    ):
        middleware(_app, **VALID, public_uri="https://example.com")


@pytest.mark.parametrize("middleware", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
def test_a_misspelt_required_option_is_named_not_called_missing(middleware: type[Any]) -> None:
    options = {name: value for name, value in VALID.items() if name != "app_secret"}
    with pytest.raises(
        ConfigurationError, match="no option 'app_secert': did you mean 'app_secret'"
    ):
        middleware(_app, **options, app_secert="s" * 32)


@pytest.mark.parametrize(
    "options",
    [
        # An emulator or relay may answer on any port; WeChat's own pages only on 80 and 443.
        {"public_url": "http://localhost:8000", "authorize_url": "http://127.0.0.1:8400/a"},
        {"public_url": "https://example.com:443"},
        {"public_url": "http://example.com:80"},
    ],
)
def test_public_url_ports_accepted(
    options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        assert Config(**VALID, **options).public_url == options["public_url"]
        WeChatAuthMiddleware(_app, **VALID, **options)
    assert "port" not in caplog.text


@pytest.mark.parametrize("public_url", ["http://192.168.1.20:8000", "https://example.com:8443"])
@pytest.mark.parametrize("middleware", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
def test_another_port_with_wechats_pages_is_a_warning_that_says_what_to_do(
    middleware: type[Any], public_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A 测试号 (sandbox account) takes "IP:port" as its callback domain: the site starts.
    with caplog.at_level(logging.WARNING, logger="wxauth_middleware"):
        app = middleware(_app, **VALID, public_url=public_url)
    assert app.config.public_url == public_url
    port = public_url.rsplit(":", 1)[1]
    [warning] = [r.getMessage() for r in caplog.records if "has port" in r.getMessage()]
    assert f"public_url {public_url} has port {port}" in warning
    assert "测试号" in warning
    assert f"'host:{port}'" in warning
    assert "443" in warning


def test_short_secret_key_warns() -> None:
    with pytest.warns(UserWarning, match="shorter than 16"):
        Config(**{**VALID, "secret_key": "short"})


def test_sync_transport_is_refused_by_the_asgi_middleware() -> None:
    transport = httpx.HTTPTransport()
    with pytest.raises(ConfigurationError, match="AsyncBaseTransport"):
        WeChatAuthMiddleware(_app, **VALID, transport=transport)


def test_secrets_never_in_repr() -> None:
    middleware = WeChatAuthMiddleware(_app, **VALID)
    for text in (repr(middleware), repr(middleware.config), str(middleware.config)):
        assert VALID["app_secret"] not in text
        assert VALID["secret_key"] not in text
        assert VALID["app_id"] in text
