"""What the middleware says in the log about options that work but are likely mistakes (a
port WeChat will not call back, a Host a proxy rewrote). Only ever warnings: the site
starts whatever they say. Whether the emulator and Redis answer: reachability.py."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .config import WECHAT_AUTHORIZE_HOST, Config

__all__ = ["config_warnings", "is_loopback", "is_upstream_host"]

_WECHAT_API_HOST = "api.weixin.qq.com"


def config_warnings(config: Config) -> list[str]:
    """What to say about options that are allowed but are likely to be a mistake."""
    said: list[str] = []
    wechat = urlsplit(config.authorize_url).hostname == WECHAT_AUTHORIZE_HOST
    if not wechat or urlsplit(config.api_base_url).hostname != _WECHAT_API_HOST:
        # Legitimate with the emulator or a relay, a mistake in production: say it once.
        said.append(
            f"wxauth: not talking to WeChat itself: authorize_url={config.authorize_url} "
            f"api_base_url={config.api_base_url}"
        )
    port = urlsplit(config.public_url).port if config.public_url else None
    if wechat and port not in (None, 80, 443):
        said.append(
            f"wxauth: public_url {config.public_url} has port {port}: WeChat's "
            "网页授权域名 (a Service Account's) is a domain name without a port, and WeChat "
            "sends visitors back to ports 80 and 443 only. A 测试号 (sandbox account) accepts "
            f"'host:{port}' as its callback domain: register exactly that there, or, for a "
            "Service Account, serve the site on 443 (a proxy in front may listen there)."
        )
    return said


def is_upstream_host(host: str) -> bool:
    """Whether a Host header looks like a proxy's upstream address (an IP address,
    localhost, a name without a dot) rather than a name a visitor typed or followed."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if "." not in name or name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
