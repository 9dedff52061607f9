"""Upstream tokens sealed for the store: AES-GCM under a key only the config can make.

The key is derived (HKDF-SHA256) from the credential's own secret (legacy client secret,
corpsecret, WeCom app secret), which lives only in the config; the credential's store key
is the associated data, so a sealed token moved to another key does not open. A store
dump alone reveals no usable token. The token's expiry is sealed with it: a forged
`expires_at` column cannot make a stale token look fresh.

`open_sealed` answers None for anything it cannot open (a rotated secret, a corrupt or
forged entry, an unknown version): the caller fetches a new token, nothing raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Credential", "Opened", "open_sealed", "seal"]

_VERSION = b"\x01"
_NONCE_BYTES = 12
_SALT = b"exmail-bridge upstream token"
_INFO = b"aes-256-gcm v1"


@dataclass(frozen=True, slots=True)
class Credential:
    """One upstream credential: its store key (`exmail/<tenant>/<client_id>`, ...) and the
    secret its token is fetched with (and sealed under)."""

    key: str
    secret: str

    def __repr__(self) -> str:
        return f"Credential(key={self.key!r})"  # the secret never reaches a log line


@dataclass(frozen=True, slots=True)
class Opened:
    """A token opened from the store and the unix time it expires."""

    token: str
    expires_at: float

    def __repr__(self) -> str:
        return f"Opened(expires_at={self.expires_at:.0f})"


def _aead(secret: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
    return AESGCM(hkdf.derive(secret.encode()))


def seal(credential: Credential, token: str, expires_at: float) -> bytes:
    """`token` and its expiry, encrypted under the credential's secret."""
    nonce = os.urandom(_NONCE_BYTES)
    plain = orjson.dumps({"token": token, "expires_at": expires_at})
    return (
        _VERSION + nonce + _aead(credential.secret).encrypt(nonce, plain, credential.key.encode())
    )


def open_sealed(credential: Credential, sealed: bytes) -> Opened | None:
    """The token sealed by `seal` for this credential, or None when it does not open."""
    if not sealed.startswith(_VERSION) or len(sealed) <= 1 + _NONCE_BYTES:
        return None
    nonce, box = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
    try:
        doc = orjson.loads(_aead(credential.secret).decrypt(nonce, box, credential.key.encode()))
    except (InvalidTag, ValueError):  # ValueError: a short box, or JSON that is not
        return None
    return _opened(doc)


def _opened(doc: object) -> Opened | None:
    if not isinstance(doc, dict):
        return None
    token, expires_at = doc.get("token"), doc.get("expires_at")
    if not isinstance(token, str) or not token or not isinstance(expires_at, int | float):
        return None
    return Opened(token=token, expires_at=float(expires_at))
