"""WeChat's message encryption (wechat-protocol.md §14), held against WeChat's published
samples and against an independent construction written here from the spec's words."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wxauth_middleware.platform.crypto import (
    MessageCipher,
    MessageError,
    msg_signature,
    parse_xml,
    signature_matches,
)

# WeChat's published samples of its message encryption.
KEY_1 = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID_1 = "wxb11529c136998cb6"
ENCRYPT_1 = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)
KEY_2 = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
ENCRYPT_2 = (
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
)


def _by_the_spec(key43: str, random16: bytes, message: bytes, appid: str) -> str:
    """Encrypt as the spec words it, with a hand-made PKCS#7 pad of 32-byte blocks."""
    key = base64.b64decode(key43 + "=")
    plain = random16 + len(message).to_bytes(4, "big") + message + appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def test_wechats_first_sample() -> None:
    cipher = MessageCipher(KEY_1, APPID_1)
    assert cipher.encrypt("我是中文abcd123", b"aaaabbbbccccdddd") == ENCRYPT_1
    assert cipher.decrypt(ENCRYPT_1) == "我是中文abcd123"


def test_wechats_second_sample() -> None:
    assert (
        msg_signature("QDG6eK", "1409659589", "263014780", ENCRYPT_2)
        == "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
    )
    assert MessageCipher(KEY_2, "wx5823bf96d3bd56c7").decrypt(ENCRYPT_2) == "1616140317555161061"


@pytest.mark.parametrize("size", [0, 1, 11, 12, 13, 43, 44, 300])
def test_the_spec_construction(size: int) -> None:
    # Message sizes around the 32-byte block boundary (16 + 4 + n + 18 bytes).
    message = ("消息" * size)[:size]
    expected = _by_the_spec(KEY_1, b"0123456789abcdef", message.encode(), APPID_1)
    cipher = MessageCipher(KEY_1, APPID_1)
    assert cipher.encrypt(message, b"0123456789abcdef") == expected
    assert cipher.decrypt(expected) == message
    assert len(base64.b64decode(expected)) % 32 == 0


def test_the_signature_by_the_spec() -> None:
    parts = ("tok", "1700000000", "n0nce", "ENC")
    expected = hashlib.sha1("".join(sorted(parts)).encode(), usedforsecurity=False).hexdigest()
    assert msg_signature(*parts) == expected
    for given, ok in [(expected, True), (expected.upper(), True), ("0" * 40, False), ("", False)]:
        assert signature_matches("tok", "1700000000", "n0nce", "ENC", given) is ok


def test_another_receiver_or_key_does_not_decrypt() -> None:
    with pytest.raises(MessageError, match="another receiver"):
        MessageCipher(KEY_1, "wx0000000000000000").decrypt(ENCRYPT_1)
    with pytest.raises(MessageError):
        MessageCipher(KEY_2, APPID_1).decrypt(ENCRYPT_1)


@pytest.mark.parametrize(
    "encrypt",
    ["", "not base64!", base64.b64encode(b"x" * 15).decode(), ENCRYPT_1[:-8] + "AAAAAA=="],
)
def test_garbage_does_not_decrypt(encrypt: str) -> None:
    with pytest.raises(MessageError):
        MessageCipher(KEY_1, APPID_1).decrypt(encrypt)


def test_a_lying_length_is_refused() -> None:
    # A well-padded plaintext whose length field points past its end.
    key = base64.b64decode(KEY_1 + "=")
    plain = b"r" * 16 + struct.pack(">I", 999) + b"short" + APPID_1.encode()
    pad = 32 - len(plain) % 32
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
    with pytest.raises(MessageError, match="length"):
        MessageCipher(KEY_1, APPID_1).decrypt(base64.b64encode(data).decode())


def test_xml_with_cdata_is_read() -> None:
    body = b"<xml><AppId><![CDATA[wx1]]></AppId><Encrypt><![CDATA[a+b/c=]]></Encrypt></xml>"
    assert parse_xml(body) == {"AppId": "wx1", "Encrypt": "a+b/c="}


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><A>&a;</A></xml>',
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><A>1</A></xml>',
        b"<xml><A>&undefined;</A></xml>",
        b"<xml><!-- c --><A>1</A></xml>",
        b"<xml><A>1</A>",
        b"<other><A>1</A></other>",
        b"<xml>" + b"<A>1</A>" * 9000 + b"</xml>",
    ],
)
def test_xml_that_is_not_plain_is_refused(body: bytes) -> None:
    with pytest.raises(MessageError):
        parse_xml(body)
