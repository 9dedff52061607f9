"""The Redis store's upstream tokens (`UpstreamTokenStore`).

`RedisUpstreamTokens` is a mixin of `RedisStore`. Each token is one STRING,
`Keys.upstream_token`, set with PX to its expiry, so Redis forgets it on time; a load is
one pipelined round trip of MGETs (`LOAD_CHUNK` keys each).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from bridge.store.keys import Keys
from bridge.store.redis_codec import ms
from bridge.store.upstream_tokens import LOAD_CHUNK

__all__ = ["RedisUpstreamTokens"]


class RedisUpstreamTokens:
    """The upstream token operations of `RedisStore`."""

    # Provided by RedisStore: the key schema, the client and the one exception seam.
    _keys: Keys
    _redis: aioredis.Redis
    _run: Callable[[str, Awaitable[Any]], Awaitable[Any]]

    async def load_upstream_tokens(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The unexpired sealed tokens among `keys`: one round trip of MGETs."""
        if not keys:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for at in range(0, len(keys), LOAD_CHUNK):
            pipe.mget([self._keys.upstream_token(k) for k in keys[at : at + LOAD_CHUNK]])
        replies = await self._run("load_upstream_tokens", pipe.execute())
        values = [value for reply in replies for value in reply]
        return {k: bytes(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def save_upstream_token(self, key: str, sealed: bytes, expires_at: float) -> None:
        """Replace the sealed token under `key`; Redis drops it at `expires_at`."""
        ttl_ms = ms(expires_at - time.time())
        name = self._keys.upstream_token(key)
        if ttl_ms <= 0:
            await self._run("save_upstream_token", self._redis.delete(name))
            return
        await self._run("save_upstream_token", self._redis.set(name, sealed, px=ttl_ms))
