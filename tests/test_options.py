"""The options are written once, in Config: the adapters' typed signature, the environment
variables and the options reference's table (docs/options.md) must agree with it."""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware
from wxauth_middleware.config import OPTIONS, Config
from wxauth_middleware.env import _PARSERS, CODE_OPTIONS, ENV_PREFIX, options_from_env

OPTIONS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "options.md"
REQUIRED: dict[str, Any] = {
    "app_id": "wx1234567890abcdef",
    "app_secret": "s" * 32,
    "secret_key": "k" * 32,
}


def _config_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for option in fields(Config):
        if not option.init:
            continue
        if option.default is not MISSING:
            defaults[option.name] = option.default
        elif option.default_factory is not MISSING:
            # A mutable default: the signature says None, which Config takes as empty.
            defaults[option.name] = None
        else:
            defaults[option.name] = inspect.Parameter.empty
    return defaults


@pytest.mark.parametrize("adapter", [WeChatAuthMiddleware, WeChatAuthWSGIMiddleware])
def test_signature_is_configs(adapter: type[Any]) -> None:
    parameters = list(inspect.signature(adapter.__init__).parameters.values())
    assert [p.name for p in parameters[:2]] == ["self", "app"]
    options = parameters[2:]
    assert [p.name for p in options] == list(OPTIONS)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in options)
    assert {p.name: p.default for p in options} == _config_defaults()
    types = {f.name: f.type for f in fields(Config) if f.init}
    for p in options:
        expected = types[p.name]
        if p.name == "verify_files":
            expected = f"{expected} | None"
        assert p.annotation == expected, p.name


def test_a_mutable_default_of_none_is_empty() -> None:
    assert Config(**REQUIRED, verify_files=None).verify_files == {}  # type: ignore[arg-type]


def test_every_plain_option_comes_from_the_environment() -> None:
    assert set(_PARSERS) | CODE_OPTIONS == set(OPTIONS)
    assert not set(_PARSERS) & CODE_OPTIONS
    # Parsed by type: a number is a number, none is None where None is allowed.
    parsed = options_from_env(
        {
            f"{ENV_PREFIX}MAX_AGE": "none",
            f"{ENV_PREFIX}RETRIES": "3",
            f"{ENV_PREFIX}HTTP_TIMEOUT": "2.5",
            f"{ENV_PREFIX}KEEP_TOKENS": "yes",
            f"{ENV_PREFIX}SCOPE": "snsapi_userinfo",
        }
    )
    assert parsed == {
        "max_age": None,
        "retries": 3,
        "http_timeout": 2.5,
        "keep_tokens": True,
        "scope": "snsapi_userinfo",
    }


def _options_table() -> list[tuple[str, str, str]]:
    text = OPTIONS_PAGE.read_text(encoding="utf-8")
    section = text.split("| option | default | meaning |\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| (.*) \|$", section, re.MULTILINE)
    return [(name, default.strip(), about) for name, default, about in rows]


def test_the_options_table_lists_every_option_with_its_default() -> None:
    rows = _options_table()
    assert [name for name, _, _ in rows] == list(OPTIONS)
    config = Config(**REQUIRED)
    for name, default, about in rows:
        if name in REQUIRED:
            assert default == "required"
            continue
        actual = getattr(config, name)
        if default == "WeChat's":
            assert "weixin.qq.com" in actual, name
            assert f"`{actual}`" in about, name
        elif match := re.fullmatch(r"(\d+) days", default):
            assert actual == int(match[1]) * 24 * 3600, name
        else:
            literal = ast.literal_eval(default.strip("`"))
            assert literal == actual or (literal == () and tuple(actual) == ()), name
