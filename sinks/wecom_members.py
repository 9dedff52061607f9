"""Mailbox -> WeCom userid: the static `users` map, then an email lookup, both cached.

WeCom blocks `get_userid_by_email` for a day when too many lookups fail, so a miss is
cached as carefully as a hit, and concurrent lookups of one mailbox share one request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = ["EmailLookup", "MemberDirectory"]

HIT_TTL_S = 86400.0  # a member's email rarely moves to another member
MISS_TTL_S = 3600.0  # a new member shows up within an hour
MAX_ENTRIES = 100_000  # hits and misses; a mail flood to random addresses must not grow it


class EmailLookup(Protocol):
    """`user/get_userid_by_email` of some WeCom app (the sink's, or a wecom-mail tenant's)."""

    async def userid_by_email(self, email: str) -> str | None:
        """The member's userid, or None when WeCom knows no such member."""


class MemberDirectory:
    """Finds the WeCom member who owns a mailbox."""

    def __init__(
        self,
        *,
        api: EmailLookup,
        users: Mapping[str, str],
        lookup_email: bool,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._api = api
        self._static = {mailbox.lower(): userid for mailbox, userid in users.items()}
        self._lookup = lookup_email
        self._clock = clock
        self._cache: dict[str, tuple[str | None, float]] = {}  # insertion order = age
        self._max = max_entries
        self._inflight: dict[str, asyncio.Future[str | None]] = {}

    async def userid_for(self, mailbox: str) -> str | None:
        """The member's userid, or None when no member owns `mailbox`."""
        key = mailbox.lower()
        if key in self._static:
            return self._static[key]
        if not self._lookup:
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        if key in self._inflight:
            return await asyncio.shield(self._inflight[key])
        return await self._look_up(key)

    async def _look_up(self, key: str) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            userid = await self._api.userid_by_email(key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited future never warns
            raise
        else:
            ttl_s = HIT_TTL_S if userid else MISS_TTL_S
            self._remember(key, userid, self._clock() + ttl_s)
            future.set_result(userid)
            return userid
        finally:
            del self._inflight[key]

    def _remember(self, key: str, userid: str | None, until: float) -> None:
        self._cache.pop(key, None)
        self._cache[key] = (userid, until)
        if len(self._cache) <= self._max:
            return
        now = self._clock()
        for stale in [k for k, (_, expiry) in self._cache.items() if expiry <= now]:
            del self._cache[stale]
        while len(self._cache) > self._max:  # still full of live entries: drop the oldest
            del self._cache[next(iter(self._cache))]

    def __len__(self) -> int:
        """Cached hits and misses."""
        return len(self._cache)
