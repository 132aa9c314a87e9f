from __future__ import annotations

import hashlib
import hmac
import json
import time
from base64 import urlsafe_b64encode
from dataclasses import FrozenInstanceError, fields, replace

import pytest

from wxauth_middleware import WeChatUser
from wxauth_middleware.cookies import CLOCK_SKEW, Session, SessionCodec, Signer, session_payload
from wxauth_middleware.login.in_progress import (
    MAX_LOGINS,
    LoginState,
    LoginStateCodec,
    kept_return,
    with_login,
)
from wxauth_middleware.storage.store import SessionStore

from .support import SECRET_KEY, Stack

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


def test_login_states_are_text_and_keep_any_return_path_and_identity() -> None:
    clock = Clock()
    codec = LoginStateCodec((NEW,), 600, clock)
    odd = LoginState(
        "R" + "0" * 40,
        '/文章?q=a~b c;d,"e"\\f&g=%7E',
        "snsapi_userinfo",
        attempt=1,
        done=True,
        bound="wecom:corp~1:张三",
        api=True,
        issued=int(clock.now),
    )
    plain = LoginState("ab12", "/page", "snsapi_base", issued=int(clock.now))
    value = codec.encode((odd, plain))
    # Signed as text (no JSON, no base64 of the whole): the state and scope as they are.
    version, stamp, payload, mac = value.split(".")
    assert (version, stamp) == ("2", str(int(clock.now)))
    assert payload.startswith("~R" + "0" * 40 + "~")
    assert "~ab12~" in payload
    assert "~snsapi_userinfo~1~1~" in payload
    assert "~snsapi_base~0~0~" in payload
    assert len(mac) == 32
    assert codec.decode(value) == (odd, plain)
    assert codec.decode(codec.encode(())) == ()


def test_a_login_state_text_of_the_wrong_shape_is_no_login() -> None:
    clock = Clock()
    forger = Signer((NEW,), "wxauth_middleware.login-state", clock)
    codec = LoginStateCodec((NEW,), 600, clock)
    good = f"abc~L3BhZ2U~snsapi_base~0~0~~0~{int(clock.now)}"
    assert codec.decode(forger.sign(good)) == (
        LoginState("abc", "/page", "snsapi_base", 0, False, "", False, int(clock.now)),
    )
    # A field too few or too many: nothing read.
    for wrong in (good.rpartition("~")[0], good + "~0", good + "~" + good.rpartition("~")[0]):
        assert codec.decode(forger.sign(wrong)) == (), wrong
    # An entry that does not decode is dropped, the others kept.
    for broken in (
        good.replace("~L3BhZ2U~", "~_w~"),  # base64url of a byte that is not UTF-8
        good.replace("~snsapi_base~0~", "~snsapi_base~x~"),
        good.rpartition("~")[0] + "~soon",
    ):
        assert codec.decode(forger.sign(broken + "~" + good)) == codec.decode(forger.sign(good))


