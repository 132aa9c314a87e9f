"""Desktop login by scanning with WeChat, with the Official Account alone
(`other_browsers="scan"`).

WeChat's own website QR login needs an Open Platform website app; this needs only the Official
Account. The steps, each one a request that any instance may serve:

1. A desktop browser without a session visits a page: it gets a page with a QR code of a
   one-time *phone URL* (`{scan_path}/phone?t=<ticket>`) and a cookie binding the ticket to
   this browser (`<session_cookie>_scan_<ticket>`, HttpOnly, on `scan_path` only).
2. WeChat on a phone opens the phone URL: the phone logs in the usual way if it has no session;
   the ticket becomes "scanned" and the phone shows a confirmation page (what is known of the
   computer, Confirm / Cancel).
3. Only a same-origin POST of `decision=confirm`, with a token bound to the phone's user and
   the ticket, confirms. A scan alone never logs a desktop in: that defeats "QRLjacking".
4. The desktop page polls `{scan_path}/status?t=<ticket>`; once confirmed it goes to
   `{scan_path}/done?t=<ticket>`, which, for the browser holding the binding cookie only,
   spends the ticket and starts a new session of the phone's user, and sends it back to the
   page it started from.

A ticket is random, single-use and lives `scan_max_age` seconds. Tickets live in Redis with
`redis_url` (a hash per ticket, so every step is atomic on one key), else in this process
(single-process deployments). Writes that decide something (scanned, the phone's decision,
spent) are "set if not set": the first one wins on any instance.

All of it is sans-I/O: flows yield `StoreCommands` for Redis (the in-process store answers
without yielding), the drivers run them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

from ..config import Config
from ..cookie_writer import CookieWriter
from ..cookies import Clock, Session, session_from_payload, session_payload
from ..decisions import Decision, OwnPath, is_navigation, needs_profile, query_params
from ..effects import Flow, HookCall
from ..errors import InvalidRequest, LoginVetoed, ScanLoginError, StoreUnavailable, WeChatAuthError
from ..login.callback import Callback
from ..login.start import LoginStarter
from ..messages import HTTPRequest, HTTPResponse
from ..pages import drawn_qr_code, error_response, json_response, redirect
from ..urls import safe_return_path
from ..user import WeChatUser
from ..useragent import describe_user_agent, is_wechat_browser
from .pages import confirm_page, decided_page, desktop_page
from .tickets import (
    MemoryTickets,
    RedisTickets,
    Ticket,
    TicketStore,
    read_ticket,
    ticket_record,
)

__all__ = ["ScanLogin"]

logger = logging.getLogger("wxauth_middleware")

# Ticket ids and binding secrets: URL- and cookie-name-safe random strings.
_TICKET = re.compile(r"^[A-Za-z0-9_-]{22}$")
_CSRF_SALT = b"wxauth_middleware.scan-confirm\0"


class ScanLogin:
    """The scan login's pages and endpoints, under `scan_path`.

    It reuses the rest of the middleware's parts: the login starter (the phone's own login,
    the site's origin), the cookie writer (the binding cookie) and the callback's way of
    starting a session (cookie or store), so a scan login's session is any login's.
    """

    def __init__(
        self,
        config: Config,
        cookies: CookieWriter,
        login: LoginStarter,
        callback: Callback,
        clock: Clock,
        store_prefix: str,
    ) -> None:
        self.config = config
        self._cookies = cookies
        self._login = login
        self._callback = callback
        self._clock = clock
        self.start_path = config.scan_path
        self.status_path = config.scan_path + "/status"
        self.done_path = config.scan_path + "/done"
        self.phone_path = config.scan_path + "/phone"
        self._life = config.scan_ticket_life
        self.tickets: TicketStore = (
            RedisTickets(store_prefix) if config.redis_url is not None else MemoryTickets(clock)
        )

    def own_paths(self) -> dict[str, OwnPath]:
        """The paths the scan login answers itself."""
        return {
            self.start_path: self.start,
            self.status_path: self.status,
            self.done_path: self.done,
            self.phone_path: self.phone,
        }

    # -- the desktop -------------------------------------------------------------------------

    def login_required(self, request: HTTPRequest, return_to: str | None = None) -> Decision:
        """A desktop browser without a session wants `return_to` (the request's own page by
        default): the QR-code page for a page visit, a 401 saying where that page is for
        anything else (an API call, an image)."""
        if is_navigation(request):
            return self._desktop(request, request.target if return_to is None else return_to)
        page = self._login.referer_path(request) if return_to is None else return_to
        origin = self._login.origin(request) or ""
        return json_response(
            401,
            {
                "error": "login_required",
                "message": "Log in by scanning a QR code with WeChat: open scan_url in this "
                "browser (a page that shows the code and comes back when the phone confirms).",
                "scan_url": f"{origin}{self.start_path}?next={quote(page, safe='/')}",
            },
        )

    def start(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Decision:
        """`scan_path?next=/page`: the QR-code page on purpose (a "log in" link or button)."""
        next_page = safe_return_path(query_params(request).get("next")) or "/"
        if session is not None:
            return redirect(next_page)
        return self.login_required(request, next_page)

    def _desktop(self, request: HTTPRequest, return_to: str) -> Flow[HTTPResponse]:
        origin = self._login.origin(request)
        if origin is None:
            invalid = InvalidRequest(
                "the Host header is not a valid host name",
                hint="Set the public_url option to the site's public origin.",
            )
            return self._error(invalid, request)
        ticket = secrets.token_urlsafe(16)
        binding = secrets.token_urlsafe(32)
        return_to = safe_return_path(return_to) or "/"
        record = ticket_record(
            _digest(binding),
            return_to,
            self._clock() + self.config.scan_max_age,
            describe_user_agent(request.header("user-agent")),
            self.config.policy(return_to.partition("?")[0]).scope,
        )
        try:
            created = yield from self.tickets.create(ticket, record, self._life)
        except StoreUnavailable as exc:
            return self._error(exc, request, return_to)
        if not created:
            busy = StoreUnavailable("too many scan logins are waiting in this process")
            return self._error(busy, request, return_to)
        phone_url = f"{origin}{self.phone_path}?t={ticket}"
        page = desktop_page(
            phone_url=phone_url,
            qr=(yield from drawn_qr_code(phone_url)),
            status_url=f"{self.status_path}?t={ticket}",
            renew_url=f"{self.start_path}?next={quote(return_to, safe='/')}",
            max_age=self.config.scan_max_age,
        )
        cookie = self._cookies.binding(request, ticket, binding)
        return HTTPResponse(page.status, (*page.headers, cookie), page.body)

    def status(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Flow[HTTPResponse]:
        """`status?t=<ticket>`: JSON for the desktop's page, only for the browser that asked."""
        try:
            ticket_id, ticket = yield from self._desktop_ticket(request, cookies)
        except (ScanLoginError, StoreUnavailable) as exc:
            return json_response(exc.status, {"error": exc.code, "message": exc.title})
        status = ticket.status(self._clock()) if ticket is not None else "expired"
        payload: dict[str, object] = {"status": status}
        if status == "confirmed":
            payload["next"] = f"{self.done_path}?t={ticket_id}"
        return json_response(200, payload)

    def done(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Flow[HTTPResponse]:
        """`done?t=<ticket>`: the confirmed ticket spent, and a new session for this browser."""
        ticket = None
        try:
            ticket_id, ticket = yield from self._desktop_ticket(request, cookies)
            status = ticket.status(self._clock()) if ticket is not None else "expired"
            if ticket is None or status != "confirmed" or ticket.decision is None:
                raise ScanLoginError(_FAILURE[status], f"scan ticket is {status}")
            new = session_from_payload(
                _json(ticket.decision), self.config.identity, self.config.app_ids
            )
            if new is None or new.user.is_snapshot_user:
                raise ScanLoginError("scan_expired", "scan ticket holds no usable user")
            if not (yield from self.tickets.set_once(ticket_id, "u", "1", self._life)):
                raise ScanLoginError("scan_used", "scan ticket already spent")
            if self.config.on_login is not None:
                verdict = yield HookCall(self.config.on_login, (new.user, request))
                if verdict is False:
                    raise LoginVetoed(f"on_login refused openid {new.user.openid}")
        except WeChatAuthError as exc:
            return self._error(exc, request, ticket.return_to if ticket else None)
        logger.info("wxauth login ok openid=%s by scan", new.user.openid)
        drop = self._cookies.clear_binding(request, ticket_id)
        return (
            yield from self._callback.with_session(request, ticket.return_to, new, session, (drop,))
        )

    def _desktop_ticket(
        self, request: HTTPRequest, cookies: Mapping[str, str]
    ) -> Flow[tuple[str, Ticket | None]]:
        """The ticket a desktop asks about, checked against its binding cookie: the ticket id
        alone (it is in the QR code, for anyone to see) is never enough."""
        ticket_id = query_params(request).get("t", "")
        binding = (
            cookies.get(self._cookies.binding_name(ticket_id)) if _TICKET.match(ticket_id) else ""
        )
        if not binding:
            raise ScanLoginError("scan_not_this_browser", "no binding cookie for the ticket")
        ticket = read_ticket((yield from self.tickets.fields(ticket_id)))
        if ticket is not None and not hmac.compare_digest(ticket.binding, _digest(binding)):
            raise ScanLoginError("scan_not_this_browser", "the binding cookie does not match")
        return ticket_id, ticket

    # -- the phone ---------------------------------------------------------------------------

    def phone(
        self, request: HTTPRequest, cookies: Mapping[str, str], session: Session | None
    ) -> Flow[HTTPResponse]:
        """`phone?t=<ticket>` in WeChat: log in if needed, then the confirmation page (GET) or
        the decision (POST)."""
        ticket_id = query_params(request).get("t", "")
        ticket = None
        try:
            if not is_wechat_browser(request.header("user-agent")):
                raise ScanLoginError("scan_wechat_required", "the phone URL outside WeChat")
            if _TICKET.match(ticket_id):
                ticket = read_ticket((yield from self.tickets.fields(ticket_id)))
            status = ticket.status(self._clock()) if ticket is not None else "expired"
            if ticket is None or status not in ("waiting", "scanned"):
                raise ScanLoginError(_FAILURE[status], f"scan ticket is {status}")
            if request.method == "POST":
                return (yield from self._decide(request, session, ticket_id, ticket))
            if request.method not in ("GET", "HEAD"):
                raise InvalidRequest("the phone URL takes GET and POST only")
            if session is None or needs_profile(session, ticket.scope):
                return self._login.start(request, request.target, ticket.scope, session)
            if session.user.is_snapshot_user:
                raise ScanLoginError("scan_snapshot", "a snapshot user cannot confirm")
            yield from self.tickets.set_once(ticket_id, "s", "1", self._life)
        except WeChatAuthError as exc:
            return self._error(exc, request)
        user = session.user
        assert isinstance(user, WeChatUser)  # a scan login is an Official Account's
        return confirm_page(
            site=(self._login.origin(request) or "").partition("://")[2],
            desktop=ticket.desktop,
            user=user,
            csrf=_csrf(ticket_id, user.openid, self.config.secret_keys[-1]),
        )

    def _decide(
        self, request: HTTPRequest, session: Session | None, ticket_id: str, ticket: Ticket
    ) -> Flow[HTTPResponse]:
        # The session cookie is SameSite=Lax: a POST from another site arrives without it.
        if session is None or not self._same_origin(request):
            raise ScanLoginError("scan_cross_site", "a confirmation from another site")
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        token = form.get("csrf", "")
        user = session.user
        assert isinstance(user, WeChatUser)  # a scan login is an Official Account's
        if not any(
            hmac.compare_digest(token, _csrf(ticket_id, user.openid, key))
            for key in self.config.secret_keys
        ):
            raise ScanLoginError("scan_cross_site", "the confirmation's token does not match")
        decision = form.get("decision")
        if decision == "confirm":
            if user.is_snapshot_user:
                raise ScanLoginError("scan_snapshot", "a snapshot user cannot confirm")
            value = json.dumps(session_payload(Session(user)), ensure_ascii=False)
        elif decision == "cancel":
            value = "cancel"
        else:
            raise InvalidRequest("decision must be confirm or cancel")
        if not (yield from self.tickets.set_once(ticket_id, "d", value, self._life)):
            raise ScanLoginError("scan_used", "the ticket was already decided")
        return decided_page(confirmed=decision == "confirm", desktop=ticket.desktop)

    def _same_origin(self, request: HTTPRequest) -> bool:
        """What the browser says of where the POST comes from, when it says it (browsers
        send Origin with every POST; Sec-Fetch-Site in current ones); the token is checked
        whatever they say."""
        fetch_site = request.header("sec-fetch-site")
        if fetch_site and fetch_site != "same-origin":
            return False
        origin = request.header("origin")
        return not origin or origin == self._login.origin(request)

    def _error(
        self, error: WeChatAuthError, request: HTTPRequest, return_to: str | None = None
    ) -> HTTPResponse:
        return error_response(self.config.on_error, error, request, return_to)


# status -> why a step that needed a usable ticket cannot go on.
_FAILURE = {
    "waiting": "scan_pending",
    "scanned": "scan_pending",
    "confirmed": "scan_used",
    "cancelled": "scan_cancelled",
    "expired": "scan_expired",
}


def _csrf(ticket: str, openid: str, key: bytes) -> str:
    message = _CSRF_SALT + f"{ticket}\0{openid}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _json(raw: str) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None
