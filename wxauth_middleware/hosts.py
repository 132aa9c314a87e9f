"""The host names an account serves, checked once (an Official Account's, a WeCom app's)."""

from __future__ import annotations

import re

from .errors import ConfigurationError

__all__ = ["checked_host"]

# A host name as a browser sends it (lower case), or an IPv6 address in brackets.
_HOST_NAME = re.compile(
    r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
    r"|\[[0-9a-f:.]+\])$"
)


def checked_host(owner: str, host: object) -> str:
    """`host` as an account's `hosts` keep it (lower case, without a final dot; an IPv6
    address in brackets); ConfigurationError naming `owner` for anything else."""
    if not isinstance(host, str):
        raise ConfigurationError(f"{owner}: hosts must be host names (strings), not {host!r}.")
    name = host.strip().lower().rstrip(".")
    if "://" in name or "/" in name:
        raise ConfigurationError(
            f"{owner}: {host!r} is a URL; hosts are host names, such as "
            "'a.example.com' (public_url takes the origin)."
        )
    if name.startswith("[") or ":" not in name:
        if _HOST_NAME.match(name):
            return name
    elif _HOST_NAME.match(f"[{name}]"):
        return f"[{name}]"  # an IPv6 address, as a Host header carries it
    if ":" in name and _HOST_NAME.match(name.rpartition(":")[0]):
        raise ConfigurationError(
            f"{owner}: host {host!r} has a port; hosts are names without a "
            "port (an account serves its host on every port)."
        )
    raise ConfigurationError(f"{owner}: {host!r} is not a host name.")
