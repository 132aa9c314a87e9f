"""The emulator's WeCom (企业微信) corp: its apps (agent id and secret), its trusted domain and
IPs, its people (members and a non-member), and what its APIs hand out (app tokens, login
codes, user tickets, the corp's and the apps' JS-SDK tickets), each expiring as WeCom's do."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .grants import GrantError

__all__ = [
    "DEFAULT_AGENT_ID",
    "DEFAULT_CORP_ID",
    "DEFAULT_CORP_SECRET",
    "DEFAULT_WECOM_PERSONAS",
    "WeComCorp",
    "WeComPersona",
]

DEFAULT_CORP_ID = "ww5d8e2a0c7b1f4936"
DEFAULT_AGENT_ID = 1000002
# A published, made-up secret for the emulator only: it unlocks nothing real.
DEFAULT_CORP_SECRET = "Wc7kq2N9xA4bT1mZ8rY5vL3pD6sF0hJgK2eQ9wUoI7c"  # noqa: S105

TOKEN_LIFE = 7200
CODE_LIFE = 300
USER_TICKET_LIFE = 1800
# What an untrusted redirect domain's code gets from getuserinfo.
UNTRUSTED_DOMAIN = 50001


@dataclass(frozen=True)
class WeComPersona:
    """Someone WeCom can log in: a member (a `userid`, with the details getuserdetail gives)
    or, without a userid, a non-member (an `openid` and an `external_userid`). A member
    outside the app's visible range (`visible` false) gets no user_ticket, so no details."""

    key: str
    name: str
    userid: str | None = None
    gender: str = "0"
    mobile: str = ""
    email: str = ""
    biz_mail: str = ""
    address: str = ""
    visible: bool = True

    @property
    def openid(self) -> str:
        return "oWc" + _stable_id(self.key, 25)

    @property
    def external_userid(self) -> str:
        return "wm" + _stable_id("ext:" + self.key, 30)

    @property
    def avatar(self) -> str:
        return f"https://wework.qpic.cn/wwpic/emulator/{self.key}/0"

    @property
    def qr_code(self) -> str:
        return f"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=emulator{self.key}"


def _stable_id(seed: str, length: int) -> str:
    # Made of the seed, not random: the same across restarts.
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


DEFAULT_WECOM_PERSONAS = (
    WeComPersona(
        "zhangwei",
        "张伟 · Zhang Wei (成员 member)",
        userid="ZhangWei",
        gender="1",
        mobile="13800000001",
        email="zhangwei@example.com",
        biz_mail="zhangwei@corp.example.com",
        address="北京市海淀区 1 号",
    ),
    WeComPersona(
        "lina",
        "李娜 · Li Na (成员 member)",
        userid="LiNa",
        gender="2",
        mobile="13800000002",
        email="lina@example.com",
    ),
    WeComPersona(
        "wangfang",
        "王芳 · Wang Fang (成员，不在应用可见范围 · a member outside the app's visible range)",
        userid="WangFang",
        gender="2",
        mobile="13800000003",
        visible=False,
    ),
    WeComPersona("guest", "访客 · A guest (非成员 non-member)"),
)


@dataclass
class _Code:
    agent_id: int
    persona: str
    scope: str
    trusted: bool
    expires_at: float


