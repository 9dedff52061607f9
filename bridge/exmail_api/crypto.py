"""WXBizMsgCrypt, the callback encryption Exmail's new API shares with WeCom.

    key    = base64decode(EncodingAESKey + "=")              (43 characters -> 32 bytes)
    plain  = random(16) | uint32_be(len(msg)) | msg | receive_id   (receive_id = CorpID)
    cipher = AES-256-CBC(key, iv = key[:16], PKCS#7 padding to a 32-byte block)
    msg_signature = sha1(sorted([token, timestamp, nonce, encrypt]) joined).hexdigest()

Built on `cryptography`; checked against Tencent's published vectors and against
`wechatpy` (tests/exmail_api/test_crypto.py). Every failure is a `CallbackRefused`, never
an IndexError from a hostile length field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bridge.errors import CallbackRefused

__all__ = ["CallbackCrypto", "signature"]

BLOCK = 32  # WXBizMsgCrypt pads to 32 bytes, not to the AES block of 16
_PREFIX = 16  # random bytes before the length


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The `msg_signature` of an encrypted message."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324  (the scheme's hash)


class CallbackCrypto:
    """Verifies, decrypts and encrypts one tenant's callback messages."""

    def __init__(self, *, token: str, aes_key: str, receive_id: str) -> None:
        key = base64.b64decode(aes_key + "=")
        if len(key) != 32:
            raise ValueError("the EncodingAESKey must be 43 base64 characters")
        self._token = token
        self._key = key
        self.receive_id = receive_id

    def __repr__(self) -> str:
        return f"CallbackCrypto(receive_id={self.receive_id!r})"  # never the token or key

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise CallbackRefused("signature") unless the signature matches (constant time)."""
        expected = signature(self._token, timestamp, nonce, encrypt).encode()
        if not msg_signature or not hmac.compare_digest(expected, msg_signature.encode()):
            raise CallbackRefused("signature")

    def decrypt(self, encrypt: str) -> bytes:
        """The message inside `encrypt`; CallbackRefused("corp") if it is another corp's."""
        plain = _unpad(self._cipher_op(_b64(encrypt), decrypt=True))
        if len(plain) < _PREFIX + 4:
            raise CallbackRefused("malformed")
        (length,) = struct.unpack(">I", plain[_PREFIX : _PREFIX + 4])
        body = plain[_PREFIX + 4 :]
        if length > len(body):
            raise CallbackRefused("malformed")
        if not hmac.compare_digest(body[length:], self.receive_id.encode()):
            raise CallbackRefused("corp")
        return body[:length]

    def encrypt(self, message: bytes, *, prefix: bytes | None = None) -> str:
        """`message` encrypted for this receive id (what Tencent sends; the simulator uses it)."""
        head = prefix if prefix is not None else os.urandom(_PREFIX)
        plain = head + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        return base64.b64encode(self._cipher_op(_pad(plain), decrypt=False)).decode()

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """The signature Tencent puts on `encrypt` (for the simulator and tests)."""
        return signature(self._token, timestamp, nonce, encrypt)

    def _cipher_op(self, data: bytes, *, decrypt: bool) -> bytes:
        cipher = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))
        op = cipher.decryptor() if decrypt else cipher.encryptor()
        return op.update(data) + op.finalize()


def _b64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CallbackRefused("malformed") from exc
    if not raw or len(raw) % 16:
        raise CallbackRefused("malformed")
    return raw


def _pad(data: bytes) -> bytes:
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def _unpad(data: bytes) -> bytes:
    amount = data[-1]
    if not 1 <= amount <= BLOCK or data[-amount:] != bytes([amount]) * amount:
        raise CallbackRefused("malformed")
    return data[:-amount]