def test_a_login_state_of_the_format_before_is_read_and_a_wrong_entry_is_no_login() -> None:
    # The format before: a JSON list of lists (read while such a cookie lives, ten minutes).
    clock = Clock()
    forger = Signer((NEW,), "wxauth_middleware.login-state", clock)
    codec = LoginStateCodec((NEW,), 600, clock)
    good: list[object] = ["abc", "/page", "snsapi_base", 0, False, "", False, int(clock.now)]
    assert codec.decode(forger.sign([good])) == (
        LoginState("abc", "/page", "snsapi_base", 0, False, "", False, int(clock.now)),
    )
    for index, wrong in [
        (0, 1),
        (1, None),
        (2, ["x"]),
        (3, True),
        (3, 1.0),
        (4, 0),
        (5, None),
        (6, "no"),
        (7, False),
        (7, "1"),
    ]:
        entry = [*good[:index], wrong, *good[index + 1 :]]
        assert codec.decode(forger.sign([entry, good])) == codec.decode(forger.sign([good])), index
    not_entries: list[object] = [good[:-1], [*good, 0], "x", None, {}]
    for not_entry in not_entries:
        assert codec.decode(forger.sign([not_entry])) == ()


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
        (0, True),  # the version: the int 1 (True == 1 and 1.0 == 1 in Python)
        (0, 1.0),
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
    # The layout of now, as a list: the openid, the scope, two flags, the profile.
    full: list[object] = ["o", "s", False, False, "u", "n", "h", 1, "p", "c", "c", ["p"]]
    assert codec.decode(forger.sign(full)) is not None
    for index, wrong in [
        (0, ""),  # an openid is never empty
        (0, None),
        (1, None),  # scope: a string
        (1, ""),
        (2, 0),  # the flags: booleans
        (3, None),
        (4, 1),  # unionid ... country: a string or null
        (5, ["x"]),
        (7, True),  # sex: an int, not a bool
        (7, "1"),
        (10, False),
        (11, ["p", None]),  # privilege: a list of strings
        (11, "p"),
    ]:
        assert codec.decode(forger.sign([*full[:index], wrong, *full[index + 1 :]])) is None
    for wrong_length in (full[:4], full[:-1], [*full, None]):
        assert codec.decode(forger.sign(wrong_length)) is None


def test_decoded_session_has_every_field_a_constructed_one_has() -> None:
    # Sessions are built slot by slot, past the dataclasses' __init__: the same object,
    # the fields that do not compare (app_id) and `identity_key` included, and still frozen.
    codec = SessionCodec((NEW,), 3600, "unionid", app_ids=("wxoa", "wxweb"))
    everything = replace(USER, sex=1, province="广东", city="广州", country="中国")
    everything = replace(everything, is_snapshot_user=True)  # every field its own value
    login = WeChatUser(openid="o1", scope="snsapi_login")
    for user, declined in ((everything, True), (login, False)):
        decoded = codec.decode(codec.encode(Session(user, declined)))
        assert decoded is not None
        app_id = "wxweb" if user.scope == "snsapi_login" else "wxoa"
        expected = replace(user, app_id=app_id, identity_key="unionid")
        for field in fields(WeChatUser):
            assert getattr(decoded.user, field.name) == getattr(expected, field.name), field
        assert (decoded.profile_declined, decoded.sid) == (declined, None)
        assert hash(decoded) == hash(Session(expected, declined))
        with pytest.raises(FrozenInstanceError):
            decoded.user.openid = "other"  # type: ignore[misc]
        with pytest.raises(FrozenInstanceError):
            decoded.sid = "x"  # type: ignore[misc]


def test_signed_values_are_written_as_documented() -> None:
    """`2.time.payload.mac`: the time, compact JSON in unpadded base64url, and keyed BLAKE2b
    (16 bytes, hex) over all before the MAC, keyed with the purpose's key (HMAC-SHA256 of the
    secret key and "wxauth_middleware.key2 " + purpose)."""
    clock = Clock()
    key = hmac.digest(NEW, b"wxauth_middleware.key2 p", "sha256")
    payload = ["小明", 1, None, [True]]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    signed = f"2.{int(clock.now)}.{urlsafe_b64encode(text).decode().rstrip('=')}."
    mac = hashlib.blake2b(signed.encode(), key=key, digest_size=16).hexdigest()
    signer = Signer((NEW,), "p", clock)
    assert signer.sign(payload) == signed + mac
    assert signer.verify(signed + mac, 60) == (payload, int(clock.now))
    # Signed with another key, or with this one in another way: never a payload, never an error.
    other = hashlib.blake2b(signed.encode(), key=key[::-1], digest_size=16).hexdigest()
    assert signer.verify(signed + other, 60) is None
    hmac_sha256 = hmac.digest(key, signed.encode(), "sha256").hex()[:32]
    assert signer.verify(signed + hmac_sha256, 60) is None


