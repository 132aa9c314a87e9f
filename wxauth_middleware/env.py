"""Middleware options from the environment: `WXAUTH_<OPTION>` variables.

Every option that is a plain value can come from the environment (hooks, rules, transports
and the verify-file mapping are code, so keyword arguments only). Values are parsed by the
option's type; `none` means None where None is allowed; `WXAUTH_SECRET_KEY` takes a
comma-separated list of keys, oldest first, to rotate them. An unknown `WXAUTH_*` variable is an
error: a typo must not silently leave an option at its default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from difflib import get_close_matches
from typing import Any

from .errors import ConfigurationError

__all__ = ["ENV_PREFIX", "options_from_env"]

ENV_PREFIX = "WXAUTH_"


def _str(value: str) -> str:
    return value


def _nullable(value: str) -> str | None:
    return None if value.lower() == "none" else value


def _keys(value: str) -> str | list[str]:
    keys = [key.strip() for key in value.split(",") if key.strip()]
    return keys[0] if len(keys) == 1 else keys


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("a whole number") from None


def _nullable_int(value: str) -> int | None:
    return None if value.lower() == "none" else _int(value)


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("a number") from None


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "app_id": _str,
    "app_secret": _str,
    "secret_key": _keys,
    "scope": _str,
    "callback_path": _str,
    "public_url": _nullable,
    "authorize_url": _str,
    "api_base_url": _str,
    "session_cookie": _str,
    "max_age": _nullable_int,
    "cookie_domain": _nullable,
    "cookie_path": _str,
    "https_only": _bool,
    "login_max_age": _int,
    "lang": _str,
    "http_timeout": _float,
    "login_timeout": _float,
    "retries": _int,
    "max_connections": _int,
    "other_browsers": _str,
    "website_app_id": _nullable,
    "website_app_secret": _nullable,
    "qrconnect_url": _str,
    "login_path": _nullable,
    "logout_path": _nullable,
    "snapshot_users": _str,
    "identity": _str,
    "redis_url": _nullable,
    "redis_prefix": _str,
    "keep_tokens": _bool,
}


def options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options set by `WXAUTH_*` variables in `environ`, parsed."""
    options: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        option = name[len(ENV_PREFIX) :].lower()
        parser = _PARSERS.get(option)
        if parser is None:
            known = [ENV_PREFIX + key.upper() for key in _PARSERS]
            close = get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ConfigurationError(f"Unknown environment variable {name}.{hint}")
        try:
            options[option] = parser(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{name}={raw!r} is not valid: expected {exc}.") from None
    return options
