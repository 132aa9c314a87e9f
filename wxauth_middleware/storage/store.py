"""Server-side sessions in Redis, shared by every instance of a site (the `redis_url` option).

With a store, the session cookie holds only a signed, opaque session id; the session itself
lives in Redis, so it can be ended from the server (`revoke`), and the WeChat tokens of a login
can be kept there for the application (`keep_tokens`). A login state's exchange is remembered,
so a duplicate callback succeeds on any instance instead of spending the code twice (WeChat's
errcode 40163), and a state allows one call to WeChat on every instance.

What is stored, and how, is written once here as sans-I/O flows that yield `StoreCommands`;
the drivers run them with redis-py's synchronous or asyncio client. Keys, under `redis_prefix`:

- `session:{<tag>}<rest>`: a session's payload (JSON), expiring with `max_age`; the session id
  is `<tag><rest>`;
- `identity:{<tag>}<identity>`: a set of the identity's sessions (`s:<sid>`), kept tokens
  (`t:<openid>`) and code results (`c:<sha256>`), what `revoke` ends;
- `code:<sha256>`: a login state's exchange: claimed (empty), the user it gave, or "!" once
  WeChat refused its code, for five minutes or login_max_age if longer (a state allows one
  exchange);
- `token:{<tag>}<openid>`: the user's WeChat tokens (`keep_tokens`), for the refresh_token's
  30 days.

`<tag>` is four hex digits of the SHA-256 of the identity (of the openid, for tokens): a Redis
Cluster hash tag, so that an identity's sessions, index and tokens share one hash slot and
every transaction stays in one slot (a code's result, whose key is known before its user is,
is written in a transaction of its own). The id of a session carries its tag, so a session is
found from its cookie alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..cookies import (
    BROWSER_SESSION_LIFE,
    NO_APP,
    AppIds,
    Clock,
    Session,
    Signer,
    VerifiedCache,
    session_from_payload,
    session_payload,
    wall_clock,
)
from ..effects import Flow, Sleep, StoreCommands
from ..errors import UpstreamTimeout

if TYPE_CHECKING:
    from ..wechat.api import TokenGrant

__all__ = ["KeptTokens", "SessionStore"]

logger = logging.getLogger("wxauth_middleware")

SESSION_ID_SALT = "wxauth_middleware.session-id"
# How long WeChat's codes and refresh tokens live.
CODE_LIFE = 300
REFRESH_LIFE = 30 * 24 * 3600
# How many entries of an identity's index a login checks for ones that expired (each login
# adds at most two, so the index stays within about 8/7 of what is alive).
PRUNE_SAMPLE = 16
# The value of an exchange's key once WeChat refused its code.
_FAILED = "!"
# How often a duplicate callback looks for the result of the exchange it waits for.
CODE_POLL = 0.05
# A session id: the identity's hash tag, then 32 random characters.
_SID = re.compile(r"^[0-9a-f]{4}[A-Za-z0-9_-]{32}$")
_TAG_LENGTH = 4


@dataclass(frozen=True, slots=True)
class KeptTokens:
    """A user's WeChat tokens as kept in the store (`keep_tokens`)."""

    app_id: str
    openid: str
    access_token: str
    refresh_token: str
    expires_at: float
    scope: str

    def __repr__(self) -> str:
        # Tokens are credentials: keep them out of reprs, tracebacks and logs.
        return f"KeptTokens(openid={self.openid!r}, scope={self.scope!r}, ...)"


