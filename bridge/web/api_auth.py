"""Who is calling the subscription API, and how often they may.

- `Authorization: Bearer <token>`. Admin tokens (`[api] admin_tokens`) are compared in
  constant time, every one of them, whatever matched. Scoped tokens (`ebt_…`, made by
  `POST /v1/tokens` or `exmail-bridge tokens create`) are looked up by their SHA-256, and
  the stored hash is compared in constant time too.
- Nothing about scoped tokens is cached: every request looks its token up in the shared
  store, so a token revoked (`DELETE /v1/tokens/{token_id}`, `exmail-bridge tokens
  revoke`) through any replica or the CLI is refused at its next request on every replica.
  Its rate bucket may linger here, but the lookup refuses it before the bucket is asked.
- Refusals name the reason: 401 for a missing, malformed or unknown token; 403 (from the
  handlers) for a token that may not do what it asked.
- Each token has its own token bucket (`[api] rate_per_s`, `rate_burst`) on each replica;
  beyond it, 429 with `Retry-After`.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict

from aiohttp import web

from bridge.config_api import ApiSection
from bridge.delivery.subscription_model import TOKEN_PREFIX, hash_token
from bridge.delivery.subscription_service import ADMIN_PRINCIPAL, Principal
from bridge.errors import ApiError
from bridge.store.subscriptions import SubscriptionStore

__all__ = ["Authenticator", "RateLimits"]

_MAX_BUCKETS = 10_000  # distinct tokens remembered per replica; the oldest go first


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, "Unauthorized", reason)


class Authenticator:
    """Turns a request's bearer token into a `Principal`, or refuses it."""

    def __init__(self, *, settings: ApiSection, store: SubscriptionStore) -> None:
        self._admin = tuple(t.get_secret_value().encode() for t in settings.admin_tokens)
        self._store = store

    async def principal(self, request: web.Request) -> Principal:
        """The caller; ApiError 401 naming why not."""
        header = request.headers.get("Authorization")
        if not header:
            raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("the Authorization header must be 'Bearer <token>'")
        if self._is_admin(token.encode()):
            return ADMIN_PRINCIPAL
        if token.startswith(TOKEN_PREFIX):
            found = await self._store.token_by_hash(hash_token(token))
            if found is not None and hmac.compare_digest(found.token_hash, hash_token(token)):
                return Principal(token_id=found.id, tenants=found.tenants)
        raise _unauthorized("unknown or revoked token")

    def _is_admin(self, given: bytes) -> bool:
        matched = False
        for admin in self._admin:
            matched |= hmac.compare_digest(admin, given)
        return matched


class RateLimits:
    """One token bucket per token id, refilled at `rate_per_s` up to `burst`."""

    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> None:
        """Spend one request of `key`'s budget; ApiError 429 when there is none."""
        now = time.monotonic()
        tokens, stamp = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens < 1:
            self._remember(key, tokens, now)
            wait_s = (1 - tokens) / self._rate
            raise ApiError(
                429, "Too Many Requests", "rate limit of this token exceeded", retry_after_s=wait_s
            )
        self._remember(key, tokens - 1, now)

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
