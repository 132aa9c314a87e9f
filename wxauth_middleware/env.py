"""Middleware options from the environment: `WXAUTH_<OPTION>` variables.

Every option that is a plain value can come from the environment (hooks, rules, transports
and the verify-file mapping are code, so keyword arguments only). Values are parsed by the
type of the option's field in `Config`; `none` means None where None is allowed;
`WXAUTH_SECRET_KEY` takes a comma-separated list of keys, oldest first, to rotate them. An
unknown `WXAUTH_*` variable is an error: a typo must not silently leave an option at its
default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from difflib import get_close_matches
from typing import Any

from .config import Config
from .errors import ConfigurationError

__all__ = ["CODE_OPTIONS", "ENV_PREFIX", "options_from_env"]

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


# The parser of each type of option a variable can set, by the type's name in Config.
_BY_TYPE: dict[str, Callable[[str], Any]] = {
    "str": _str,
    "str | None": _nullable,
    "int": _int,
    "int | None": _nullable_int,
    "float": _float,
    "bool": _bool,
    "str | bytes | Sequence[str | bytes]": _keys,
    # The choices: Config says what is allowed.
    "Scope": _str,
    "Lang": _str,
    "OtherBrowsers": _str,
    "SnapshotUsers": _str,
    "Identity": _str,
    "RelayBrowsers": _str,
}
# Options that are code (hooks, a transport, rules, a mapping): keyword arguments only.
CODE_OPTIONS = frozenset({"accounts", "on_error", "transport", "rules", "on_login", "verify_files"})


def _parsers() -> dict[str, Callable[[str], Any]]:
    parsers = {}
    for option in fields(Config):
        if not option.init or option.name in CODE_OPTIONS:
            continue
        if option.type not in _BY_TYPE:  # a new option of a new type: say how to read it
            raise TypeError(f"no parser for option {option.name} of type {option.type}")
        parsers[option.name] = _BY_TYPE[str(option.type)]
    return parsers


_PARSERS = _parsers()


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
