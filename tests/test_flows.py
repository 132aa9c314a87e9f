"""The sans-I/O core stepped by hand, h11-style: feed an HTTPRequest, look at the decision or
the effects its flow yields, send back made-up results. No adapter, no server, no socket."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from wxauth_middleware.config import Config
from wxauth_middleware.core import Forward, LoginCore
from wxauth_middleware.effects import Effect, HookCall, StoreCommands, UpstreamRequest
from wxauth_middleware.effects import UpstreamResponse as Answer
from wxauth_middleware.errors import LoginStateError, WeChatAuthError
from wxauth_middleware.login.in_progress import LoginState, LoginStateCodec
from wxauth_middleware.messages import HTTPRequest, HTTPResponse

from .support import SECRET_KEY, WECHAT_UA, clean_address

APP_ID = "wx8e6a2d5c0b1f4a37"
# The session cookie of the https requests here (a __Host- one: no sibling subdomain plants it).
SESSION = "__Host-wxauth_session"
TOKEN = {"access_token": "AT", "expires_in": 7200, "refresh_token": "RT", "openid": "o-1"}
TOKEN.update(scope="snsapi_base")


def _core(**options: Any) -> LoginCore:
    return LoginCore(Config(app_id=APP_ID, app_secret="s3cret", secret_key=SECRET_KEY, **options))


def _get(target: str, cookies: dict[str, str] | None = None) -> HTTPRequest:
    headers = {"user-agent": WECHAT_UA, "host": "example.com", "accept": "text/html"}
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    path, _, query = target.partition("?")
    return HTTPRequest("GET", "https", path, target, query, headers)


def _location(response: HTTPResponse) -> str:
    return dict(response.headers)["location"]


def _shown(core: LoginCore, response: object) -> HTTPResponse:
    """A callback's answer as the browser shows it: a page of the callback's own puts its
    clean address (no code or state) in the address bar, which shows the same page again."""
    assert isinstance(response, HTTPResponse)
    clean = clean_address(response.body.decode())
    if clean is None:
        return response
    parts = urlsplit(clean)
    assert (parts.path, list(parse_qs(parts.query))) == ("/wxauth/callback", ["page"]), clean
    page = core.handle(_get(clean))
    assert isinstance(page, HTTPResponse)
    assert page.status == response.status
    return response


def _set_cookies(response: HTTPResponse) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in response.headers:
        if name == "set-cookie":
            jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def _run(decision: object, answer: Callable[[Effect], Any]) -> tuple[object, list[Effect]]:
    """Step a decision's flow to its end, answering each effect; the result and the effects."""
    if isinstance(decision, (Forward, HTTPResponse)):
        return decision, []
    flow: Any = decision
    seen: list[Effect] = []
    reply: Any = None
    try:
        while True:
            effect = flow.send(reply)
            seen.append(effect)
            reply = answer(effect)
    except StopIteration as stop:
        return stop.value, seen


def _wechat(*answers: dict[str, Any]) -> Callable[[Effect], Any]:
    """WeChat's API answering the calls in turn; anything else is a test failure."""
    queue = list(answers)

    def answer(effect: Effect) -> Any:
        assert isinstance(effect, UpstreamRequest), effect
        return Answer(200, json.dumps(queue.pop(0)).encode())

    return answer


def _start(core: LoginCore, page: str = "/page") -> tuple[str, dict[str, str]]:
    response = core.handle(_get(page))
    assert isinstance(response, HTTPResponse)
    assert response.status == 302
    state = parse_qs(urlsplit(_location(response)).query)["state"][0]
    return state, _set_cookies(response)


def _logins(cookies: dict[str, str]) -> tuple[LoginState, ...]:
    """The logins in progress in the login-state cookie (a __Host- one: the site is https)."""
    return LoginStateCodec((SECRET_KEY.encode(),), 600).decode(
        cookies["__Host-wxauth_session_login"]
    )


def _callback(state: str, code: str | None = "CODE") -> str:
    query = {"state": state} if code is None else {"code": code, "state": state}
    return "/wxauth/callback?" + urlencode(query)


def test_a_callback_exchanges_the_code_and_writes_the_session() -> None:
    core = _core()
    state, cookies = _start(core)
    result, effects = _run(core.handle(_get(_callback(state), cookies)), _wechat(TOKEN))
    assert isinstance(result, HTTPResponse)
    assert (result.status, _location(result)) == (302, "/page")
    [call] = effects
    assert isinstance(call, UpstreamRequest)
    assert call.endpoint == "sns/oauth2/access_token"
    assert dict(call.params)["code"] == "CODE"
    session = core.session(f"{SESSION}={_set_cookies(result)[SESSION]}", "https")
    assert session is not None
    assert session.user.openid == "o-1"


