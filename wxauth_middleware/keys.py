"""The `secret_key` option, checked: the keys that sign every cookie, newest last."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from .errors import ConfigurationError

__all__ = ["secret_keys"]


def secret_keys(value: object) -> tuple[bytes, ...]:
    """The `secret_key` option as keys, newest last; ConfigurationError saying what to fix."""
    if isinstance(value, (str, bytes)):
        keys: list[object] = [value]
    elif isinstance(value, Sequence):
        keys = list(value)
    else:
        raise ConfigurationError(
            "secret_key must be a string, bytes, or a list of them (newest last), "
            f"not {type(value).__name__}."
        )
    if not keys:
        raise ConfigurationError(
            "secret_key is required: a long random string (or a list, newest last, to rotate)."
        )
    out: list[bytes] = []
    for key in keys:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes) or not key:
            raise ConfigurationError("each secret_key must be a non-empty str or bytes.")
        if len(key) < 16:
            warnings.warn(
                "secret_key is shorter than 16 characters: cookies signed with it can be "
                "forged by brute force. Make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe())'`.",
                UserWarning,
                stacklevel=4,
            )
        out.append(key)
    return tuple(out)
