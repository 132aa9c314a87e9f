"""An Official Account's go-live settings, as WeChat enforces them on a live account.

Off by default, for a smooth start; each one turned on reproduces a "works locally, fails
live" error:

- the IP allow-list (IP白名单) for the token APIs: a caller elsewhere gets 40164, naming its
  address as WeChat saw it;
- the JS-SDK's safe domains (JS接口安全域名): ``wx.config`` on a page elsewhere fails with
  ``config:invalid url domain``;
- the API quotas: past N calls of one API in a day (Beijing time) 45009, past N in a minute
  45011.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .credentials import beijing_day

__all__ = ["GoLive", "QuotaCounter"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(entry: str) -> Network:
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"ip_allowlist entry {entry!r} is not an IP address or network: WeChat's IP白名单 "
            "takes addresses (203.0.113.7) and networks (203.0.113.0/24), no ports, no names"
        ) from None


def _js_domain(entry: str) -> str:
    host = entry.strip().lower()
    if "://" in host:
        raise ValueError(
            f"js_domains entry {entry!r} must be a domain without http:// or https://, "
            "as WeChat's JS接口安全域名 setting asks (e.g. 'www.example.com')"
        )
    host = host.rstrip(".")
    if not host or any(c in host for c in "/?#@ "):
        raise ValueError(f"js_domains entry {entry!r} must be a bare domain such as 'example.com'")
    if host.count(":") == 1:  # a port: WeChat ignores it here, as for the authorization domain
        host = host.split(":", 1)[0]
    return host


@dataclass(frozen=True)
class GoLive:
    """The go-live settings; None turns one off (the default)."""

    ip_allowlist: tuple[Network, ...] | None = None
    js_domains: tuple[str, ...] | None = None
    daily_quota: int | None = None
    minute_quota: int | None = None

    @classmethod
    def from_options(
        cls,
        ip_allowlist: Sequence[str] | None = None,
        js_domains: Sequence[str] | None = None,
        daily_quota: int | None = None,
        minute_quota: int | None = None,
    ) -> GoLive:
        """The settings from the emulator's options, checked: ValueError saying what is wrong."""
        for name, value in (("ip_allowlist", ip_allowlist), ("js_domains", js_domains)):
            if isinstance(value, str):
                raise ValueError(f"{name} must be a list of strings, not the string {value!r}")
        for name, quota in (("daily_quota", daily_quota), ("minute_quota", minute_quota)):
            if quota is not None and (
                not isinstance(quota, int) or isinstance(quota, bool) or quota < 1
            ):
                raise ValueError(f"{name} must be a whole number of calls >= 1, or None (off)")
        return cls(
            ip_allowlist=None
            if ip_allowlist is None
            else tuple(_network(entry) for entry in ip_allowlist),
            js_domains=None if js_domains is None else tuple(_js_domain(d) for d in js_domains),
            daily_quota=daily_quota,
            minute_quota=minute_quota,
        )

    @property
    def any_on(self) -> bool:
        return any(v is not None for v in vars(self).values())

    def allows_ip(self, address: str) -> bool:
        """Whether a token call from `address` passes the IP allow-list."""
        if self.ip_allowlist is None:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False  # a test transport's made-up client name: not an address WeChat sees
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.ip_allowlist)

    def page_domain_refused(self, url: str) -> str | None:
        """None when a page at `url` may use the JS-SDK; else its host, which is not a JS接口
        安全域名 (a listed domain also covers its subdomains; the port does not matter)."""
        if self.js_domains is None:
            return None
        host = (urlsplit(url).hostname or "").lower()
        if any(host == d or host.endswith("." + d) for d in self.js_domains):
            return None
        return host or url

    def describe(self) -> list[str]:
        """One line per setting that is on (ASCII: a terminal's encoding is unknown)."""
        lines = []
        if self.ip_allowlist is not None:
            listed = ", ".join(str(n) for n in self.ip_allowlist) or "(empty: nobody)"
            lines.append(f"IP allow-list for token calls (40164 elsewhere): {listed}")
        if self.js_domains is not None:
            listed = ", ".join(self.js_domains) or "(none)"
            lines.append(f"JS-SDK safe domains (config:invalid url domain elsewhere): {listed}")
        if self.daily_quota is not None:
            lines.append(f"daily quota: {self.daily_quota} calls of each API (then 45009)")
        if self.minute_quota is not None:
            lines.append(f"minute quota: {self.minute_quota} calls of each API (then 45011)")
        return lines


class QuotaCounter:
    """Calls per API in the current day (Beijing time) and minute, guarded by a lock."""

    def __init__(self, settings: GoLive) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._days: dict[str, tuple[int, int]] = {}  # api -> (day, calls)
        self._minutes: dict[str, tuple[int, int]] = {}  # api -> (minute, calls)

    def spend(self, api: str, now: float) -> int | None:
        """Count one call of `api`: None when it is within the quotas, else the errcode that
        refuses it (45009 for the day, 45011 for the minute; a refused call is not counted)."""
        daily, per_minute = self._settings.daily_quota, self._settings.minute_quota
        if daily is None and per_minute is None:
            return None
        day, minute = beijing_day(now), int(now // 60)
        with self._lock:
            day_calls = self._days.get(api, (day, 0))
            day_calls = day_calls if day_calls[0] == day else (day, 0)
            minute_calls = self._minutes.get(api, (minute, 0))
            minute_calls = minute_calls if minute_calls[0] == minute else (minute, 0)
            if daily is not None and day_calls[1] >= daily:
                return 45009
            if per_minute is not None and minute_calls[1] >= per_minute:
                return 45011
            self._days[api] = (day, day_calls[1] + 1)
            self._minutes[api] = (minute, minute_calls[1] + 1)
            return None

    def clear(self, api: str | None = None) -> None:
        """Forget the day's and the minute's calls (of `api`, or of every API), as WeChat's
        clear_quota does."""
        with self._lock:
            for table in (self._days, self._minutes):
                if api is None:
                    table.clear()
                else:
                    table.pop(api, None)
