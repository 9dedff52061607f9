"""The Redis store's scoped API tokens (the token half of `SubscriptionStore`).

`RedisTokens` is a mixin of `RedisStore`. The tokens live in one HASH, `SubKeys.tokens()`
(SHA-256 of the token -> record JSON), so authentication is one HGET, read from Redis
every time: a token deleted through any replica or the CLI stops authenticating at its
next request on every replica.

Deleting by id reads the hash (tokens are made by hand, so there are few) and HDELs the
field whose record carries that id; HDEL's count says whether this call removed it, so two
concurrent revocations agree on which of them found the token.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis

from bridge.delivery.subscription_model import ApiToken
from bridge.store.keys import Keys
from bridge.store.subscriptions_redis import SubKeys

__all__ = ["RedisTokens"]


class RedisTokens:
    """The token operations of `RedisStore`."""

    _keys: Keys
    _redis: Redis

    async def _run(self, op: str, call: Awaitable[Any]) -> Any:
        raise NotImplementedError  # provided by RedisStore

    @property
    def _tokens_key(self) -> str:
        return SubKeys(self._keys.prefix).tokens()

    async def put_token(self, token: ApiToken) -> None:
        """Store a scoped token."""
        call = self._redis.hset(self._tokens_key, token.token_hash, token.to_record())
        await self._run("put_token", call)

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None."""
        raw = await self._run("token_by_hash", self._redis.hget(self._tokens_key, token_hash))
        return None if raw is None else ApiToken.from_record(raw)

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, by id."""
        raw = await self._run("list_tokens", self._redis.hvals(self._tokens_key))
        return sorted((ApiToken.from_record(r) for r in raw), key=lambda t: t.id)

    async def delete_token(self, token_id: str) -> bool:
        """Forget the token; False when there was none (or another call removed it first)."""
        hashes = [t.token_hash for t in await self.list_tokens() if t.id == token_id]
        if not hashes:
            return False
        return bool(await self._run("delete_token", self._redis.hdel(self._tokens_key, *hashes)))
