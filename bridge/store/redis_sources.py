"""The Redis store's operations for what sources remember: baselines, directory walks.

Baselines are written by the COMMIT script, with the events that announce them; here they
are only read. A directory walk is one JSON string per tenant, replaced whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bridge.store.base import DirectorySnapshot
from bridge.store.keys import Keys

__all__ = ["RedisSourcesMixin"]


class RedisSourcesMixin:
    """`get_baselines`, `get_directory` and `put_directory` for `RedisStore`."""

    # Provided by RedisStore: the key schema, the client and the one exception seam.
    _keys: Keys
    _redis: aioredis.Redis
    _run: Callable[[str, Awaitable[Any]], Awaitable[Any]]

    async def get_baselines(self, tenant: str) -> dict[str, int]:
        """The last unread count committed per mailbox of `tenant`."""
        raw = await self._run("get_baselines", self._redis.hgetall(self._keys.baselines(tenant)))
        return {mailbox.decode(): int(unread) for mailbox, unread in raw.items()}

    async def get_directory(self, tenant: str) -> DirectorySnapshot | None:
        """The tenant's last stored directory walk, or None."""
        raw = await self._run("get_directory", self._redis.get(self._keys.directory(tenant)))
        return None if raw is None else DirectorySnapshot.from_json(raw)

    async def put_directory(self, tenant: str, snapshot: DirectorySnapshot) -> None:
        """Replace the tenant's stored directory walk."""
        key = self._keys.directory(tenant)
        await self._run("put_directory", self._redis.set(key, snapshot.to_json()))