def test_values_of_the_format_before_still_verify() -> None:
    """`payload.time.signature` (releases up to 0.1.0): HMAC-SHA256 with the key of
    "wxauth_middleware.key " + purpose, unpadded base64url. A session cookie written by them
    stays valid until its max_age, a stored session's id and its stored payload too."""
    clock = Clock()
    key = hmac.digest(NEW, b"wxauth_middleware.key p", "sha256")

    def signed(text: bytes, pad: bool = False, purpose_key: bytes = key) -> str:
        data = urlsafe_b64encode(text)
        value = (data if pad else data.rstrip(b"=")) + b"." + str(int(clock.now)).encode()
        mac = urlsafe_b64encode(hmac.digest(purpose_key, value, "sha256")).rstrip(b"=")
        return (value + b"." + mac).decode()

    payload = ["小明", 1, None, [True]]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    signer = Signer((OLD, NEW), "p", clock)
    assert signer.verify(signed(text), 60) == (payload, int(clock.now))
    assert signer.verify(signed(b'["x"]', pad=True), 60) == (["x"], int(clock.now))
    # Signed with the key, but not what `sign` wrote: never a payload, never an error.
    for text in (b'["x"] 1', b' ["x"]', b'["x"]x', b"\xff", b"", b"[1"):
        assert signer.verify(signed(text), 60) is None
    # Another purpose's key, tampered, expired: no.
    other = hmac.digest(NEW, b"wxauth_middleware.key q", "sha256")
    assert signer.verify(signed(b"1", purpose_key=other), 60) is None
    assert signer.verify(signed(b"1")[:-1], 60) is None
    value = signed(b"1")
    clock.now += 61
    assert signer.verify(value, 60) is None

    # A session cookie of the layout before (its version, the openid, the profile, the
    # privileges, the scope, the two flags), as the release before wrote it.
    clock.now -= 61
    session_key = hmac.digest(NEW, b"wxauth_middleware.key wxauth_middleware.session", "sha256")
    old_layout = [1, USER.openid, USER.unionid, USER.nickname, USER.headimgurl, USER.sex]
    old_layout += [USER.province, USER.city, USER.country, ["chinaunicom"], USER.scope]
    old_layout += [False, True]
    text = json.dumps(old_layout, ensure_ascii=False, separators=(",", ":")).encode()
    codec = SessionCodec((NEW,), 60, clock=clock)
    value = signed(text, purpose_key=session_key)
    assert codec.decode(value) == Session(USER, True)
    clock.now += 61
    assert codec.decode(value) is None


def test_session_payloads_are_compact_and_every_field_kept() -> None:
    # Without a profile: `openid~scope~flags`, signed as it is (no JSON, no base64).
    plain = WeChatUser(openid="o1-_A")
    assert session_payload(Session(plain)) == "o1-_A~snsapi_base~0"
    assert session_payload(Session(plain, True)) == "o1-_A~snsapi_base~2"
    snapshot = WeChatUser(openid="o2", is_snapshot_user=True, scope="snsapi_login")
    assert session_payload(Session(snapshot, True)) == "o2~snsapi_login~3"
    codec = SessionCodec((NEW,), 3600)
    assert codec.encode(Session(plain)).split(".")[2] == "~o1-_A~snsapi_base~0"
    # With a profile, or an openid of other characters: the list, the openid first.
    with_unionid = WeChatUser(openid="o3", unionid="u3")
    assert session_payload(Session(with_unionid))[:5] == ["o3", "snsapi_base", False, False, "u3"]
    odd = WeChatUser(openid="o~4.é")
    assert session_payload(Session(odd)) == ["o~4.é", "snsapi_base", False, False, *[None] * 7, []]
    for user in (plain, snapshot, with_unionid, odd, USER, replace(USER, privilege=())):
        for declined in (False, True):
            assert codec.decode(codec.encode(Session(user, declined))) == Session(user, declined)
    forger = Signer((NEW,), "wxauth_middleware.session", time.time)
    for wrong in ("o~snsapi_base", "o~snsapi_base~4", "o~snsapi_base~0~0", "~snsapi_base~0"):
        assert codec.decode(forger.sign(wrong)) is None, wrong


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