def test_an_invalid_code_restarts_the_login_once() -> None:
    core = _core()
    state, cookies = _start(core)
    invalid = {"errcode": 40029, "errmsg": "invalid code"}
    first, _ = _run(core.handle(_get(_callback(state), cookies)), _wechat(invalid))
    assert isinstance(first, HTTPResponse)
    assert first.status == 302
    assert _location(first).startswith("https://open.weixin.qq.com/")
    again = _set_cookies(first)
    new_state = parse_qs(urlsplit(_location(first)).query)["state"][0]
    # The spent state is replaced by the new one.
    assert [login.state for login in _logins(again)] == [new_state]
    second, _ = _run(core.handle(_get(_callback(new_state), again)), _wechat(invalid))
    assert _shown(core, second).status >= 400  # the second time, an error page: never a loop


def test_a_replayed_callback_goes_back_to_the_page_without_spending_anything() -> None:
    core = _core()
    state, cookies = _start(core)
    done, _ = _run(core.handle(_get(_callback(state), cookies)), _wechat(TOKEN))
    assert isinstance(done, HTTPResponse)
    after = {**cookies, **_set_cookies(done)}
    replay = core.handle(_get(_callback(state), after))
    assert isinstance(replay, HTTPResponse)  # decided at once: no flow, no call to WeChat
    assert (replay.status, _location(replay)) == (302, "/page")
    del after[SESSION]
    refused = _shown(core, core.handle(_get(_callback(state), after)))
    assert refused.status == LoginStateError.status


def test_a_refusal_logs_nobody_in_and_clears_the_state() -> None:
    core = _core()
    state, cookies = _start(core)
    refused, effects = _run(core.handle(_get(_callback(state, code=None), cookies)), _wechat())
    assert effects == []
    assert isinstance(refused, HTTPResponse)
    assert _shown(core, refused).status == 403
    assert _logins(_set_cookies(refused)) == ()  # the login is over


@pytest.mark.parametrize("state", ["", "nope", "a" * 129])
def test_an_unknown_state_is_refused_before_any_call(state: str) -> None:
    core = _core()
    _, cookies = _start(core)
    refused = core.handle(_get(_callback(state), cookies))
    assert isinstance(refused, HTTPResponse)
    assert "set-cookie" not in dict(refused.headers)
    assert _shown(core, refused).status == 400


def test_on_login_is_a_hook_call_the_driver_makes() -> None:
    core = _core(on_login=lambda user, request: False)
    state, cookies = _start(core)
    hooks: list[HookCall] = []
    wechat = _wechat(TOKEN)

    def answer(effect: Effect) -> Any:
        if isinstance(effect, HookCall):
            hooks.append(effect)
            return False  # vetoed
        return wechat(effect)

    vetoed, _ = _run(core.handle(_get(_callback(state), cookies)), answer)
    assert [hook.args[0].openid for hook in hooks] == ["o-1"]  # type: ignore[attr-defined]
    assert isinstance(vetoed, HTTPResponse)
    assert _shown(core, vetoed).status == 403
    assert SESSION not in _set_cookies(vetoed)


