"""A site's side of the relay (the `relay_url` options): the signed link its WeChat visitors
start their login with, and the redemption of the ticket they come back with."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..effects import Flow, UpstreamRequest, UpstreamResponse
from ..errors import UpstreamError, UpstreamResponseError, UpstreamTimeout
from ..user import User
from .errors import RelayConfigurationRefused, RelayRateLimited, RelayTicketRefused
from .links import (
    RELAY_PATHS,
    StartLink,
    binding_of,
    redemption,
    start_url,
    user_from_wire,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..wechat.api import CallPolicy

__all__ = ["Redeemed", "RelayClient", "relay_client"]

# A ticket as the relay makes them (secrets.token_urlsafe(32)), with room to spare.
_TICKET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_TICKET = 128


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What a ticket gave: the user (None when the visitor refused the profile and had no
    session at the relay), the nonce of the login it finishes, and whether the visitor
    declined to share the profile."""

    user: User | None
    nonce: str
    profile_declined: bool


def relay_client(config: Config) -> RelayClient | None:
    """A site's relay client, if its options give one (relay_url, checked by Config)."""
    if config.relay_url is None or config.relay_site_id is None or config.relay_secret is None:
        return None
    secret = config.relay_secret.encode("utf-8")
    return RelayClient(config.relay_url, config.relay_site_id, secret, config.identity)


class RelayClient:
    """Starts and finishes a site's logins through its relay."""

    def __init__(self, relay_url: str, site_id: str, secret: bytes, identity_key: str) -> None:
        self.relay_url = relay_url
        self._site = site_id
        self._secret = secret
        self._identity_key = identity_key

    def start_url(self, callback_url: str, scope: str, nonce: str, now: int) -> str:
        """The relay's start link for a login of `scope` whose nonce is `nonce` (kept in the
        browser's login-state cookie, never in a URL), coming back to `callback_url`."""
        link = StartLink(self._site, scope, binding_of(nonce), callback_url, now)
        return start_url(self.relay_url, self._secret, link)

    def redeem(
        self, ticket: str, nonces: tuple[str, ...], now: int, policy: CallPolicy
    ) -> Flow[Redeemed]:
        """The user of `ticket`, from the relay, server to server. `nonces` are those of the
        browser's logins in progress: the relay answers only if one of them started the
        login. RelayTicketRefused when it gives no user; an UpstreamError naming the relay
        when it cannot be asked."""
        if not ticket or len(ticket) > MAX_TICKET or not _TICKET_CHARS.issuperset(ticket):
            raise RelayTicketRefused("the callback's ticket is not one the relay makes")
        endpoint = RELAY_PATHS["redeem"]
        remaining = policy.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("the login's deadline passed before the relay's redemption")
        request = UpstreamRequest(
            url=self.relay_url + endpoint,
            endpoint="relay " + endpoint,
            timeout=min(policy.timeout, remaining),
            method="POST",
            json=redemption(self._secret, self._site, ticket, nonces, now),
        )
        try:
            response = yield request
        except UpstreamError as exc:
            # The driver's message names WeChat: this call is the relay's.
            raise _about_relay(exc, self.relay_url) from None
        body = self._answer(response)
        nonce = next((n for n in nonces if binding_of(n) == body.get("binding")), None)
        wire = body.get("user")
        user = user_from_wire(wire, self._identity_key)
        declined = body.get("profile_declined")
        valid_user = user is not None or (wire is None and declined is True)
        if nonce is None or not valid_user or not isinstance(declined, bool):
            raise UpstreamResponseError(
                f"the relay {self.relay_url} answered a redemption without a valid user"
            )
        return Redeemed(user, nonce, declined)

    def _answer(self, response: UpstreamResponse) -> dict[str, object]:
        try:
            body = json.loads(response.body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            raise UpstreamResponseError(
                f"the relay {self.relay_url} answered HTTP {response.status} without JSON: "
                "is relay_url the relay's address?"
            )
        if response.status == 200:
            return body
        message = body.get("message") if isinstance(body.get("message"), str) else ""
        error = body.get("error")
        if response.status == 429:
            raise RelayRateLimited(f"the relay refused the redemption: {message}")
        if response.status in (403, 404, 410) and error == "relay_ticket_refused":
            raise RelayTicketRefused(f"the relay refused the ticket: {message}")
        if response.status in (403, 404):
            # Not the ticket: the site itself (its id, its secret, its clock).
            raise RelayConfigurationRefused(str(message), str(error))
        raise UpstreamResponseError(
            f"the relay {self.relay_url} answered HTTP {response.status} ({error}): {message}"
        )


def _about_relay(error: UpstreamError, relay_url: str) -> UpstreamError:
    """A copy of `error` that names the relay, not WeChat."""
    message = error.message.replace("WeChat relay ", f"the relay {relay_url} at ", 1)
    clone = type(error).__new__(type(error))
    clone.__dict__.update(error.__dict__)
    clone.message = message
    clone.args = (message,)
    return clone
