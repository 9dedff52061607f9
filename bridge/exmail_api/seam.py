"""The one place where the new API's errcodes become bridge errors.

The new API (and WeCom's `qyapi`, which shares its conventions) answers
`{"errcode": 0, "errmsg": "ok", ...}`; any other errcode is an error whatever the HTTP
status. Codes (research/exmail-new-api.md §2.6): 40001/40014/42001 on a call mean the
token is bad or expired (refresh once); on `gettoken` they mean the credential is bad.
-1 (busy), 45009 and 45033 (rate limits) mean back off.
"""

from __future__ import annotations

from typing import Any

from bridge import metrics
from bridge.errors import (
    CredentialsError,
    RateLimited,
    TokenInvalidError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)

__all__ = ["BACKOFF_S", "TOKEN_ERRCODES", "error_for", "judge"]

TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# the credential itself: bad secret, bad corp id, app disabled, untrusted IP
CREDENTIAL_ERRCODES = frozenset({40001, 40013, 40091, 40056, 48002, 60020})
# back off this long before the next try (the providers name no Retry-After)
BACKOFF_S = {-1: 2.0, 45009: 60.0, 45033: 5.0}
# this request is wrong (unknown user, bad parameter): retrying will not help
REJECTED_ERRCODES = frozenset({40003, 40035, 60102, 60103, 60111, 46004})


def error_for(provider: str, endpoint: str, errcode: int, errmsg: str) -> UpstreamError:
    """The bridge error for an errcode of `endpoint` (counted in metrics)."""
    code = str(errcode)
    metrics.upstream_error(f"{provider}/{endpoint}", code)
    kw: dict[str, Any] = {"provider": provider, "endpoint": endpoint, "code": code}
    if endpoint == "gettoken" and errcode not in BACKOFF_S:
        return CredentialsError("token request refused", **kw)
    if errcode in TOKEN_ERRCODES:
        return TokenInvalidError("access token rejected", **kw)
    if errcode in CREDENTIAL_ERRCODES:
        return CredentialsError("credential refused", **kw)
    if errcode in BACKOFF_S:
        kind = UpstreamUnavailable if errcode == -1 else RateLimited
        return kind("provider busy", retry_after_s=BACKOFF_S[errcode], **kw)
    if errcode in REJECTED_ERRCODES:
        return UpstreamRejected(f"request rejected: {errmsg[:80]}", **kw)
    return UpstreamUnavailable(f"upstream error: {errmsg[:80]}", **kw)


def judge(provider: str, endpoint: str, status: int, doc: Any) -> dict[str, Any]:
    """The JSON object of an answer, or the bridge error it stands for."""
    if isinstance(doc, dict) and _errcode(doc):
        raise error_for(provider, endpoint, _errcode(doc), str(doc.get("errmsg") or ""))
    if status == 429 or status >= 500:
        metrics.upstream_error(f"{provider}/{endpoint}", str(status))
        kind = RateLimited if status == 429 else UpstreamUnavailable
        raise kind("server busy", provider=provider, endpoint=endpoint, code=str(status))
    if status != 200 or not isinstance(doc, dict):
        metrics.upstream_error(f"{provider}/{endpoint}", "shape")
        raise UpstreamProtocolError(
            f"unusable answer (HTTP {status})", provider=provider, endpoint=endpoint, code="shape"
        )
    return doc


def _errcode(doc: dict[str, Any]) -> int:
    raw = doc.get("errcode") or 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        return -1  # an errcode we cannot read is treated as "busy": back off, try again
