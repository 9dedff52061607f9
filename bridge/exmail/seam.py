"""The one place where aiohttp's exceptions and Exmail's error bodies become bridge errors.

Exmail reports errors with HTTP 200 as `{"errcode":"1200","error":"invalid_token"}`
(`errcode` a string, sometimes a number): any body carrying `errcode` or `error` is an
error whatever the status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

__all__ = ["error_for_body", "error_for_status", "is_error_body", "translated"]

_UNAVAILABLE = frozenset({"1002"})
_INVALID_TOKEN = frozenset({"1200"})
_REJECTED = frozenset({"1301", "1310", "1400"})


def is_error_body(obj: Any) -> bool:
    """Whether a decoded JSON value is an Exmail error."""
    return isinstance(obj, dict) and ("errcode" in obj or "error" in obj)


def error_for_body(endpoint: str, obj: dict[str, Any]) -> UpstreamError:
    """The bridge error for an Exmail error body (counted in metrics)."""
    code = str(obj.get("errcode", "")).strip()
    name = str(obj.get("error", ""))
    metrics.upstream_error(endpoint, code or name)
    if endpoint == "token" and code not in _UNAVAILABLE:
        return CredentialsError("token request refused", endpoint=endpoint, code=code or name)
    if code in _INVALID_TOKEN or name == "invalid_token":
        return TokenInvalidError("access token rejected", endpoint=endpoint, code=code)
    if code in _REJECTED:
        return UpstreamRejected(f"request rejected: {name}", endpoint=endpoint, code=code)
    # 1002 and any code we do not know: transient until proven otherwise.
    return UpstreamUnavailable(f"upstream error: {name}", endpoint=endpoint, code=code)


def error_for_status(endpoint: str, status: int, retry_after: str | None) -> UpstreamError:
    """The bridge error for a non-200 answer without an Exmail error body."""
    code = str(status)
    metrics.upstream_error(endpoint, code)
    if status == 429:
        return RateLimited(
            "rate limited", endpoint=endpoint, code=code, retry_after_s=_seconds(retry_after)
        )
    if status >= 500:
        return UpstreamUnavailable(
            "server error", endpoint=endpoint, code=code, retry_after_s=_seconds(retry_after)
        )
    if endpoint == "token":
        return CredentialsError("token request refused", endpoint=endpoint, code=code)
    if status == 401:
        return TokenInvalidError("access token rejected", endpoint=endpoint, code=code)
    return UpstreamRejected("request rejected", endpoint=endpoint, code=code)


def protocol_error(endpoint: str, kind: str) -> UpstreamProtocolError:
    """An answer that could not be used (`json`, `oversized`, `shape`)."""
    metrics.upstream_error(endpoint, kind)
    return UpstreamProtocolError(f"unusable answer: {kind}", endpoint=endpoint, code=kind)


@asynccontextmanager
async def translated(endpoint: str) -> AsyncIterator[None]:
    """Translate aiohttp and timeout exceptions raised inside the block."""
    try:
        yield
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        metrics.upstream_error(endpoint, "timeout")
        raise UpstreamTimeout("timed out", endpoint=endpoint, code="timeout") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise protocol_error(endpoint, "reset") from exc
    except (aiohttp.ClientError, OSError) as exc:
        metrics.upstream_error(endpoint, "connection")
        raise UpstreamUnavailable(
            f"connection failed: {type(exc).__name__}", endpoint=endpoint, code="connection"
        ) from exc


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