def test_a_visitor_who_keeps_coming_stays_remembered() -> None:
    # Two generations: a value asked for again from the older one moves to the younger, so
    # a regular visitor is not forgotten however many others come and go.
    codec = SessionCodec((NEW,), max_age=None)
    regular = codec.encode(Session(WeChatUser(openid="regular")))
    others = [codec.encode(Session(WeChatUser(openid=f"o{i}"))) for i in range(3000)]
    assert codec.decode(regular) is not None
    for i, value in enumerate(others):
        assert codec.decode(value) is not None
        if i % 300 == 0:
            assert codec.decode(regular) is not None
        assert regular in codec._verified._young or regular in codec._verified._old
        assert len(codec._verified) <= 1024
    assert others[0] not in codec._verified._young
    assert others[0] not in codec._verified._old


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
    version, stamp, data, mac = value.split(".")
    flip = {"0": "1"}.get(mac[-1], "0")
    for changed in (
        f"{version}.{int(stamp) + 1}.{data}.{mac}",  # the time is signed too
        f"{version}.{stamp}.{data[:-1]}{'A' if data[-1] != 'A' else 'B'}.{mac}",
        f"{version}.{stamp}.{data}.{mac[:-1]}",
        f"{version}.{stamp}.{data}.{mac[:-1]}{flip}",
        f"{version}.{stamp}.{data}.{mac.upper()}",
        f"{version}.{stamp}.{data}",
        f"3.{stamp}.{data}.{mac}",  # the version is signed too
        f"{stamp}.{data}.{mac}",
        value + ".",
        value + "é",
        value + "x" * 5000,
        "2.",
        "2." + "0" * 32,
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


def test_the_signing_purposes_are_part_of_the_cookie_format() -> None:
    # Each purpose's name goes into its key: renaming one (moving a module, say) would make
    # every cookie, login in progress, clean page and scan form of that purpose invalid at once.
    from wxauth_middleware.cookies import LOGIN_STATE_SALT, SESSION_SALT
    from wxauth_middleware.login.clean_pages import PAGE_SALT
    from wxauth_middleware.scan import flow
    from wxauth_middleware.storage.store import SESSION_ID_SALT

    assert (SESSION_SALT, LOGIN_STATE_SALT, PAGE_SALT, SESSION_ID_SALT) == (
        "wxauth_middleware.session",
        "wxauth_middleware.login-state",
        "wxauth_middleware.callback-page",
        "wxauth_middleware.session-id",
    )
    assert flow._CSRF_SALT == b"wxauth_middleware.scan-confirm\0"


@pytest.mark.anyio
async def test_a_session_cookie_of_the_release_before_still_logs_the_visitor_in(
    stack: Stack,
) -> None:
    # What the release before set after a login (`payload.time.signature`, the 13-field
    # layout), sent back to this one: the same user, through either adapter, without a login;
    # the same cookie with one character changed is no session.
    stack.emulator()
    label = b"wxauth_middleware.key wxauth_middleware.session"
    key = hmac.digest(SECRET_KEY.encode(), label, "sha256")
    layout = [1, "oOld1", None, None, None, None, None, None, None, [], "snsapi_base", False, False]
    data = urlsafe_b64encode(json.dumps(layout, separators=(",", ":")).encode()).rstrip(b"=")
    signed = data + b"." + str(int(time.time()) - 3600).encode()
    mac = urlsafe_b64encode(hmac.digest(key, signed, "sha256")).rstrip(b"=")
    old = (signed + b"." + mac).decode()
    forged = old[:-1] + ("A" if old[-1] != "A" else "B")
    for value, openid in ((old, "oOld1"), (forged, None)):
        async with stack.phone(stack.middleware()) as phone:
            page = await phone.get("/whoami", headers={"cookie": f"wxauth_session={value}"})
            if openid is None:
                assert page.status_code == 302  # no session: a login starts
            else:
                assert page.status_code == 200
                assert page.json()["user"]["openid"] == openid
