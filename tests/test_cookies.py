from __future__ import annotations

import hmac
import json
import time
from base64 import urlsafe_b64encode

import pytest

from wxauth_middleware import WeChatUser
from wxauth_middleware.cookies import CLOCK_SKEW, Session, SessionCodec, Signer
from wxauth_middleware.logins import (
    MAX_LOGINS,
    LoginState,
    LoginStateCodec,
    kept_return,
    with_login,
)
from wxauth_middleware.store import SessionStore

OLD = b"old-signing-key-0123456789"
NEW = b"new-signing-key-0123456789"
USER = WeChatUser(
    openid="oLVPpjqs9BhvzwPj5A-vTYAX3GLc",
    unionid="o6_bmasdasdsad6_2sgVt7hMZOPfL",
    nickname="小明🐼\x07",
    headimgurl="https://thirdwx.qlogo.cn/mmopen/vi_32/x/132",
    sex=0,
    province="",
    city="",
    country="",
    privilege=("chinaunicom",),
    scope="snsapi_userinfo",
)


def test_session_round_trips_every_field() -> None:
    codec = SessionCodec((NEW,), max_age=3600)
    assert codec.decode(codec.encode(Session(USER))) == Session(USER)
    base = Session(WeChatUser(openid="o1"), profile_declined=True)
    assert codec.decode(codec.encode(base)) == base


def test_key_rotation_old_cookies_still_verify_new_ones_use_newest_key() -> None:
    old_cookie = SessionCodec((OLD,), 3600).encode(Session(USER))
    rotated = SessionCodec((OLD, NEW), 3600)
    assert rotated.decode(old_cookie) == Session(USER)
    new_cookie = rotated.encode(Session(USER))
    assert SessionCodec((NEW,), 3600).decode(new_cookie) == Session(USER)
    assert SessionCodec((OLD,), 3600).decode(new_cookie) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v[:-1],
        lambda v: v[: len(v) // 2],
        lambda v: v + "x",
        lambda v: "x" + v[1:],
        lambda v: v.replace(".", "!"),
        lambda v: "",
        lambda v: "garbage",
        lambda v: "." * 3,
        lambda v: "a" * 5000,
        lambda v: "\u00e9\u00e9.\u00e9",
    ],
)
def test_tampered_or_garbage_session_is_no_session(mutate: object) -> None:
    codec = SessionCodec((NEW,), 3600)
    value = mutate(codec.encode(Session(USER)))  # type: ignore[operator]
    assert codec.decode(value) is None


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_expired_session_is_no_session() -> None:
    clock = Clock()
    codec = SessionCodec((NEW,), max_age=60, clock=clock)
    value = codec.encode(Session(USER))
    clock.now += 61
    assert codec.decode(value) is None


def test_login_state_cookie_cannot_pass_for_a_session_or_the_reverse() -> None:
    login = LoginState("abc", "/page", "snsapi_base", issued=int(time.time()))
    state_value = LoginStateCodec((NEW,), 600).encode((login,))
    assert SessionCodec((NEW,), 3600).decode(state_value) is None
    session_value = SessionCodec((NEW,), 3600).encode(Session(USER))
    assert LoginStateCodec((NEW,), 600).decode(session_value) == ()


def test_login_states_round_trip_and_expire_one_by_one() -> None:
    clock = Clock()
    codec = LoginStateCodec((NEW,), 600, clock)
    old = LoginState("abc", "/page", "snsapi_base", attempt=1, bound="o1", issued=int(clock.now))
    clock.now += 400
    new = LoginState("def", "/other", "snsapi_userinfo", api=True, issued=int(clock.now))
    value = codec.encode((new, old))
    assert codec.decode(value) == (new, old)
    clock.now += 201  # the cookie was signed 201 s ago; the older login started 601 s ago
    assert codec.decode(value) == (new,)


def test_a_browser_keeps_a_bounded_few_logins_newest_first() -> None:
    logins: tuple[LoginState, ...] = ()
    for n in range(MAX_LOGINS + 2):
        logins = with_login(logins, LoginState(f"s{n}", "/", "snsapi_base"))
    assert [x.state for x in logins] == [f"s{n}" for n in range(MAX_LOGINS + 1, 1, -1)]
    # An API call's login replaces the previous one (a front end polling while logged out).
    api = with_login(logins, LoginState("a1", "/", "snsapi_base", api=True))
    api = with_login(api, LoginState("a2", "/", "snsapi_base", api=True))
    assert [x.state for x in api if x.api] == ["a2"]


def test_long_return_paths_are_kept_short() -> None:
    assert kept_return("/p?" + "x" * 2000) == "/p"
    assert kept_return("/" + "p" * 2000) == "/"
    assert kept_return("/p?x=1") == "/p?x=1"


def test_signed_payload_of_the_wrong_shape_is_no_session() -> None:
    # Signed with the right key and salt, but not a layout we wrote: still never an error.
    forger = Signer((NEW,), "wxauth_middleware.session", time.time)
    codec = SessionCodec((NEW,), 3600)
    for payload in ({"openid": "o"}, [1, "", None], [2] + [None] * 12, "x", None, [1] * 13):
        assert codec.decode(forger.sign(payload)) is None
    good: list[object] = [1, "o", None, None, None, 0, None, None, None, ["p"], "s", False, False]
    assert codec.decode(forger.sign(good)) is not None
    for index, wrong in [
        (1, ""),  # an openid is never empty
        (1, 5),
        (2, 1),  # unionid ... country: a string or null
        (3, ["x"]),
        (8, False),
        (5, True),  # sex: an int, not a bool
        (5, 1.5),
        (5, "1"),
        (9, ["p", None]),  # privilege: a list of strings
        (9, ["p", 1]),
        (9, "p"),
        (10, None),  # scope: a string
        (11, 0),  # the two flags: booleans
        (12, None),
    ]:
        assert codec.decode(forger.sign([*good[:index], wrong, *good[index + 1 :]])) is None