class SessionStore:
    """The key layout and payloads of the store, as flows."""

    def __init__(
        self,
        prefix: str,
        secret_keys: tuple[bytes, ...],
        max_age: int | None,
        identity_key: str,
        clock: Clock = wall_clock,
        app_ids: AppIds = NO_APP,
    ) -> None:
        self._prefix = prefix
        self._app_ids = app_ids
        self._ids = Signer(secret_keys, SESSION_ID_SALT, clock)
        self.session_life = max_age or BROWSER_SESSION_LIFE
        self._verified_ids: VerifiedCache[str] = VerifiedCache(
            self._ids, self.session_life, _session_id, clock
        )
        self._clock = clock
        self._identity_key = identity_key
        # An identity's index outlives each of its sessions and kept tokens.
        self._index_life = max(self.session_life, REFRESH_LIFE)

    # -- sessions --------------------------------------------------------------------------

    def session_id(self, cookie_value: str) -> str | None:
        """The session id a session cookie carries, if its signature verifies: a forged or
        garbage cookie never costs a round trip to Redis. (Whether the session still exists is
        the store's to say, on every request: a revocation takes effect at once.)"""
        return self._verified_ids.verify(cookie_value)

    def load(self, sid: str) -> Flow[Session | None]:
        (raw,) = yield StoreCommands((("GET", self._session_key(sid)),))
        if raw is None:
            return None  # expired, logged out or revoked
        session = session_from_payload(_json(raw), self._identity_key, self._app_ids)
        if session is None:
            logger.warning("wxauth: stored session %s… is not a session; ignored", sid[:6])
            return None
        return replace(session, sid=sid)

    def save(self, session: Session, old: Session | None) -> Flow[str]:
        """Store `session` under a new id (a login never keeps the id it had before), end
        `old`, and return the session cookie's value."""
        sid = _tag(session.user.identity) + secrets.token_urlsafe(24)
        index = self._index(session.user.identity)
        payload = _dumps(session_payload(session))
        commands: list[Command] = [
            ("SET", self._session_key(sid), payload, "EX", self.session_life),
            ("SADD", index, "s:" + sid),
            ("EXPIRE", index, self._index_life),
        ]
        if old is not None and old.sid is not None:
            commands += self._end(old)  # another identity's: in a transaction of its own
        yield from _per_slot(commands)
        yield from self._prune(index)
        return self._ids.sign(sid)

    def delete(self, session: Session) -> Flow[None]:
        if session.sid is not None:
            yield from _per_slot(self._end(session))

    def revoke(self, identity: str) -> Flow[int]:
        """End every session of `identity` and drop its kept tokens; returns how many
        sessions were ended. A login completing meanwhile keeps its new session."""
        index = self._index(identity)
        ended = 0
        (members,) = yield StoreCommands((("SMEMBERS", index),))
        if members:
            names = sorted(_text(m) for m in members)
            keys = [self._member_key(name) for name in names]
            # Code results (and tokens of another tag) live in other hash slots: gone first,
            # so no duplicate callback can log the user back in once the sessions are ended.
            elsewhere = [key for key in keys if _slot_tag(key) != _slot_tag(index)]
            if elsewhere:
                yield StoreCommands(tuple(("DEL", key) for key in elsewhere), atomic=False)
            here = [key for key in keys if key not in elsewhere]
            yield StoreCommands(((("DEL", *here),) if here else ()) + (("SREM", index, *names),))
            ended = sum(1 for name in names if name.startswith("s:"))
            logger.info("wxauth revoked identity=%s sessions=%d", identity, ended)
        return ended

    def _end(self, session: Session) -> list[Command]:
        assert session.sid is not None
        return [
            ("DEL", self._session_key(session.sid)),
            ("SREM", self._index(session.user.identity), "s:" + session.sid),
        ]

    def _prune(self, index: str) -> Flow[None]:
        # Index entries of sessions, tokens and code results that expired on their own: each
        # login checks a few at random and drops the dead ones, so the index stays close to
        # what the identity still has, and a login costs the same however many came before.
        (sample,) = yield StoreCommands((("SRANDMEMBER", index, PRUNE_SAMPLE),))
        names = sorted({_text(m) for m in sample or ()})
        if not names:
            return
        # Checks, not changes: in one pipeline, whatever hash slots the keys are in.
        exists = yield StoreCommands(
            tuple(("EXISTS", self._member_key(n)) for n in names), atomic=False
        )
        gone = [name for name, alive in zip(names, exists, strict=True) if not alive]
        if gone:
            yield StoreCommands((("SREM", index, *gone),))

    def _member_key(self, name: str) -> str:
        kind, _, value = name.partition(":")
        if kind == "t":
            return self._token_key(value)
        if kind == "c":
            return self._key("code", value)
        return self._session_key(value)

    # -- codes -----------------------------------------------------------------------------

    def code_key(self, app_id: str, state: str) -> str:
        """The key of a login state's exchange: claimed by the one request that exchanges its
        code, then its result. Only the browser holding that login's state cookie can be given
        the result, so a code leaked from a URL is worth no more than without the store."""
        digest = hashlib.sha256(f"{app_id}\0{state}".encode()).hexdigest()
        return self._key("code", digest)

    def claim_code(self, key: str, life: int = CODE_LIFE) -> Flow[bool]:
        """True if this request exchanges the state's code; False if another one did or does.
        The claim (then the result) lives `life` seconds."""
        (claimed,) = yield StoreCommands((("SET", key, "", "NX", "EX", life),))
        return bool(claimed)

    def code_done(self, key: str, session: Session) -> Flow[None]:
        index = self._index(session.user.identity)
        digest = key.rpartition(":")[2]
        # Revoking the user also forgets the result: no duplicate logs them back in. Indexed
        # first (the code's key is in another hash slot): a revocation in between deletes the
        # claim, and the result, finding no key, is not written.
        yield from _per_slot(
            [
                ("SADD", index, "c:" + digest),
                ("EXPIRE", index, self._index_life),
                ("SET", key, _dumps(session_payload(session)), "XX", "KEEPTTL"),
            ]
        )

    def code_failed(self, key: str, spent: bool = False) -> Flow[None]:
        """The exchange failed. The duplicates waiting on it stop waiting; unless WeChat
        refused the code (`spent`: the state stays used), one of them may try again."""
        if spent:
            yield StoreCommands((("SET", key, _FAILED, "XX", "KEEPTTL"),))
        else:
            yield StoreCommands((("DEL", key),))

    def code_result(self, key: str, deadline: float) -> Flow[Session | None]:
        """The session the exchange of a claimed code gave, waiting for it to finish; None
        if that exchange failed."""
        while True:
            (raw,) = yield StoreCommands((("GET", key),))
            if raw is None or raw in (_FAILED, _FAILED.encode()):
                return None
            if raw:
                return session_from_payload(_json(raw), self._identity_key, self._app_ids)
            if time.monotonic() + CODE_POLL >= deadline:
                raise UpstreamTimeout("the login's deadline passed waiting for the same code")
            yield Sleep(CODE_POLL)

    # -- kept tokens -----------------------------------------------------------------------

    def keep(self, identity: str, app_id: str, grant: TokenGrant) -> Flow[None]:
        tokens = KeptTokens(
            app_id=app_id,
            openid=grant.openid,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_at=self._clock() + grant.expires_in,
            scope=grant.scope,
        )
        index = self._index(identity)
        # One transaction when the identity is the openid; with identity='unionid', the
        # tokens' key may be in another hash slot than the index: one transaction each.
        yield from _per_slot(
            [
                ("SADD", index, "t:" + grant.openid),
                ("EXPIRE", index, self._index_life),
                ("SET", self._token_key(grant.openid), _dumps_tokens(tokens), "EX", REFRESH_LIFE),
            ]
        )

    def kept(self, openid: str) -> Flow[KeptTokens | None]:
        (raw,) = yield StoreCommands((("GET", self._token_key(openid)),))
        return None if raw is None else _tokens(_json(raw))

    def renewed(self, tokens: KeptTokens) -> Flow[None]:
        # The refresh_token's own 30 days do not restart on a refresh: keep the key's TTL.
        yield StoreCommands(
            (("SET", self._token_key(tokens.openid), _dumps_tokens(tokens), "XX", "KEEPTTL"),)
        )

    def forget(self, openid: str) -> Flow[None]:
        yield StoreCommands((("DEL", self._token_key(openid)),))

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    def _session_key(self, sid: str) -> str:
        return self._key("session", f"{{{sid[:_TAG_LENGTH]}}}{sid[_TAG_LENGTH:]}")

    def _index(self, identity: str) -> str:
        return self._key("identity", f"{{{_tag(identity)}}}{identity}")

    def _token_key(self, openid: str) -> str:
        return self._key("token", f"{{{_tag(openid)}}}{openid}")


