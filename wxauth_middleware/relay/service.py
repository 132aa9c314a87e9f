"""The relay's own paths, as sans-I/O handlers added to the relay's `LoginCore`: the start
link a site sends a browser to, the hop that turns the relay's login into a ticket, and the
redemption a site makes server to server (`relay/links.py` says what they carry).

The relay's login itself is the middleware's (its own login-state cookie, its callback,
double callbacks sharing one exchange of the code, errors shown at a clean address): the
relay starts it from a start link it checked, and finishes it at `finish`, where the session
it made ends and a ticket for the site takes its place.

Every outcome is one log line starting "wxauth relay" with the site and what happened, never a
secret, code, ticket or openid.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..cookies import Clock, Session
from ..decisions import Decision, OwnPath, needs_profile, query_params
from ..effects import Flow
from ..errors import LoginDeclined, StoreUnavailable, WeChatAuthError
from ..messages import HTTPRequest, HTTPResponse
from ..pages import bilingual_page, error_json, error_response, json_response, redirect
from ..scopes import PROFILE_SCOPES, SCOPES
from .errors import RelayRateLimited, RelayRefused
from .links import (
    RELAY_PATHS,
    START_FIELDS,
    StartLink,
    binding_of,
    redemption_signature,
    start_signature,
    user_to_wire,
)
from .records import TICKET_LIFE, Finished, RelayRecords, Started
from .sites import RelaySite

if TYPE_CHECKING:
    from ..core import LoginCore

__all__ = ["RelayService", "declined_back"]

logger = logging.getLogger("wxauth_middleware")

# How old a redemption's time stamp may be (either way: the two servers' clocks differ).
REDEMPTION_WINDOW = 300
# How far in the future a start link's time stamp may be (the site's clock ahead).
_CLOCK_SKEW = 60
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RECORD_ID = re.compile(r"[0-9a-f]{32}")
_MAX_NONCES = 8


class RelayService:
    """Answers the relay's paths for the sites it serves, with its `core` logging visitors in."""

    def __init__(
        self, core: LoginCore, sites: Mapping[str, RelaySite], records: RelayRecords, clock: Clock
    ) -> None:
        self._core = core
        self._sites = sites
        self._records = records
        self._clock = clock
        self._login_life = core.config.login_max_age

    def own_paths(self) -> dict[str, OwnPath]:
        return {
            "/": self._home,
            RELAY_PATHS["start"]: self.start,
            RELAY_PATHS["finish"]: self.finish,
            RELAY_PATHS["redeem"]: self.redeem,
        }

    # -- the start link --------------------------------------------------------------------

    def start(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        """`start?site=&scope=&binding=&return=&ts=&sig=`: a site's visitor, sent to log in.
        Checked before anything else happens: a link the site did not sign for its own
        callback, or too old, reaches neither WeChat nor any site."""
        if request.method not in ("GET", "HEAD"):
            return self._refuse(request, "start", "", 405, "method", "a start link is a GET")
        params = query_params(request)
        site = self._sites.get(params.get("site", ""))
        if site is None:
            return self._refuse(request, "start", "", 404, "unknown_site", "no site of this id")
        values = [params.get(name) for name in START_FIELDS]
        sig = params.get("sig", "")
        link = _start_link(values)
        if link is None or not sig:
            return self._refuse(request, "start", site.site_id, 400, "incomplete", "incomplete")
        expected = (start_signature(secret, link) for secret in site.secrets)
        if not any(hmac.compare_digest(sig, signature) for signature in expected):
            return self._refuse(request, "start", site.site_id, 403, "bad_signature", "unsigned")
        age = self._now() - link.ts
        if age > self._login_life or age < -_CLOCK_SKEW:
            return self._refuse(request, "start", site.site_id, 403, "expired", "too old")
        if link.return_url != site.callback_url:
            # Signed, but not for the address registered: a site's own misconfiguration.
            why = f"return address is not the site's registered callback_url {site.callback_url}"
            return self._refuse(request, "start", site.site_id, 400, "other_callback", why)
        return self._started(request, session, site, link)

    def _started(
        self, request: HTTPRequest, session: Session | None, site: RelaySite, link: StartLink
    ) -> Flow[HTTPResponse]:
        try:
            if not (yield from self._within_rate(site, "start")):
                return self._rate_limited(request, site, "start")
            started = Started(site.site_id, link.binding, link.scope, self._now())
            rid = yield from self._records.keep_start(started)
        except StoreUnavailable as exc:
            return error_response(None, exc, request)
        logger.info("wxauth relay start site=%s scope=%s", site.site_id, link.scope)
        finish = f"{RELAY_PATHS['finish']}?{urlencode({'r': rid, 'scope': link.scope})}"
        return self._core.login.start(request, finish, link.scope, session)

    # -- the hop after the relay's login ----------------------------------------------------

    def finish(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        """`finish?r=<record>`: the relay's login is done; its session becomes a ticket for
        the site, and the browser goes back to the site's registered callback_url with it."""
        params = query_params(request)
        rid = params.get("r", "")
        scope = params.get("scope", "")
        if not _RECORD_ID.fullmatch(rid) or scope not in SCOPES:
            return self._refuse(request, "finish", "", 400, "incomplete", "not a login of ours")
        if session is None and params.get("declined") == "1":
            # The visitor refused the profile, without a session to keep (`declined_back`).
            return self._finished(request, None, rid)
        if session is None or needs_profile(session, scope):
            # The session cookie did not come back (or this is someone else's link): log in.
            if not self._core.login.in_app(request.header("user-agent")):
                return self._core.login.other_browser(request, "refuse")
            return self._core.login.start(request, request.target, scope, session)
        return self._finished(request, session, rid)

    def _finished(
        self, request: HTTPRequest, session: Session | None, rid: str
    ) -> Flow[HTTPResponse]:
        """The ticket of login `rid` (the same for a duplicate of this request), with the
        session's user; without a session, the visitor refused the profile."""
        user = session.user if session is not None else None
        identity = user.identity if user is not None else ""
        records = self._records
        try:
            started, first = yield from records.take_start(rid, identity)
            if not first:
                # A duplicate of the request that finished this login (WeChat's double
                # redirect): the same ticket, for the same visitor only.
                wait = self._core.config.login_timeout
                earlier = yield from records.earlier_finish(rid, identity, wait)
                site = self._sites.get(earlier[0]) if earlier is not None else None
                if earlier is None or site is None:
                    return self._refuse(request, "finish", "", 410, "expired", "finished")
                self._audit("login", site.site_id, "duplicate")
                ticket = earlier[1]
            else:
                site = self._sites.get(started.site) if started is not None else None
                if started is None or site is None:
                    return self._refuse(request, "finish", "", 410, "expired", "no such login")
                declined = session is None or session.profile_declined
                if (
                    user is not None
                    and started.scope in PROFILE_SCOPES
                    and user.scope not in PROFILE_SCOPES
                    and not declined
                ):
                    return self._refuse(request, "finish", site.site_id, 403, "scope", "scope")
                ticket = records.new_ticket()
                wire = user_to_wire(user) if user is not None else None
                finished = Finished(site.site_id, started.binding, wire, self._now(), declined)
                yield from records.keep_ticket(ticket, finished)
                yield from records.finished(rid, identity, site.site_id, ticket)
                self._audit("login", site.site_id, "ticket" if user else "declined")
        except StoreUnavailable as exc:
            return error_response(None, exc, request)
        # The browser keeps no session of the relay: its next login, for any site, asks
        # WeChat again. (A stored session is left to expire within minutes: a duplicate of
        # this request, sent with the same cookie, finds it and gets the same ticket.)
        clear = self._core.cookies.clear_session(request)
        return redirect(f"{site.callback_url}?{urlencode({'ticket': ticket})}", (clear,))

    # -- the redemption ----------------------------------------------------------------------

    def redeem(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        """`POST redeem` {site, ticket, nonces, ts, sig}: a site asks for the user of a ticket
        its callback received. The ticket is taken once, whatever the answer."""
        if request.method != "POST":
            return _json_error(405, "method_not_allowed", "POST the redemption as JSON")
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            body = None
        fields = _redemption(body)
        if fields is None:
            return _json_error(400, "invalid_request", "the body is not a redemption")
        site_id, ticket, nonces, ts, sig = fields
        site = self._sites.get(site_id)
        if site is None or not any(
            hmac.compare_digest(sig, redemption_signature(secret, site_id, ticket, nonces, ts))
            for secret in site.secrets
        ):
            self._audit("redeem", site_id if site else "", "bad_signature")
            return _json_error(403, "relay_refused", "unknown site, or a signature that fails")
        if abs(self._now() - ts) > REDEMPTION_WINDOW:
            self._audit("redeem", site_id, "stale")
            return _json_error(403, "relay_refused", "the redemption's ts is not now")
        return self._redeemed(site, ticket, nonces)

    def _redeemed(self, site: RelaySite, ticket: str, nonces: list[str]) -> Flow[HTTPResponse]:
        try:
            if not (yield from self._within_rate(site, "redeem")):
                self._audit("redeem", site.site_id, "rate_limited")
                return error_json(RelayRateLimited("too many redemptions this minute"))
            finished = yield from self._records.take_ticket(ticket)
        except StoreUnavailable as exc:
            return error_json(exc)
        if finished is None:
            return self._ticket_refused(site, 410, "unknown", "unknown, used or expired")
        if finished.site != site.site_id:
            # Another site's ticket: it is spent now, as a stolen one should be.
            return self._ticket_refused(site, 403, "foreign", "of another site")
        if self._now() - finished.issued > TICKET_LIFE:
            return self._ticket_refused(site, 410, "late", "expired")
        if not any(hmac.compare_digest(binding_of(n), finished.binding) for n in nonces):
            return self._ticket_refused(site, 403, "unbound", "of a login another browser started")
        self._audit("redeem", site.site_id, "ok")
        answer: dict[str, object] = {
            "binding": finished.binding,
            "user": finished.user,
            "profile_declined": finished.profile_declined,
        }
        return json_response(200, answer)

    def _ticket_refused(self, site: RelaySite, status: int, outcome: str, why: str) -> HTTPResponse:
        self._audit("redeem", site.site_id, outcome)
        return _json_error(status, "relay_ticket_refused", f"the ticket is {why}")

    # -- the rest ----------------------------------------------------------------------------

    def _home(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        return bilingual_page(
            request,
            200,
            ("微信登录中转", "WeChat login relay"),
            [
                (
                    "本服务只为已登记的网站办理微信登录。请回到你原来浏览的网站。",
                    "This service logs visitors in for the sites registered with it. "
                    "Go back to the site you came from.",
                )
            ],
        )

    def _within_rate(self, site: RelaySite, kind: str) -> Flow[bool]:
        count = yield from self._records.count(kind, site.site_id, self._now() // 60)
        return count <= site.max_logins_per_minute

    def _rate_limited(self, request: HTTPRequest, site: RelaySite, kind: str) -> HTTPResponse:
        self._audit(kind, site.site_id, "rate_limited")
        error = RelayRateLimited(f"site {site.site_id} is over max_logins_per_minute")
        return _with_retry(error_response(None, error, request), error)

    def _refuse(
        self, request: HTTPRequest, kind: str, site: str, status: int, outcome: str, why: str
    ) -> HTTPResponse:
        self._audit(kind, site, outcome)
        error = RelayRefused(f"relay {kind} refused: {why}", status=status)
        return error_response(None, error, request)

    def _audit(self, kind: str, site: str, outcome: str) -> None:
        logger.info("wxauth relay %s site=%s outcome=%s", kind, site or "-", outcome)

    def _now(self) -> int:
        return int(self._clock())


def declined_back(error: WeChatAuthError, request: HTTPRequest) -> HTTPResponse | None:
    """The relay's `on_error`: a visitor who refused the profile, with no session to keep the
    refusal in, goes back to the site with a ticket that says so (the site shows its own
    page, or keeps the refusal in its session); any other error, the default page."""
    finish = RELAY_PATHS["finish"] + "?"
    if isinstance(error, LoginDeclined) and (error.return_to or "").startswith(finish):
        return redirect(f"{error.return_to}&declined=1")
    return None


def _start_link(values: list[str | None]) -> StartLink | None:
    site, scope, binding, return_url, ts = values
    if site is None or scope not in SCOPES or binding is None or not _HEX64.fullmatch(binding):
        return None
    if return_url is None or ts is None or not ts.isdigit() or len(ts) > 12:
        return None
    return StartLink(site, scope, binding, return_url, int(ts))


def _redemption(body: object) -> tuple[str, str, list[str], int, str] | None:
    if not isinstance(body, dict):
        return None
    site, ticket, nonces = body.get("site"), body.get("ticket"), body.get("nonces")
    ts, sig = body.get("ts"), body.get("sig")
    if not (isinstance(site, str) and isinstance(ticket, str) and isinstance(sig, str)):
        return None
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    if not isinstance(nonces, list) or len(nonces) > _MAX_NONCES:
        return None
    if not all(isinstance(nonce, str) and len(nonce) <= 128 for nonce in nonces):
        return None
    return site, ticket, nonces, ts, sig


def _json_error(status: int, error: str, message: str) -> HTTPResponse:
    return json_response(status, {"error": error, "message": message})


def _with_retry(response: HTTPResponse, error: WeChatAuthError) -> HTTPResponse:
    headers = (*response.headers, ("retry-after", str(error.retry_after)))
    return HTTPResponse(response.status, headers, response.body)
