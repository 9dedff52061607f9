"""Signed, expiring session cookies and CSRF tokens for the /me page.

The cookie is `<payload>.<signature>`, both base64url without padding: the payload is the
JSON array `[corp_id, userid, sid, expires_at]`, the signature an HMAC-SHA256 of
`s1.<payload>` under the page's key (`[me] session_secret`, else a random key generated
once and kept in the store, so every replica and restart agrees). Nothing is stored per
session: an expired or tampered cookie simply reads as "not signed in".

The CSRF token of a session is an HMAC of its random `sid`: a form posted without it, or
with another session's, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

__all__ = ["Session", "SessionSigner"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in member of `corp_id`, until `expires_at` (unix seconds)."""

    corp_id: str
    userid: str
    sid: str
    expires_at: int


class SessionSigner:
    """Issues and reads session cookies; makes and checks CSRF tokens."""

    def __init__(
        self, *, key: bytes, corp_id: str, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        if len(key) < 16:
            raise ValueError("the session key needs at least 16 bytes")
        self._key = key
        self._corp_id = corp_id
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, purpose: str, payload: str) -> str:
        message = f"{purpose}.{payload}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def issue(self, userid: str) -> tuple[Session, str]:
        """A new session for `userid` and its cookie value."""
        session = Session(
            corp_id=self._corp_id,
            userid=userid,
            sid=secrets.token_urlsafe(16),
            expires_at=int(self._clock() + self.ttl_s),
        )
        doc = [session.corp_id, session.userid, session.sid, session.expires_at]
        payload = _b64(orjson.dumps(doc))
        return session, f"{payload}.{self._mac('s1', payload)}"

    def read(self, value: str) -> Session | None:
        """The session in a cookie value; None when malformed, tampered, foreign or expired."""
        payload, dot, signature = value.partition(".")
        if not dot or not hmac.compare_digest(signature, self._mac("s1", payload)):
            return None
        session = _session(_unb64(payload))
        if session is None or session.corp_id != self._corp_id:
            return None
        return session if session.expires_at > self._clock() else None

    def csrf(self, session: Session) -> str:
        """The CSRF token every form of this session carries."""
        return self._mac("csrf", session.sid)

    def csrf_ok(self, session: Session, token: str) -> bool:
        """Whether `token` is this session's CSRF token."""
        return bool(token) and hmac.compare_digest(token, self.csrf(session))


def _session(raw: bytes | None) -> Session | None:
    try:
        corp_id, userid, sid, expires_at = orjson.loads(raw or b"")
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    if not all(isinstance(v, str) and v for v in (corp_id, userid, sid)):
        return None
    if not isinstance(expires_at, int):
        return None
    return Session(corp_id=corp_id, userid=userid, sid=sid, expires_at=expires_at)