Command = tuple[str | int | float, ...]


def _tag(name: str) -> str:
    """The hash tag of the keys of an identity (or openid)."""
    return hashlib.sha256(name.encode()).hexdigest()[:_TAG_LENGTH]


def _slot_tag(key: str) -> str:
    """What Redis Cluster hashes of `key`: its hash tag if it has one, else all of it."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start != -1 and end > start + 1 else key


def _per_slot(commands: list[Command]) -> Flow[list[Any]]:
    """Run `commands` (each with its key first) in one transaction per hash slot they touch,
    in the order their slots first appear; their replies, in the commands' order."""
    groups: dict[str, list[int]] = {}
    for i, command in enumerate(commands):
        groups.setdefault(_slot_tag(str(command[1])), []).append(i)
    replies: list[Any] = [None] * len(commands)
    for indexes in groups.values():
        answers = yield StoreCommands(tuple(commands[i] for i in indexes))
        for i, answer in zip(indexes, answers, strict=True):
            replies[i] = answer
    return replies


def _session_id(payload: Any) -> str | None:
    return payload if isinstance(payload, str) and _SID.match(payload) else None


def _dumps(payload: Any) -> str:
    return _JSON_OUT.encode(payload)


# Compact JSON, made once (json.dumps given options makes an encoder per call).
_JSON_OUT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps_tokens(tokens: KeptTokens) -> str:
    return _dumps(
        [
            tokens.app_id,
            tokens.openid,
            tokens.access_token,
            tokens.refresh_token,
            tokens.expires_at,
            tokens.scope,
        ]
    )


def _tokens(payload: Any) -> KeptTokens | None:
    if not isinstance(payload, list) or len(payload) != 6:
        return None
    app_id, openid, access_token, refresh_token, expires_at, scope = payload
    if not all(isinstance(v, str) for v in (app_id, openid, access_token, refresh_token, scope)):
        return None
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        return None
    return KeptTokens(app_id, openid, access_token, refresh_token, float(expires_at), scope)


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
