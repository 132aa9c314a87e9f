"""The pages the login callback shows, at a clean address.

The callback's own address holds WeChat's `code` and `state`; a page shown there (an error,
the refusal, the snapshot interstitial) would keep them in the address bar, the history and
a shared link. So such a page is answered in place, with its own status (a failed login is a
4xx/5xx, as a script or a proxy expects), and replaces the address the browser shows with
`callback_path?page=<signed page>` (`history.replaceState`, before anything is drawn). That
address renders the same page: on a reload, from the history, or shared — never a redirect
(no loop). The signed page holds no code, state, token or openid; it says which error (code,
hint, return_to, WeChat's errcode and rid) or which snapshot page to show, and `on_error`,
when the application has one, is called there with the error rebuilt from it.

An `on_error` hook's page gets the same script when it is HTML with a head. Clients without
an address bar (JSON, or a script whose Accept does not name HTML) get the answer as it is.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..cookies import Clock, Signer
from ..decisions import query_params
from ..errors import HostMismatch, LoginStateError, ScanLoginError, WeChatAPIError, WeChatAuthError
from ..messages import HTTPRequest, HTTPResponse
from ..pages import error_response, is_page_request, showing_address, snapshot_response
from ..urls import request_origin
from ..wecom.api import WECOM_CONFIGURATION_ERROR, WeComAPIError
from ..wecom.pages import in_wecom_words

__all__ = ["PAGE_SALT", "CleanPages", "error_from_payload", "error_payload"]

# The purpose of the signed page a callback's clean address shows, and how long it is shown
# (a reload a day later shows "link no longer valid").
PAGE_SALT = "wxauth_middleware.callback-page"
PAGE_LIFE = 24 * 3600


class CleanPages:
    """Shows the callback's pages at `callback_path?page=<signed page>`."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self._pages = Signer(config.secret_keys, PAGE_SALT, clock)

    def error(
        self,
        error: WeChatAuthError,
        request: HTTPRequest,
        cookies: tuple[tuple[str, str], ...] = (),
    ) -> HTTPResponse:
        """The page of `error`: at the clean address when the request's own holds a code or
        state (on_error is called there), else here."""
        payload = error_payload(error) if self.in_address_bar(request) else None
        address = self.clean_address(["error", payload]) if payload is not None else None
        shown = self._worded(error)
        return error_response(self.config.on_error, shown, request, None, cookies, address=address)

    def snapshot(
        self, request: HTTPRequest, return_to: str, cookies: tuple[tuple[str, str], ...]
    ) -> HTTPResponse:
        """The snapshot interstitial, with the page `return_to` in the address bar: WeChat's
        "use full service" bar reopens the address shown, for real."""
        response = snapshot_response(request, return_to)
        response = HTTPResponse(response.status, (*response.headers, *cookies), response.body)
        if self.in_address_bar(request):
            return showing_address(response, return_to)
        return response

    def in_address_bar(self, request: HTTPRequest) -> bool:
        """Whether this is a browser's page load (its Accept names HTML, as browsers' do on a
        navigation; a script's `*/*` gets its answer at once) of the callback whose address
        holds a code or state."""
        if request.path != self.config.callback_path or not is_page_request(request):
            return False
        if "html" not in request.header("accept"):
            return False
        params = query_params(request)
        return "code" in params or "state" in params

    def show(self, request: HTTPRequest, token: str) -> HTTPResponse:
        """The page at a clean address; "unknown state" for a token the callback did not
        sign. Never a redirect: it cannot loop."""
        verified = self._pages.verify(token, PAGE_LIFE)
        page = verified[0] if verified is not None else None
        kind, content = page if isinstance(page, list) and len(page) == 2 else ("", None)
        if kind == "snapshot" and isinstance(content, str):
            return snapshot_response(request, content)
        origin = request_origin(request.scheme, request.header("host")) or ""
        site = self.config.public_url or ""
        host = origin.partition("://")[2]
        error = error_from_payload(content, host, site) if kind == "error" else None
        if error is None:
            error = LoginStateError("unknown or expired login state")
        return error_response(self.config.on_error, self._worded(error), request)

    def _worded(self, error: WeChatAuthError) -> WeChatAuthError:
        # A WeCom app's visitors read of WeCom (企业微信), not WeChat.
        return error if self.config.wecom is None else in_wecom_words(error)

    def clean_address(self, page: list[Any]) -> str:
        """The address that shows `page` again."""
        return f"{self.config.callback_path}?page={self._pages.sign(page)}"


