"""The one place where aiohttp's exceptions and Exmail's error bodies become bridge errors.

Exmail reports errors with HTTP 200 as `{"errcode":"1200","error":"invalid_token"}`
(`errcode` a string, sometimes a number): any body carrying `errcode` or `error` is an
error whatever the status.

The token endpoint parks a tenant (CredentialsError) only on a documented credential
refusal: an OAuth 2.0 error naming the client (RFC 6749 §5.2) or HTTP 401. Anything else
there (a WAF's 403 page, 408, an error body we do not know) is transient: back off.
Error codes come from the network, so a metric label gets one only from a known set.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import aiohttp

from bridge import metrics
from bridge.errors import (
    CredentialsError,
    RateLimited,
    TokenInvalidError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bridge.netfail import connection_reason

__all__ = [
    "RETRY_AFTER_CAP_S",
    "error_for_body",
    "error_for_status",
    "is_error_body",
    "label_code",
    "translated",
]

RETRY_AFTER_CAP_S = 3600.0  # one answer must not park a tenant for days
_UNAVAILABLE = frozenset({"1002"})
_INVALID_TOKEN = frozenset({"1200"})
_REJECTED = frozenset({"1301", "1310", "1400"})
# RFC 6749 §5.2: the token endpoint's answers that mean "this credential is wrong".
_CREDENTIAL_REFUSALS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})
_KINDS = frozenset({"json", "oversized", "shape", "reset", "timeout", "connection"})
_KNOWN_CODES = _UNAVAILABLE | _INVALID_TOKEN | _REJECTED | _CREDENTIAL_REFUSALS | _KINDS


def label_code(code: str) -> str:
    """`code` when it is one we know (an errcode, an HTTP status, a kind), else `other`."""
    if code in _KNOWN_CODES or (len(code) == 3 and code.isdigit() and code[0] in "12345"):
        return code
    return "other"


def is_error_body(obj: Any) -> bool:
    """Whether a decoded JSON value is an Exmail error."""
    return isinstance(obj, dict) and ("errcode" in obj or "error" in obj)


def error_for_body(endpoint: str, obj: dict[str, Any]) -> UpstreamError:
    """The bridge error for an Exmail error body (counted in metrics)."""
    code = str(obj.get("errcode", "")).strip()
    name = str(obj.get("error", ""))
    label = label_code(code or name)
    metrics.upstream_error(endpoint, label)
    if endpoint == "token":
        return _token_refusal(name, label)
    if code in _INVALID_TOKEN or name == "invalid_token":
        return TokenInvalidError("access token rejected", endpoint=endpoint, code=code)
    if code in _REJECTED:
        return UpstreamRejected(f"request rejected: {name}", endpoint=endpoint, code=code)
    # 1002 and any code we do not know: transient until proven otherwise.
    return UpstreamUnavailable(f"upstream error: {name}", endpoint=endpoint, code=code)


def _token_refusal(name: str, label: str) -> UpstreamError:
    if name in _CREDENTIAL_REFUSALS:
        return CredentialsError("token request refused", endpoint="token", code=name)
    return UpstreamUnavailable("token endpoint error", endpoint="token", code=label)


def error_for_status(endpoint: str, status: int, retry_after: str | None) -> UpstreamError:
    """The bridge error for a non-200 answer without an Exmail error body."""
    code = str(status)
    metrics.upstream_error(endpoint, code)
    if status == 429:
        return RateLimited(
            "rate limited", endpoint=endpoint, code=code, retry_after_s=_seconds(retry_after)
        )
    if status >= 500 or status == 408:
        return UpstreamUnavailable(
            "server error", endpoint=endpoint, code=code, retry_after_s=_seconds(retry_after)
        )
    if endpoint == "token" and status == 401:
        return CredentialsError("token request refused", endpoint=endpoint, code=code)
    if endpoint == "token":  # a proxy's or WAF's page, not Exmail's verdict on the credential
        return UpstreamUnavailable("token endpoint refused", endpoint=endpoint, code=code)
    if status == 401:
        return TokenInvalidError("access token rejected", endpoint=endpoint, code=code)
    return UpstreamRejected("request rejected", endpoint=endpoint, code=code)


def protocol_error(endpoint: str, kind: str) -> UpstreamProtocolError:
    """An answer that could not be used (`json`, `oversized`, `shape`)."""
    metrics.upstream_error(endpoint, kind)
    return UpstreamProtocolError(f"unusable answer: {kind}", endpoint=endpoint, code=kind)


class translated:  # lower case, like contextlib.suppress: it replaced a function
    """Translate aiohttp and timeout exceptions raised inside the `async with` block.

    A class, not an `@asynccontextmanager`: a held listen spends its whole life inside
    one, and a generator frame each is memory 10,000 held listens keep.
    """

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, UpstreamError):
            return
        error = _translation(self.endpoint, exc)
        if error is None:
            return
        # Neither traceback may close a loop, or every broken listen (10,000 in a storm)
        # leaves its response, reader and frames for the full garbage collection: aiohttp
        # keeps the exception in the stream reader that the traceback's frames point at,
        # and `error` is a local of this frame, which its own traceback holds.
        exc.__traceback__ = None
        try:
            raise error from exc
        finally:
            del error


def _translation(endpoint: str, exc: BaseException) -> UpstreamError | None:
    """The bridge error for a foreign exception (counted), or None to let it through."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        metrics.upstream_error(endpoint, "timeout")
        return UpstreamTimeout("timed out", endpoint=endpoint, code="timeout")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return protocol_error(endpoint, "reset")
    if isinstance(exc, aiohttp.ClientError | OSError):
        metrics.upstream_error(endpoint, "connection")
        return UpstreamUnavailable(connection_reason(exc), endpoint=endpoint, code="connection")
    return None


def _seconds(value: str | None) -> float | None:
    """`Retry-After` (seconds or an HTTP date) in seconds, capped at RETRY_AFTER_CAP_S."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(0.0, seconds), RETRY_AFTER_CAP_S)
