"""The middleware configured from `WXAUTH_*` environment variables (`from_env`), for both
adapters: every plain option parsed by its type, keyword overrides, clear errors naming the
variable, and a login with a middleware built from the environment alone."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware, WeChatUser
from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
)
from wxauth_middleware.messages import HTTPRequest
from wxauth_middleware.rules import Rule

from .support import SECRET_KEY, Middleware, Stack, inner_app, inner_wsgi_app, location, login

OLD_KEY = "old-signing-key-0123456789abcdef"
NEW_KEY = "new-signing-key-0123456789abcdef"
REQUIRED = {
    "WXAUTH_APP_ID": DEFAULT_APP_ID,
    "WXAUTH_APP_SECRET": DEFAULT_APP_SECRET,
    "WXAUTH_SECRET_KEY": SECRET_KEY,
}
# Every option that is a plain value, set to something other than its default.
EVERY_OPTION = {
    "WXAUTH_APP_ID": DEFAULT_APP_ID,
    "WXAUTH_APP_SECRET": DEFAULT_APP_SECRET,
    "WXAUTH_SECRET_KEY": f"{OLD_KEY}, {NEW_KEY}",
    "WXAUTH_SCOPE": "snsapi_userinfo",
    "WXAUTH_CALLBACK_PATH": "/auth/callback",
    "WXAUTH_PUBLIC_URL": "https://example.com",
    "WXAUTH_AUTHORIZE_URL": "http://127.0.0.1:8400/connect/oauth2/authorize",
    "WXAUTH_API_BASE_URL": "http://127.0.0.1:8400/",
    "WXAUTH_SESSION_COOKIE": "sid",
    "WXAUTH_MAX_AGE": "3600",
    "WXAUTH_COOKIE_DOMAIN": ".example.com",
    "WXAUTH_COOKIE_PATH": "/auth",
    "WXAUTH_HTTPS_ONLY": "yes",
    "WXAUTH_LOGIN_MAX_AGE": "120",
    "WXAUTH_LANG": "en",
    "WXAUTH_HTTP_TIMEOUT": "2.5",
    "WXAUTH_LOGIN_TIMEOUT": "7.5",
    "WXAUTH_RETRIES": "1",
    "WXAUTH_MAX_CONNECTIONS": "8",
    "WXAUTH_OTHER_BROWSERS": "qrconnect",
    "WXAUTH_WEBSITE_APP_ID": DEFAULT_WEBSITE_APP_ID,
    "WXAUTH_WEBSITE_APP_SECRET": DEFAULT_WEBSITE_APP_SECRET,
    "WXAUTH_QRCONNECT_URL": "http://127.0.0.1:8400/connect/qrconnect",
    "WXAUTH_LOGIN_PATH": "/auth/in",
    "WXAUTH_LOGOUT_PATH": "/auth/out",
    "WXAUTH_SNAPSHOT_USERS": "app",
    "WXAUTH_IDENTITY": "unionid",
    "WXAUTH_REDIS_URL": "redis://127.0.0.1:6379/3",
    "WXAUTH_REDIS_PREFIX": "shop:",
    "WXAUTH_KEEP_TOKENS": "on",
    "WXAUTH_SCAN_PATH": "/login/scan",
    "WXAUTH_SCAN_MAX_AGE": "120",
    "WXAUTH_JSSDK_PATH": "/auth/jssdk",
    "WXAUTH_JSSDK_SCRIPT_URL": "http://127.0.0.1:8400/open/js/jweixin-1.6.0.js",
    "WXAUTH_PLATFORM_EVENTS_PATH": "/auth/platform",
    "WXAUTH_RELAY_URL": "https://auth.example.com",
    "WXAUTH_RELAY_SITE_ID": "shop",
    "WXAUTH_RELAY_SECRET": "r" * 40,
    "WXAUTH_RELAY_BROWSERS": "both",
}
# Options that are code (callables, objects, mappings): keyword arguments only.
CODE_ONLY = {"app", "accounts", "on_error", "on_login", "transport", "rules", "verify_files"}

KINDS = ["asgi", "wsgi"]


def from_env(kind: str, environ: dict[str, str] | None, **overrides: Any) -> Middleware:
    if kind == "asgi":
        return WeChatAuthMiddleware.from_env(inner_app(), environ=environ, **overrides)
    return WeChatAuthWSGIMiddleware.from_env(inner_wsgi_app, environ=environ, **overrides)


@pytest.mark.parametrize("kind", KINDS)
def test_every_plain_option_is_read_and_parsed(kind: str) -> None:
    # A site of a relay takes other options than these (its own test, below).
    own = {k: v for k, v in EVERY_OPTION.items() if not k.startswith("WXAUTH_RELAY_")}
    environ = {**own, "PATH": "/usr/bin", "HOME": "/root", "WXAUTHX_APP_ID": "ignored"}
    middleware = from_env(kind, environ)
    assert isinstance(
        middleware, WeChatAuthMiddleware if kind == "asgi" else WeChatAuthWSGIMiddleware
    )
    config = middleware.config
    assert config.app_id == DEFAULT_APP_ID
    assert config.app_secret == DEFAULT_APP_SECRET
    assert config.secret_keys == (OLD_KEY.encode(), NEW_KEY.encode())  # newest last
    assert config.scope == "snsapi_userinfo"
    assert config.callback_path == "/auth/callback"
    assert config.public_url == "https://example.com"
    assert config.authorize_url == "http://127.0.0.1:8400/connect/oauth2/authorize"
    assert config.api_base_url == "http://127.0.0.1:8400"
    assert config.session_cookie == "sid"
    assert config.max_age == 3600
    assert type(config.max_age) is int
    assert config.cookie_domain == ".example.com"
    assert config.cookie_path == "/auth"
    assert config.https_only is True
    assert config.login_max_age == 120
    assert type(config.login_max_age) is int
    assert config.lang == "en"
    assert config.http_timeout == 2.5
    assert config.login_timeout == 7.5
    assert config.retries == 1
    assert config.max_connections == 8
    assert config.other_browsers == "qrconnect"
    assert config.website_app_id == DEFAULT_WEBSITE_APP_ID
    assert config.website_app_secret == DEFAULT_WEBSITE_APP_SECRET
    assert config.qrconnect_url == "http://127.0.0.1:8400/connect/qrconnect"
    assert config.login_path == "/auth/in"
    assert config.logout_path == "/auth/out"
    assert config.snapshot_users == "app"
    assert config.identity == "unionid"
    assert config.redis_url == "redis://127.0.0.1:6379/3"
    assert config.redis_prefix == "shop:"
    assert config.keep_tokens is True
    assert config.jssdk_path == "/auth/jssdk"
    assert config.jssdk_script_url == "http://127.0.0.1:8400/open/js/jweixin-1.6.0.js"
    assert config.platform_events_path == "/auth/platform"


def test_every_plain_option_has_a_variable() -> None:
    """A new option must be settable from the environment (or be code, keyword-only)."""
    parameters = inspect.signature(WeChatAuthMiddleware.__init__).parameters
    options = {name for name in parameters if name != "self"}
    from_environment = {name.removeprefix("WXAUTH_").lower() for name in EVERY_OPTION}
    assert options - CODE_ONLY == from_environment
    # And each of those variables is known (none is refused as a typo).
    for name in EVERY_OPTION:
        WeChatAuthMiddleware.from_env(
            inner_app(), environ={**REQUIRED, name: EVERY_OPTION[name]}, **_companions(name)
        )


def test_a_site_of_a_relay_is_configured_from_the_environment() -> None:
    relay = {k: v for k, v in EVERY_OPTION.items() if k.startswith("WXAUTH_RELAY_")}
    environ = {"WXAUTH_SECRET_KEY": NEW_KEY, **relay}  # no account of its own
    config = WeChatAuthMiddleware.from_env(inner_app(), environ=environ).config
    assert config.relay_url == "https://auth.example.com"
    assert config.relay_site_id == "shop"
    assert config.relay_secret == "r" * 40
    assert config.relay_browsers == "both"
    assert config.app_id is None


def _companions(variable: str) -> dict[str, Any]:
    """Options some variables need to make a valid configuration on their own."""
    if variable == "WXAUTH_IDENTITY":
        return {"scope": "snsapi_userinfo"}
    if variable == "WXAUTH_OTHER_BROWSERS":
        return {"website_app_id": DEFAULT_WEBSITE_APP_ID, "website_app_secret": "s3cret"}
    if variable == "WXAUTH_KEEP_TOKENS":
        return {"redis_url": "redis://127.0.0.1:6379/0"}
    if variable.startswith("WXAUTH_RELAY_"):
        # A site of a relay: the relay options come together.
        relay = {"relay_url": "https://auth.example.com", "relay_site_id": "shop"}
        relay["relay_secret"] = "r" * 40
        return {k: v for k, v in relay.items() if k != variable.removeprefix("WXAUTH_").lower()}
    if variable == "WXAUTH_COOKIE_PATH":
        # The session must reach the middleware's own paths.
        return {"callback_path": "/auth/callback", "login_path": None, "logout_path": None}
    return {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("TRUE", True),
        ("No", False),
        (" yes ", True),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_booleans(kind: str, raw: str, expected: bool) -> None:
    middleware = from_env(kind, {**REQUIRED, "WXAUTH_HTTPS_ONLY": raw})
    assert middleware.config.https_only is expected


@pytest.mark.parametrize("none", ["none", "None", "NONE"])
@pytest.mark.parametrize("kind", KINDS)
def test_none_where_none_is_allowed(kind: str, none: str) -> None:
    environ = {
        **REQUIRED,
        "WXAUTH_MAX_AGE": none,
        "WXAUTH_PUBLIC_URL": none,
        "WXAUTH_LOGIN_PATH": none,
        "WXAUTH_LOGOUT_PATH": none,
        "WXAUTH_COOKIE_DOMAIN": none,
    }
    config = from_env(kind, environ).config
    assert config.max_age is None
    assert config.public_url is None
    assert config.login_path is None
    assert config.logout_path is None
    assert config.cookie_domain is None


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_when_only_the_required_variables_are_set(kind: str) -> None:
    config = from_env(kind, dict(REQUIRED)).config
    assert config.secret_keys == (SECRET_KEY.encode(),)
    assert config.scope == "snsapi_base"
    assert config.max_age == 14 * 24 * 3600
    assert config.login_path == "/wxauth/login"
    assert config.https_only is False
    assert config.other_browsers == "pass"


@pytest.mark.parametrize("kind", KINDS)
def test_secret_key_list_rotates(kind: str) -> None:
    environ = {**REQUIRED, "WXAUTH_SECRET_KEY": f"{OLD_KEY},{NEW_KEY}"}
    assert from_env(kind, environ).config.secret_keys == (OLD_KEY.encode(), NEW_KEY.encode())


@pytest.mark.parametrize("kind", KINDS)
def test_keyword_overrides_win(kind: str) -> None:
    def on_login(user: WeChatUser, request: HTTPRequest) -> None:
        return None

    environ = {
        **REQUIRED,
        "WXAUTH_SCOPE": "snsapi_userinfo",
        "WXAUTH_MAX_AGE": "60",
        "WXAUTH_APP_SECRET": "from-the-environment",
    }
    rules = [Rule("/static/**", exempt=True)]
    config = from_env(
        kind,
        environ,
        scope="snsapi_base",
        max_age=None,
        app_secret=DEFAULT_APP_SECRET,
        rules=rules,
        on_login=on_login,
        verify_files={"MP_verify_Ab12.txt": "Ab12"},
    ).config
    assert config.scope == "snsapi_base"
    assert config.max_age is None
    assert config.app_secret == DEFAULT_APP_SECRET
    assert tuple(config.rules) == tuple(rules)
    assert config.on_login is on_login
    assert dict(config.verify_files) == {"MP_verify_Ab12.txt": "Ab12"}


@pytest.mark.parametrize("kind", KINDS)
def test_required_options_can_come_from_keywords(kind: str) -> None:
    middleware = from_env(
        kind,
        {"WXAUTH_APP_ID": DEFAULT_APP_ID},
        app_secret=DEFAULT_APP_SECRET,
        secret_key=[OLD_KEY, NEW_KEY],
    )
    assert middleware.config.secret_keys == (OLD_KEY.encode(), NEW_KEY.encode())


@pytest.mark.parametrize("kind", KINDS)
def test_reads_os_environ_by_default(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WXAUTH_LANG", "zh_TW")
    assert from_env(kind, None).config.lang == "zh_TW"


@pytest.mark.parametrize(
    ("missing", "variable"),
    [
        ("WXAUTH_APP_ID", "WXAUTH_APP_ID"),
        ("WXAUTH_APP_SECRET", "WXAUTH_APP_SECRET"),
        ("WXAUTH_SECRET_KEY", "WXAUTH_SECRET_KEY"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_missing_required_variable_is_named(kind: str, missing: str, variable: str) -> None:
    environ = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ValueError, match=variable):
        from_env(kind, environ)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_environment_names_the_app_id(kind: str) -> None:
    with pytest.raises(ValueError, match="WXAUTH_APP_ID"):
        from_env(kind, {"PATH": "/usr/bin"})


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("WXAUTH_APP_IDD", "WXAUTH_APP_ID"),
        ("WXAUTH_SECRETKEY", "WXAUTH_SECRET_KEY"),
        ("WXAUTH_MAXAGE", "WXAUTH_MAX_AGE"),
        ("WXAUTH_HTTPS", "WXAUTH_HTTPS_ONLY"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_unknown_variable_is_refused_with_a_suggestion(
    kind: str, typo: str, suggestion: str
) -> None:
    with pytest.raises(ValueError, match=typo) as caught:
        from_env(kind, {**REQUIRED, typo: "x"})
    assert f"Did you mean {suggestion}?" in str(caught.value)


@pytest.mark.parametrize("variable", ["WXAUTH_ON_LOGIN", "WXAUTH_RULES", "WXAUTH_VERIFY_FILES"])
def test_code_only_options_are_not_variables(variable: str) -> None:
    with pytest.raises(ValueError, match=variable):
        from_env("asgi", {**REQUIRED, variable: "x"})


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("WXAUTH_MAX_AGE", "abc"),
        ("WXAUTH_MAX_AGE", "1.5"),
        ("WXAUTH_MAX_AGE", ""),
        ("WXAUTH_LOGIN_MAX_AGE", "ten"),
        ("WXAUTH_HTTPS_ONLY", "maybe"),
        ("WXAUTH_HTTPS_ONLY", ""),
        ("WXAUTH_HTTP_TIMEOUT", "fast"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_unparsable_values_name_the_variable(kind: str, variable: str, raw: str) -> None:
    with pytest.raises(ValueError, match=variable):
        from_env(kind, {**REQUIRED, variable: raw})


@pytest.mark.parametrize(
    ("variable", "raw", "option"),
    [
        ("WXAUTH_MAX_AGE", "-5", "max_age"),
        ("WXAUTH_SCOPE", "snsapi_login", "scope"),
        ("WXAUTH_HTTP_TIMEOUT", "0", "http_timeout"),
        ("WXAUTH_OTHER_BROWSERS", "qrconnect", "website_app_id"),
        ("WXAUTH_LOGIN_PATH", "wxauth/login", "login_path"),
        ("WXAUTH_IDENTITY", "unionid", "snsapi_userinfo"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_parsed_but_invalid_values_are_refused(
    kind: str, variable: str, raw: str, option: str
) -> None:
    with pytest.raises(ValueError, match=option):
        from_env(kind, {**REQUIRED, variable: raw})


@pytest.mark.anyio
async def test_login_with_a_middleware_built_from_the_environment_alone(stack: Stack) -> None:
    emulator = stack.emulator()
    environ = {
        "WXAUTH_APP_ID": DEFAULT_APP_ID,
        "WXAUTH_APP_SECRET": DEFAULT_APP_SECRET,
        "WXAUTH_SECRET_KEY": f"{OLD_KEY},{NEW_KEY}",
        "WXAUTH_SCOPE": "snsapi_userinfo",
        "WXAUTH_AUTHORIZE_URL": stack.authorize_url,
        "WXAUTH_API_BASE_URL": stack.wechat_url,
        "WXAUTH_SESSION_COOKIE": "sid",
        "WXAUTH_MAX_AGE": "600",
        "WXAUTH_LANG": "en",
        "WXAUTH_CALLBACK_PATH": "/auth/callback",
    }
    middleware = from_env(stack.kind, environ)
    async with stack.phone(middleware) as client:
        start = await client.get("/page")
        page = await login(client, "/page", persona="xiaoming")
        session = client.cookies["sid"]
    xiaoming = next(p for p in DEFAULT_PERSONAS if p.key == "xiaoming")
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A8000%2Fauth%2Fcallback&" in location(start)
    assert page.status_code == 200
    user = page.json()["user"]
    assert user["openid"] == xiaoming.openid_for(DEFAULT_APP_ID)
    assert user["nickname"] == "小明🐼"
    assert session
    assert [c.path for c in emulator.calls] == ["/sns/oauth2/access_token", "/sns/userinfo"]
    assert emulator.calls[1].param("lang") == "en"