class WeComCorp:
    """One corp: `agents` maps each app's agent id to its secret. `trusted_domains` None
    trusts 127.0.0.1 and localhost on any port; a list is matched exactly, port included.
    `trusted_ips` None answers any caller; a list of addresses or networks refuses others
    (60020)."""

    def __init__(
        self,
        corp_id: str,
        agents: dict[int, str],
        clock: Callable[[], float],
        *,
        personas: Sequence[WeComPersona] = DEFAULT_WECOM_PERSONAS,
        trusted_domains: Sequence[str] | None = None,
        trusted_ips: Sequence[str] | None = None,
    ) -> None:
        if not corp_id or not agents:
            raise ValueError("a WeCom corp needs a corp id and at least one app (agent id)")
        if any(not isinstance(a, int) or a <= 0 or not s for a, s in agents.items()):
            raise ValueError("each WeCom app needs a positive agent id and a secret")
        self.corp_id = corp_id
        self.agents = dict(agents)
        self.personas = {p.key: p for p in personas}
        if len(self.personas) != len(personas) or not personas:
            raise ValueError("WeCom persona keys must be unique, and there must be one")
        self.trusted_domains = (
            None if trusted_domains is None else tuple(d.strip().lower() for d in trusted_domains)
        )
        self.trusted_ips = (
            None
            if trusted_ips is None
            else tuple(ipaddress.ip_network(ip, strict=False) for ip in trusted_ips)
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[int, float]] = {}
        self._token_of: dict[int, str] = {}
        self._codes: dict[str, _Code] = {}
        self._user_tickets: dict[str, tuple[int, str, float]] = {}
        self._tickets: dict[str, tuple[str, float]] = {}

    # -- checks ---------------------------------------------------------------------------

    def trusts(self, redirect_uri: str) -> bool:
        """Whether `redirect_uri`'s host (and port) is the app's trusted domain."""
        parts = urlsplit(redirect_uri)
        if self.trusted_domains is None:
            return (parts.hostname or "") in ("127.0.0.1", "localhost")
        return parts.netloc.lower() in self.trusted_domains

    def allows_ip(self, address: str) -> bool:
        if self.trusted_ips is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_ips)

    # -- tokens ---------------------------------------------------------------------------

    def token(self, corp_id: str, secret: str) -> tuple[str, int]:
        """The app's token for a corp id and an app's secret: the same one while it lives."""
        if corp_id != self.corp_id:
            raise GrantError(40013)
        given = secret.encode("utf-8")
        agent = next(
            (a for a, s in self.agents.items() if secrets.compare_digest(s.encode(), given)), None
        )
        if agent is None:
            raise GrantError(40091)
        now = self._clock()
        with self._lock:
            current = self._token_of.get(agent)
            if current is not None and self._tokens[current][1] > now:
                return current, int(self._tokens[current][1] - now)
            token = secrets.token_urlsafe(48)
            self._tokens[token] = (agent, now + TOKEN_LIFE)
            self._token_of[agent] = token
            return token, TOKEN_LIFE

    def agent_of(self, token: str) -> int:
        """The app a token is of: 41001 without one, 40014 unknown, 42001 expired."""
        if not token:
            raise GrantError(41001)
        with self._lock:
            known = self._tokens.get(token)
        if known is None:
            raise GrantError(40014)
        if known[1] <= self._clock():
            raise GrantError(42001)
        return known[0]

    def invalidate_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._token_of.clear()

    # -- logins ---------------------------------------------------------------------------

    def issue_code(self, agent_id: int, persona: str, scope: str, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(
                agent_id, persona, scope, self.trusts(redirect_uri), self._clock() + CODE_LIFE
            )
        return code

    def spend_code(self, agent_id: int, code: str) -> tuple[WeComPersona, str]:
        """The persona and scope of a code of app `agent_id`: single use, 5 minutes."""
        if not code:
            raise GrantError(41008)
        with self._lock:
            found = self._codes.pop(code, None)
        if found is None or found.expires_at <= self._clock() or found.agent_id != agent_id:
            raise GrantError(40029)
        if not found.trusted:
            raise GrantError(UNTRUSTED_DOMAIN)
        return self.personas[found.persona], found.scope

    def issue_user_ticket(self, agent_id: int, persona: str) -> str:
        ticket = secrets.token_urlsafe(32)
        with self._lock:
            self._user_tickets[ticket] = (agent_id, persona, self._clock() + USER_TICKET_LIFE)
        return ticket

    def user_of_ticket(self, agent_id: int, ticket: str) -> WeComPersona:
        with self._lock:
            found = self._user_tickets.get(ticket)
        if found is None or found[0] != agent_id or found[2] <= self._clock():
            raise GrantError(40129)
        return self.personas[found[1]]

    # -- JS-SDK tickets -------------------------------------------------------------------

    def ticket(self, key: str) -> tuple[str, int]:
        """The ticket of `key` ("corp", or "agent:<id>"): the same one while it lives."""
        now = self._clock()
        with self._lock:
            current = self._tickets.get(key)
            if current is not None and current[1] > now:
                return current[0], int(current[1] - now)
            ticket = secrets.token_urlsafe(32)
            self._tickets[key] = (ticket, now + TOKEN_LIFE)
            return ticket, TOKEN_LIFE

    def current_tickets(self, prefix: str) -> list[str]:
        """The live tickets whose key starts with `prefix` ("corp", "agent:")."""
        now = self._clock()
        with self._lock:
            return [
                t for k, (t, until) in self._tickets.items() if k.startswith(prefix) and until > now
            ]

    def current_ticket(self, key: str) -> str | None:
        with self._lock:
            current = self._tickets.get(key)
        return current[0] if current is not None and current[1] > self._clock() else None
