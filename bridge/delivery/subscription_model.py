"""Subscriptions, API tokens and delivery attempts: the typed values the store keeps.

Ids are opaque and prefixed (`sub_…`, `tok_…`, `att_…`): a prefix, then a time-sortable
base32 body (48 bits of milliseconds, 80 random bits), so sorting ids sorts by creation
and a cursor is just the last id seen. Times are unix seconds inside the process and
RFC 3339 UTC at the edges (`rfc3339`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

import orjson

from bridge.events import Event

__all__ = [
    "ApiToken",
    "Attempt",
    "SigningSecret",
    "Subscription",
    "hash_token",
    "id_floor",
    "id_time",
    "new_id",
    "new_secret",
    "new_token",
    "parse_rfc3339",
    "rfc3339",
]

AttemptStatus = Literal["succeeded", "failed"]
# Rotating again during a grace period keeps at most this many old secrets signing.
MAX_OLD_SECRETS = 2
TOKEN_PREFIX = "ebt_"  # noqa: S105  (a prefix, not a secret)


def new_id(prefix: str, now_s: float | None = None) -> str:
    """`<prefix>_<26 base32 chars>`, sorting by creation time."""
    millis = int((time.time() if now_s is None else now_s) * 1000)
    return _encode(prefix, millis.to_bytes(6, "big") + secrets.token_bytes(10))


def id_floor(prefix: str, at_s: float) -> str:
    """The smallest id `new_id(prefix, at_s)` can return: ids below it are older."""
    return _encode(prefix, int(at_s * 1000).to_bytes(6, "big") + bytes(10))


def id_time(ident: str) -> float:
    """The unix seconds an id made by `new_id` was made at; ValueError if it is not one."""
    body = ident.partition("_")[2].upper()
    if len(body) != 26:
        raise ValueError("not an id")
    raw = base64.b32hexdecode(body + "======")
    return int.from_bytes(raw[:6], "big") / 1000


def _encode(prefix: str, raw: bytes) -> str:
    # base32hex keeps byte order in ASCII order, so ids sort by time as strings.
    return f"{prefix}_{base64.b32hexencode(raw).decode().lower().rstrip('=')}"


def new_secret() -> str:
    """A fresh `whsec_` signing secret (24 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def new_token() -> str:
    """A fresh API token: shown once, stored only as `hash_token(token)`."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a token, hex. Tokens are 256 random bits, so no salt or stretching."""
    return hashlib.sha256(token.encode()).hexdigest()


def rfc3339(at: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds (`2026-11-29T10:00:00.000Z`)."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Unix seconds from an RFC 3339 time with an offset; ValueError otherwise."""
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. 2026-11-29T10:00:00Z")
    return moment.timestamp()


def _any(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatchcase(value.lower(), pattern.lower()) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """One signing secret; an old one keeps signing until `expires_at` (rotation grace)."""

    value: str
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook sink that lives in the store. `scope` is the creating token's tenants
    (None: made by an admin); it bounds what the subscription may ever receive."""

    id: str
    url: str
    event_types: tuple[str, ...] = ("*",)
    tenants: tuple[str, ...] = ("*",)
    mailboxes: tuple[str, ...] = ("*",)
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SigningSecret, ...] = ()
    scope: tuple[str, ...] | None = None
    disabled: bool = False
    disabled_reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    def matches(self, event: Event) -> bool:
        """Whether `event` is routed here (filters, and never outside `scope`)."""
        if self.scope is not None and event.tenant not in self.scope:
            return False
        return (
            _any(self.event_types, event.type)
            and _any(self.tenants, event.tenant)
            and _any(self.mailboxes, event.mailbox)
        )

    def visible_to(self, tenants: tuple[str, ...] | None) -> bool:
        """Whether a token scoped to `tenants` (None: admin) may see this subscription."""
        if tenants is None:
            return True
        return self.scope is not None and set(self.scope) <= set(tenants)

    def signing_secrets(self, now_s: float) -> tuple[str, ...]:
        """The secrets that sign a request sent at `now_s`: the current one, plus any old
        one still inside its grace period."""
        return tuple(s.value for s in self.secrets if s.expires_at is None or s.expires_at > now_s)

    def rotated(self, secret: str, grace_s: float, now_s: float) -> Subscription:
        """A copy signing with `secret`; the current one keeps signing for `grace_s`."""
        ending = tuple(
            replace(s, expires_at=now_s + grace_s) for s in self.secrets if s.expires_at is None
        )
        graced = tuple(s for s in self.secrets if s.expires_at is not None and s.expires_at > now_s)
        keep = tuple(s for s in (*ending, *graced) if s.expires_at and s.expires_at > now_s)
        return replace(
            self, secrets=(SigningSecret(secret), *keep[:MAX_OLD_SECRETS]), updated_at=now_s
        )

    def to_record(self) -> bytes:
        """The stored JSON (secrets included: the store is trusted, the API is not)."""
        doc = {
            "id": self.id,
            "url": self.url,
            "event_types": self.event_types,
            "tenants": self.tenants,
            "mailboxes": self.mailboxes,
            "description": self.description,
            "metadata": dict(self.metadata),
            "secrets": [[s.value, s.expires_at] for s in self.secrets],
            "scope": self.scope,
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        return orjson.dumps(doc)

    @classmethod
    def from_record(cls, raw: bytes | str) -> Subscription:
        """Inverse of `to_record`."""
        doc: dict[str, Any] = orjson.loads(raw)
        scope = doc.get("scope")
        return cls(
            id=doc["id"],
            url=doc["url"],
            event_types=tuple(doc["event_types"]),
            tenants=tuple(doc["tenants"]),
            mailboxes=tuple(doc["mailboxes"]),
            description=doc.get("description", ""),
            metadata=dict(doc.get("metadata") or {}),
            secrets=tuple(SigningSecret(v, e) for v, e in doc.get("secrets", [])),
            scope=None if scope is None else tuple(scope),
            disabled=bool(doc.get("disabled")),
            disabled_reason=doc.get("disabled_reason", ""),
            created_at=float(doc.get("created_at", 0.0)),
            updated_at=float(doc.get("updated_at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A scoped API token as stored: its hash, never the token."""

    id: str
    token_hash: str
    tenants: tuple[str, ...]
    description: str = ""
    created_at: float = 0.0

    def to_record(self) -> bytes:
        """The stored JSON."""
        return orjson.dumps(
            {
                "id": self.id,
                "token_hash": self.token_hash,
                "tenants": self.tenants,
                "description": self.description,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_record(cls, raw: bytes | str) -> ApiToken:
        """Inverse of `to_record`."""
        doc = orjson.loads(raw)
        return cls(
            id=doc["id"],
            token_hash=doc["token_hash"],
            tenants=tuple(doc["tenants"]),
            description=doc.get("description", ""),
            created_at=float(doc.get("created_at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try to deliver one event to one subscription."""

    id: str
    subscription_id: str
    event_id: str
    event_type: str
    at: float
    status: AttemptStatus
    status_code: int | None
    duration_ms: int
    error: str = ""
    trigger: str = "delivery"  # delivery | test

    def to_record(self) -> bytes:
        """The stored JSON (without the event body, which is kept once per event)."""
        return orjson.dumps(
            {
                "id": self.id,
                "subscription_id": self.subscription_id,
                "event_id": self.event_id,
                "event_type": self.event_type,
                "at": self.at,
                "status": self.status,
                "status_code": self.status_code,
                "duration_ms": self.duration_ms,
                "error": self.error,
                "trigger": self.trigger,
            }
        )

    @classmethod
    def from_record(cls, raw: bytes | str) -> Attempt:
        """Inverse of `to_record`."""
        doc = orjson.loads(raw)
        return cls(**doc)
