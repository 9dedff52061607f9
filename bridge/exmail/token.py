"""Per-tenant access tokens of the legacy API: the generic single-flight cache, by tenant."""

from __future__ import annotations

from bridge.singleflight import Cached, Fetch, SingleFlightCache

__all__ = ["Fetcher", "Token", "TokenCache"]

Token = Cached[str]
Fetcher = Fetch[str]


class TokenCache(SingleFlightCache[str, str]):
    """Tokens by tenant key; a fetcher answers `(token, expires_in_s)`."""