# The errors a callback's clean page can show again, by code (see `error_payload`).
_REBUILT: dict[str, type[WeChatAuthError]] = {}


def _rebuilt(kind: type[WeChatAuthError]) -> None:
    """Register `kind` and its subclasses of the errors module (not an application's own)."""
    if kind.__module__ == WeChatAuthError.__module__ and kind not in _MADE_OTHERWISE:
        _REBUILT.setdefault(kind.code, kind)
    for sub in kind.__subclasses__():
        _rebuilt(sub)


_MADE_OTHERWISE = (ScanLoginError, WeChatAPIError, HostMismatch)
# WeChat's and WeCom's errcodes, by the code of their error (a WeCom configuration error has
# its own).
_API_ERRORS: dict[str, type[WeChatAPIError]] = {
    WeChatAPIError.code: WeChatAPIError,
    WeComAPIError.code: WeComAPIError,
    WECOM_CONFIGURATION_ERROR: WeComAPIError,
}
_rebuilt(WeChatAuthError)


def error_payload(error: WeChatAuthError) -> list[Any] | None:
    """What `error_from_payload` rebuilds `error` from (JSON), or None for an error it cannot
    rebuild: its code, its hint ("" for the one rebuilding gives), the page to go back to and,
    for WeChat's errors and a host mismatch, their own fields. Not its message, which may name
    the user (an address is no place for an openid): the rebuilt error's is its title."""
    kind = type(error)
    if kind is WeChatAPIError or kind is WeComAPIError:
        assert isinstance(error, WeChatAPIError)
        extra: list[Any] = [error.errcode, error.errmsg, error.endpoint]
    elif kind is HostMismatch:
        # No host names: anyone can mint this page (a login started with a Host header of
        # their choosing); shown again, it names the host it is shown on and public_url.
        return [error.code, "", error.return_to, []]
    elif _REBUILT.get(error.code) is kind:
        extra = []
    else:
        return None
    payload = [error.code, "", error.return_to, extra]
    rebuilt = error_from_payload(payload)
    if rebuilt is None or rebuilt.hint != error.hint:
        payload[1] = error.hint  # the shorter payload when rebuilding gives the same hint
    return payload


def error_from_payload(payload: Any, host: str = "", site: str = "") -> WeChatAuthError | None:
    """The error `error_payload` described, or None for anything else; a host mismatch
    names `host` (the one it is shown on) and `site` (public_url)."""
    if not isinstance(payload, list) or len(payload) != 4:
        return None
    code, hint, return_to, extra = payload
    if not isinstance(code, str) or not isinstance(hint, str) or not isinstance(extra, list):
        return None
    if return_to is not None and not isinstance(return_to, str):
        return None
    error: WeChatAuthError
    try:
        if code in _API_ERRORS:
            errcode, errmsg, endpoint = extra
            if not isinstance(errcode, int) or not isinstance(errmsg + endpoint, str):
                return None
            error = _API_ERRORS[code](errcode, errmsg, endpoint=endpoint, hint=hint or None)
        elif code == HostMismatch.code and not extra and not hint:
            error = HostMismatch(None, host, site)
        elif code in _REBUILT and not extra:
            kind = _REBUILT[code]
            error = kind(kind.title, hint=hint or None)
        else:
            return None
    except (TypeError, ValueError):  # a payload of the wrong shape
        return None
    return error.leading_back_to(return_to) if return_to is not None else error