def test_signed_values_are_written_as_documented() -> None:
    """`payload.time.signature`: compact JSON in unpadded base64url, the time, and HMAC-SHA256
    over both with the purpose's key (HMAC of the secret key and "wxauth_middleware.key " +
    purpose), unpadded base64url. Cookies signed before stay valid."""
    clock = Clock()
    key = hmac.digest(NEW, b"wxauth_middleware.key p", "sha256")

    def signed(text: bytes, pad: bool = False) -> str:
        data = urlsafe_b64encode(text)
        value = (data if pad else data.rstrip(b"=")) + b"." + str(int(clock.now)).encode()
        mac = urlsafe_b64encode(hmac.digest(key, value, "sha256")).rstrip(b"=")
        return (value + b"." + mac).decode()

    payload = ["小明", 1, None, [True]]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    signer = Signer((NEW,), "p", clock)
    assert signer.sign(payload) == signed(text)
    assert signer.verify(signed(text), 60) == (payload, int(clock.now))
    assert signer.verify(signed(b'["x"]', pad=True), 60) == (["x"], int(clock.now))
    # Signed with the key, but not what `sign` writes: never a payload, never an error.
    for text in (b'["x"] 1', b' ["x"]', b'["x"]x', b"\xff", b"", b"[1"):
        assert signer.verify(signed(text), 60) is None


def test_identity_key_is_applied_on_decode() -> None:
    value = SessionCodec((NEW,), 3600).encode(Session(USER))
    decoded = SessionCodec((NEW,), 3600, identity_key="unionid").decode(value)
    assert decoded is not None
    assert decoded.user.identity == USER.unionid
    plain = SessionCodec((NEW,), 3600).decode(value)
    assert plain is not None
    assert plain.user.identity == USER.openid


def test_remembered_session_still_expires() -> None:
    clock = Clock()
    codec = SessionCodec((NEW,), max_age=60, clock=clock)
    value = codec.encode(Session(USER))
    assert codec.decode(value) == Session(USER)  # verified, and remembered
    assert codec.decode(value) == Session(USER)  # from memory
    clock.now += 61
    assert codec.decode(value) is None


def test_remembered_sessions_are_bounded() -> None:
    codec = SessionCodec((NEW,), max_age=None)
    values = [codec.encode(Session(WeChatUser(openid=f"o{i}"))) for i in range(1100)]
    for value in values:
        assert codec.decode(value) is not None
    assert len(codec._verified) <= 1024
    assert codec.decode(values[0]) == Session(WeChatUser(openid="o0"))  # evicted: verified again


def test_stored_session_ids_are_remembered_verified_only_and_until_they_expire() -> None:
    clock = Clock()
    store = SessionStore("p:", (NEW,), max_age=60, identity_key="openid", clock=clock)
    signer = Signer((NEW,), "wxauth_middleware.session-id", clock)
    # A session id: the four hex digits of its slot tag, then 32 random characters.
    values = [signer.sign(f"0a1b{i:032d}") for i in range(1100)]
    for i, value in enumerate(values):
        assert store.session_id(value) == f"0a1b{i:032d}"
    assert len(store._verified_ids) <= 1024
    forged = values[-1][:-2] + ("AA" if not values[-1].endswith("AA") else "BB")
    assert store.session_id(forged) is None
    assert store.session_id(signer.sign("not-a-session-id")) is None
    assert len(store._verified_ids) <= 1024
    clock.now += 61
    assert store.session_id(values[-1]) is None  # remembered, but expired all the same


def test_signed_values_verify_only_whole_in_time_and_for_their_purpose() -> None:
    clock = Clock()
    signer = Signer((OLD, NEW), "p", clock)
    value = signer.sign(["小明", 1])
    assert value.isascii()
    assert all(c.isalnum() or c in "-_." for c in value)
    assert signer.verify(value, 60) == (["小明", 1], int(clock.now))
    assert Signer((NEW,), "p", clock).verify(value, 60) is not None  # the newest key signs
    assert Signer((OLD,), "p", clock).verify(value, 60) is None
    assert Signer((NEW, OLD), "p", clock).verify(Signer((OLD,), "p", clock).sign(1), 60)
    assert Signer((NEW,), "q", clock).verify(value, 60) is None  # another purpose's key
    data, stamp, signature = value.split(".")
    for changed in (
        f"{data}.{int(stamp) + 1}.{signature}",  # the time is signed too
        f"{data[:-1]}A.{stamp}.{signature}" if not data.endswith("A") else f"B.{stamp}.{signature}",
        f"{data}.{stamp}.{signature[:-1]}",
        f"{data}.{stamp}",
        value + ".",
        value + "é",
        value + "x" * 5000,
        "",
        "...",
        # The format before this one (itsdangerous): no longer verifies.
        ".eJxTMkg0TDIgAJQAlp8HaQ.awmDDw.sJCRqcFtYYCagDZWUGFhP74Hvnk",
    ):
        assert signer.verify(changed, 60) is None, changed
    clock.now += 61
    assert signer.verify(value, 60) is None  # expired
    # Signed by an instance whose clock is a little ahead: accepted; far ahead: not.
    clock.now -= 61 + CLOCK_SKEW
    assert signer.verify(value, 60) is not None
    clock.now -= 1
    assert signer.verify(value, 60) is None  # signed in the future
