"""The JS-SDK's two paths, which the middleware answers itself (the `jssdk_path` option):

- `GET jssdk_path?url=<page URL>`: `wx.config`'s appId, timestamp, nonceStr and signature for
  a page of this site, as JSON;
- `GET jssdk_path + ".js"`: a script that loads WeChat's JS-SDK and configures it with the
  above for the URL WeChat verifies (the entry URL on iOS, the current one elsewhere), again
  after every route change of a single-page app.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from ..errors import WeChatAuthError
from ..messages import HTTPRequest, HTTPResponse
from ..pages import error_json, json_response
from ..urls import beside_authorize, request_origin
from ..wechat.credentials import Credentials, signable_url

if TYPE_CHECKING:
    from ..config import Config
    from ..effects import Flow

__all__ = ["WECHAT_JSSDK_URL", "jssdk_paths", "jssdk_script_url"]

logger = logging.getLogger("wxauth_middleware")

WECHAT_JSSDK_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"
_WECHAT_AUTHORIZE_HOST = "open.weixin.qq.com"
# Where the emulator serves its stand-in of WeChat's script.
_EMULATOR_JSSDK_PATH = "/open/js/jweixin-1.6.0.js"
# The script's cache life: it changes only with the configuration.
_SCRIPT_MAX_AGE = 300

Endpoint = Callable[[HTTPRequest], "HTTPResponse | Flow[HTTPResponse]"]


def jssdk_script_url(config: Config) -> str:
    """WeChat's JS-SDK script: `jssdk_script_url` if set; WeChat's own when `authorize_url`
    is WeChat's; else the stand-in of the emulator `authorize_url` points at (mounted under a
    prefix or not)."""
    if config.jssdk_script_url is not None:
        return config.jssdk_script_url
    if urlsplit(config.authorize_url).hostname == _WECHAT_AUTHORIZE_HOST:
        return WECHAT_JSSDK_URL
    return beside_authorize(config.authorize_url, _EMULATOR_JSSDK_PATH)


def jssdk_paths(config: Config, credentials: Credentials) -> dict[str, Endpoint]:
    """The paths to answer (none when `jssdk_path` is None), each with its endpoint."""
    if config.jssdk_path is None or (config.relay_url is not None and config.app_secret is None):
        return {}  # off, or a site logging in through a relay, without an account of its own
    return {
        config.jssdk_path: _SignEndpoint(config, credentials),
        config.jssdk_path + ".js": _script_endpoint(config),
    }


class _SignEndpoint:
    """`GET jssdk_path?url=...`: signs pages of this site's origin only."""

    def __init__(self, config: Config, credentials: Credentials) -> None:
        self._public_url = config.public_url
        self._credentials = credentials
        self._app_id = json.dumps(config.app_id)
        self._headers = json_response(200, {}).headers

    def __call__(self, request: HTTPRequest) -> HTTPResponse | Flow[HTTPResponse]:
        if request.method not in ("GET", "HEAD"):
            payload: dict[str, object] = {"error": "method_not_allowed", "message": "Use GET."}
            return json_response(405, payload, (("allow", "GET, HEAD"),))
        url = _url_param(request.query_string)
        if not url:
            return _bad_request(400, "invalid_url", "Give the page's URL: ?url=<location.href>.")
        origin = self._public_url or request_origin(request.scheme, request.header("host"))
        if origin is None:
            return _bad_request(400, "invalid_request", "The Host header is not a host name.")
        try:
            page = signable_url(url, origin)
        except ValueError as exc:
            return _bad_request(400, "invalid_url", str(exc))
        # Every page view asks: with the ticket at hand, answered at once, without a flow.
        ticket = self._credentials.held_jsapi_ticket()
        if ticket is None:
            return self._signed(page)
        signed = self._credentials.jssdk_signed(page, ticket)
        # What json_response writes, formatted directly (json.dumps makes an encoder per
        # call: a sixth of this answer's time). The signature is hex, the timestamp an int.
        body = (
            f'{{"appId": {self._app_id}, "timestamp": {signed["timestamp"]}, '
            f'"nonceStr": {json.dumps(signed["nonceStr"])}, "signature": "{signed["signature"]}"}}'
        )
        return HTTPResponse(200, self._headers, body.encode())

    def _signed(self, page: str) -> Flow[HTTPResponse]:
        try:
            signed = yield from self._credentials.jssdk_config(page, None)
        except WeChatAuthError as exc:
            logger.warning("wxauth jssdk signature failed error=%s reason=%s", exc.code, exc)
            return error_json(exc)
        except Exception:
            logger.exception("wxauth jssdk signature failed with an unexpected error")
            return error_json(WeChatAuthError("unexpected error while signing"))
        return json_response(200, signed)


def _url_param(query: str) -> str:
    """The query's `url` parameter (the last one), "" if it has none."""
    if query.startswith("url=") and "&" not in query:
        return unquote_plus(query[4:])  # the usual query, the page's URL alone: parse_qsl's answer
    return dict(parse_qsl(query, keep_blank_values=True)).get("url", "")


def _bad_request(status: int, error: str, message: str) -> HTTPResponse:
    return json_response(status, {"error": error, "message": message})


def _script_endpoint(config: Config) -> Endpoint:
    assert config.jssdk_path is not None
    source = files("wxauth_middleware.jssdk").joinpath("jssdk.js").read_text("utf-8")
    source = source.replace("__WXAUTH_SIGN_PATH__", json.dumps(config.jssdk_path))
    source = source.replace("__WXAUTH_SDK_URL__", json.dumps(jssdk_script_url(config)))
    body = source.encode("utf-8")
    # The script changes only with a release or the configuration: its digest is its validator,
    # so a browser revalidating after max-age gets a 304 without the script again.
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    caching = (("cache-control", f"public, max-age={_SCRIPT_MAX_AGE}"), ("etag", etag))
    response = HTTPResponse(
        200,
        (
            ("content-type", "text/javascript; charset=utf-8"),
            *caching,
            ("x-content-type-options", "nosniff"),
        ),
        body,
    )
    not_modified = HTTPResponse(304, caching)

    def serve(request: HTTPRequest) -> HTTPResponse:
        if request.method in ("GET", "HEAD") and _matches(request.header("if-none-match"), etag):
            return not_modified
        return response

    return serve


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or "*"), compared weakly (RFC 9110)."""
    return any(
        tag.strip().removeprefix("W/") in (etag, "*") for tag in if_none_match.split(",") if tag
    )
