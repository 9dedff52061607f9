"""The bridge's one exception tree, split by what the caller does next.

    BridgeError
    ├── ConfigError                fatal at start: fix the file (carries ``key``, ``reason``)
    ├── ListenError                fatal at start: an address cannot be bound (``address``)
    ├── UpstreamError              Exmail or WeCom said no (``provider``, ``endpoint``, ``code``)
    │   ├── CredentialsError       bad client_id/secret: park the tenant, alert
    │   ├── TokenInvalidError      the token was revoked or expired: refresh once, retry
    │   ├── UpstreamRejected       this one request is wrong (unknown user, ...): do not retry it
    │   └── UpstreamUnavailable    back off and retry (``retry_after_s`` when known)
    │       ├── RateLimited        the provider asked us to slow down
    │       ├── UpstreamTimeout    connect timeout or a silent socket past its read timeout
    │       └── UpstreamProtocolError  undecodable or oversized body, connection reset
    ├── SinkError                  a delivery failed (``sink``, ``retryable``, ``retry_after_s``)
    ├── InvalidClickToken          a click-through link was refused (``reason``): answer 403
    ├── SignInRefused              a /me sign-in was refused (``reason``): answer a clear page
    ├── InvalidPreferences         a /me form field is wrong (``field``, ``reason``): say so
    ├── CallbackRefused            an Exmail callback was refused (``reason``): answer 401/403
    ├── ApiError                   a /v1/ request was refused (``status``, ``title``, ``detail``):
    │                              answer it as application/problem+json
    └── StoreError                 the outbox or version store failed (``backend``, ``op``)
        └── StoreFullError         the disk or memory behind the store is full

Programmer errors stay ``TypeError``/``ValueError``, outside the root, so ``except
BridgeError`` catches only operational failures. Foreign exceptions (aiohttp, redis,
sqlite3, aiomqtt) are translated at one seam per dependency with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ApiError",
    "BridgeError",
    "CallbackRefused",
    "ConfigError",
    "CredentialsError",
    "InvalidClickToken",
    "InvalidPreferences",
    "ListenError",
    "RateLimited",
    "SignInRefused",
    "SinkError",
    "StoreError",
    "StoreFullError",
    "TokenInvalidError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class BridgeError(Exception):
    """Root of every operational error the bridge raises."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``key`` is the dotted path, ``reason`` says why."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)


class ListenError(BridgeError):
    """A server could not listen on ``address`` (in use, not ours): fatal at start."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on {address}: {reason}")


class UpstreamError(BridgeError):
    """An upstream API (Exmail or WeCom) failed or refused a request."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "exmail",
        endpoint: str = "",
        code: str = "",
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.code = code
        detail = ", ".join(p for p in (endpoint, f"code {code}" if code else "") if p)
        super().__init__(f"{message} ({detail})" if detail else message)


class CredentialsError(UpstreamError):
    """The credential itself is wrong: no retry will help until an operator fixes it."""


class TokenInvalidError(UpstreamError):
    """The access token was rejected: fetch a new one, then retry once."""


class UpstreamRejected(UpstreamError):
    """The request is wrong for this input (unknown mailbox, ...); retrying will not help."""


class UpstreamUnavailable(UpstreamError):
    """A transient failure: back off and retry, after ``retry_after_s`` when given."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "exmail",
        endpoint: str = "",
        code: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, provider=provider, endpoint=endpoint, code=code)


class RateLimited(UpstreamUnavailable):
    """The provider asked us to slow down."""


class UpstreamTimeout(UpstreamUnavailable):
    """Connecting took too long, or a socket stayed silent past its read timeout."""


class UpstreamProtocolError(UpstreamUnavailable):
    """The answer could not be used: not JSON, too large, or cut off mid-response."""


class SinkError(BridgeError):
    """A sink could not deliver an event; ``retryable`` says whether to try again."""

    def __init__(
        self,
        sink: str,
        reason: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        loud: bool = False,
    ) -> None:
        self.sink = sink
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        # A permanent error caused by the sink's own configuration (a wrong secret, an
        # untrusted IP, a 410 Gone): every later delivery will fail the same way.
        self.loud = loud
        kind = "retryable" if retryable else "permanent"
        super().__init__(f"sink {sink}: {reason} ({kind})")


class InvalidClickToken(BridgeError):
    """A click token was refused; `reason` is `malformed`, `forged` or `expired`."""

    def __init__(self, reason: Literal["malformed", "forged", "expired"]) -> None:
        self.reason = reason
        super().__init__(f"click token {reason}")


class SignInRefused(BridgeError):
    """A /me sign-in was refused: `state` (forged, replayed or expired), `code` (WeCom
    refused the code), `outsider` (not a member of the corp), `unavailable` (WeCom down)."""

    def __init__(self, reason: Literal["state", "code", "outsider", "unavailable"]) -> None:
        self.reason = reason
        super().__init__(f"sign-in refused: {reason}")


class InvalidPreferences(BridgeError):
    """A preferences form field cannot be used; `field` names it, `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class CallbackRefused(BridgeError):
    """A callback failed verification; `reason` names why (a metric label and a log field).

    Reasons: `signature` (forged or missing), `corp` (another CorpID), `stale` (timestamp
    outside the window), `replay` (signature and nonce seen before), `oversized`,
    `malformed` (not the envelope, not decryptable).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"callback refused: {reason}")


class ApiError(BridgeError):
    """A subscription-API request was refused; answered as an RFC 9457 problem."""

    def __init__(
        self, status: int, title: str, detail: str, *, retry_after_s: float | None = None
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {title}: {detail}")


class StoreError(BridgeError):
    """The store (SQLite file or Redis) failed an operation."""

    def __init__(self, message: str, *, backend: str, op: str) -> None:
        self.backend = backend
        self.op = op
        super().__init__(f"{backend} store, {op}: {message}")


class StoreFullError(StoreError):
    """The disk or memory behind the store is full; nothing was written."""
