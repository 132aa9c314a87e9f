"""WeChat's message encryption (消息加解密) of the events pushed to a third-party platform,
as wechat-protocol.md §14 describes it, done with `cryptography` (never by hand):

- `msg_signature` = hex SHA-1 of the sorted token, timestamp, nonce and Encrypt, joined;
- Encrypt = base64 of AES-256-CBC, key = base64decode(EncodingAESKey + "="), IV = key[:16],
  of 16 random bytes + a 4-byte big-endian length + the message + the receive id (the
  component_appid), padded PKCS#7 to 32-byte blocks.

Also the strict XML reading of what WeChat sends: no DTD, no entity, no processing
instruction, a bounded size; a body that has any of them is refused, not expanded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

__all__ = [
    "MAX_BODY",
    "MessageCipher",
    "MessageError",
    "aes_key",
    "msg_signature",
    "parse_xml",
    "signature_matches",
]

# What an event may weigh at most: WeChat's are well under 2 KiB.
MAX_BODY = 64 * 1024
_BLOCK = 32
_AES_KEY = re.compile(r"^[A-Za-z0-9+/]{43}$")
# Markup that may declare anything: a DTD (entities are declared there, so none can be
# defined; expat refuses an undefined one), a comment, an instruction other than the XML
# declaration. CDATA sections, which WeChat's messages use, are plain text.
_FORBIDDEN = re.compile(rb"<!(?!\[CDATA\[)|<\?(?!xml[\s?])")


class MessageError(ValueError):
    """An event that cannot be trusted or read: a bad signature, undecryptable, malformed
    or for another receiver. The message never holds a key or the plaintext."""


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey. ValueError if it is not one."""
    if not isinstance(encoding_aes_key, str) or not _AES_KEY.match(encoding_aes_key):
        raise ValueError("an EncodingAESKey is 43 characters: letters and digits")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("the EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise ValueError("the EncodingAESKey does not make a 32-byte key")
    return key


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeChat's msg_signature of an encrypted message."""
    joined = "".join(sorted((token, timestamp, nonce, encrypt)))
    return hashlib.sha1(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def signature_matches(token: str, timestamp: str, nonce: str, encrypt: str, given: str) -> bool:
    expected = msg_signature(token, timestamp, nonce, encrypt)
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8", "replace"))


class MessageCipher:
    """Encrypts and decrypts the messages of one receiver (a platform's component_appid)."""

    __slots__ = ("_key", "receive_id")

    def __init__(self, encoding_aes_key: str, receive_id: str) -> None:
        self._key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def __repr__(self) -> str:
        return f"MessageCipher(receive_id={self.receive_id!r}, ...)"

    def _cipher(self) -> Cipher[modes.CBC]:
        # Imported when used: `cryptography` is the [platform] extra's.
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        """The Encrypt of `message` (the emulator's side, and tests'): base64 text."""
        from cryptography.hazmat.primitives import padding

        body = message.encode("utf-8")
        random16 = os.urandom(16) if random16 is None else random16
        if len(random16) != 16:
            raise ValueError("the random prefix is 16 bytes")
        plain = random16 + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        padder = padding.PKCS7(_BLOCK * 8).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt: str) -> str:
        """The message of an Encrypt. Raises MessageError if it does not decrypt to a
        message for this receiver."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise MessageError("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise MessageError("Encrypt is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        # WeChat pads to 32-byte blocks: the pad is 1 to 32 bytes of its own length.
        pad = padded[-1]
        if (
            not 1 <= pad <= _BLOCK
            or len(padded) < pad
            or not hmac.compare_digest(padded[-pad:], bytes([pad]) * pad)
        ):
            raise MessageError("Encrypt does not decrypt (bad padding): wrong key, or forged")
        plain = padded[:-pad]
        if len(plain) < 20:
            raise MessageError("Encrypt decrypts to too short a message")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise MessageError("Encrypt decrypts to a message of a wrong length")
        receive_id = plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise MessageError("the message is for another receiver (its appid is not ours)")
        try:
            return plain[20 : 20 + length].decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("the message is not UTF-8") from None


def parse_xml(body: bytes) -> dict[str, str]:
    """The child elements of an `<xml>` document as a dict of their texts. Raises
    MessageError for anything but a small, plain XML document (a DTD, hence any entity
    of its own, is refused before the parser sees it)."""
    if len(body) > MAX_BODY:
        raise MessageError(f"the XML body is over {MAX_BODY} bytes")
    if _FORBIDDEN.search(body):
        raise MessageError("the XML body has a DTD, a comment or an instruction: refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 - checked above: no DTD, no entity
    except ET.ParseError:
        raise MessageError("the body is not well-formed XML") from None
    if root.tag != "xml" or len(root) > 64:
        raise MessageError("the body is not WeChat's <xml> message")
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
