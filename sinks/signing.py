"""Standard Webhooks signatures: sign what the webhook sink sends, verify what a receiver got.

A secret is `whsec_<base64 key>`. The signed message is `"{id}.{timestamp}.{body}"` over the
exact body bytes; the `webhook-signature` header carries one `v1,<base64 HMAC-SHA256>` per
secret, space-separated, so a receiver holding either the old or the new secret accepts the
message while secrets rotate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

__all__ = [
    "SECRET_PREFIX",
    "TOLERANCE_S",
    "decode_secret",
    "sign",
    "signature_header",
    "signed_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
# Receivers reject timestamps further than this from their clock (replay protection).
TOLERANCE_S = 300.0


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after whsec_ is not valid base64") from exc
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` signature."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per key, space-separated."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)


def signed_headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` for one request."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, msg_id, timestamp, body),
    }


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_s: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """True when the timestamp is fresh and one `v1` signature matches one of `secrets`.

    `headers` must be case-insensitive (aiohttp's `request.headers` is) or lower-cased.
    """
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        return False
    moment = time.time() if now_s is None else now_s
    if abs(moment - int(stamp)) > tolerance_s:
        return False
    given = headers.get("webhook-signature", "").split()
    for secret in secrets:
        expected = sign(decode_secret(secret), msg_id, int(stamp), body)
        if any(hmac.compare_digest(expected, item) for item in given):
            return True
    return False