class FakeRedis:
    """Just enough of Redis's commands, answered from a dict, to step the store's flows."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def __call__(self, effect: Effect) -> Any:
        assert isinstance(effect, StoreCommands), effect
        return [self._one(*command) for command in effect.commands]

    def _one(self, name: Any, *args: Any) -> Any:
        data = self.data
        if name == "SET":
            key, value, *flags = args
            if ("NX" in flags and key in data) or ("XX" in flags and key not in data):
                return None
            data[key] = value.encode() if isinstance(value, str) else value
            return True
        if name == "GET":
            return data.get(args[0])
        if name == "DEL":
            return sum(data.pop(key, None) is not None for key in args)
        if name == "SADD":
            data.setdefault(args[0], set()).update(args[1:])
            return 1
        if name == "SREM":
            data.get(args[0], set()).difference_update(args[1:])
            return 1
        if name in ("SMEMBERS", "SRANDMEMBER"):
            return list(data.get(args[0], set()))
        if name == "EXISTS":
            return int(args[0] in data)
        assert name == "EXPIRE", name
        return 1


def test_with_the_store_a_callback_claims_its_code_and_saves_the_session() -> None:
    core = _core(redis_url="redis://127.0.0.1:6379/0")
    redis = FakeRedis()
    wechat = _wechat(TOKEN)
    state, cookies = _start(core)

    def answer(effect: Effect) -> Any:
        return redis(effect) if isinstance(effect, StoreCommands) else wechat(effect)

    done, effects = _run(core.handle(_get(_callback(state), cookies)), answer)
    assert isinstance(done, HTTPResponse)
    assert _location(done) == "/page"
    kinds = [type(effect).__name__ for effect in effects]
    # Claim the code, exchange it, record the result, save the session (and prune its index).
    assert kinds[:4] == ["StoreCommands", "UpstreamRequest", "StoreCommands", "StoreCommands"]
    first = effects[0]
    assert isinstance(first, StoreCommands)
    assert first.commands[0][0] == "SET"
    assert "NX" in first.commands[0]
    # The session is in the store; the cookie holds only its signed id.
    value = _set_cookies(done)[SESSION]
    user, _ = _run(core.session_user(f"{SESSION}={value}", "wss"), redis)
    assert getattr(user, "openid", None) == "o-1"
    # A duplicate of that callback (on any instance) gets the first one's result: WeChat is
    # not asked again.
    duplicate, effects = _run(core.handle(_get(_callback(state), cookies)), answer)
    assert isinstance(duplicate, HTTPResponse)
    assert _location(duplicate) == "/page"
    assert not any(isinstance(effect, UpstreamRequest) for effect in effects)


@pytest.mark.parametrize(
    ("refusal", "status", "last"),
    [
        # WeChat refused the code: the state stays spent (no more calls for it anywhere).
        ({"errcode": 40163, "errmsg": "code been used"}, 302, "SET"),
        # WeChat busy: the claim is deleted, duplicates and a reload try again.
        ({"errcode": -1, "errmsg": "system error"}, 503, "DEL"),
    ],
)
def test_with_the_store_a_failed_exchange_releases_its_claim_unless_the_code_was_refused(
    refusal: dict[str, Any], status: int, last: str
) -> None:
    core = _core(redis_url="redis://127.0.0.1:6379/0", retries=0)
    redis = FakeRedis()
    wechat = _wechat(refusal)
    state, cookies = _start(core)
    core_state = _get(_callback(state), cookies)

    def answer(effect: Effect) -> Any:
        return redis(effect) if isinstance(effect, StoreCommands) else wechat(effect)

    answered, effects = _run(core.handle(core_state), answer)
    assert _shown(core, answered).status == status  # an invalid code restarts the login, once
    claim, final = effects[0], effects[-1]
    assert isinstance(claim, StoreCommands)
    assert isinstance(final, StoreCommands)
    key = str(claim.commands[0][1])
    if last == "DEL":
        assert final.commands == (("DEL", key),)
        assert key not in redis.data
    else:
        assert final.commands == (("SET", key, "!", "XX", "KEEPTTL"),)
        assert redis.data[key] == b"!"


def test_an_error_page_leaves_the_error_it_was_given_unchanged() -> None:
    seen: list[WeChatAuthError] = []

    def on_error(error: WeChatAuthError, request: HTTPRequest) -> None:
        seen.append(error)

    core = _core(on_error=on_error)
    state, cookies = _start(core)
    refused, _ = _run(core.handle(_get(_callback(state, code=None), cookies)), _wechat())
    _shown(core, refused)
    # Asked at the callback, then at its clean address (a reload): both lead back to the page.
    assert [error.return_to for error in seen] == ["/page", "/page"]
    fresh = LoginStateError("x")
    assert fresh.leading_back_to("/a").return_to == "/a"
    assert fresh.return_to is None


@pytest.mark.parametrize(
    ("host", "marked"),
    [
        ("www.example.com", True),
        ("example.com", False),  # public_url's own host
        ("EXAMPLE.com:443", False),  # the same host, as a browser may send it
        ("h" * 44 + ".cn", False),  # too long to carry: a plain state (the log still says it)
    ],
)
def test_a_login_started_off_public_urls_host_carries_its_host_in_a_signed_state(
    host: str, marked: bool
) -> None:
    core = _core(public_url="https://example.com")
    response = core.handle(_with_host(_get("/page"), host))
    assert isinstance(response, HTTPResponse)
    state = parse_qs(urlsplit(_location(response)).query)["state"][0]
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state), state
    assert core.login.started_host(state) == (host if marked else None)
    if marked:
        # Signed: another host, or another key, is no marker.
        forged = state[:41] + b"evil.example".hex()
        assert core.login.started_host(forged) is None
        other = LoginCore(
            Config(
                app_id=APP_ID,
                app_secret="s3cret",
                secret_key="another-key-0123456789",
                public_url="https://example.com",
            )
        )
        assert other.login.started_host(state) is None
        # Its callback on public_url's host, without the cookie: the page says where to
        # go (the host it started on is the log's: any Host header can start a login).
        answer = core.handle(_with_host(_get(_callback(state)), "example.com"))
        page = _shown(core, answer)
        assert page.status == 400
        assert "Open the site at https://example.com" in page.body.decode()
        assert "www.example.com" not in page.body.decode()


def _with_host(request: HTTPRequest, host: str) -> HTTPRequest:
    headers = {**request.headers, "host": host}
    return HTTPRequest(
        request.method, request.scheme, request.path, request.target, request.query_string, headers
    )
