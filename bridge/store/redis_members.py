"""The Redis store's replica membership signals, as a mixin of `RedisStore`.

Heartbeats (`Keys.replicas`) say who is alive; they expire by themselves when a replica
dies. A replica that joins, leaves gracefully or gives leases up also PUBLISHes on
`Keys.members_channel`, and every replica waits on that channel between its lease ticks,
so the others rebalance within a round trip instead of at their next tick. The signal is
only a hint: a lost message costs one tick, never correctness (the leases decide).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from bridge.logs import get_logger
from bridge.store.keys import Keys
from bridge.store.redis_codec import seam

__all__ = ["Membership"]

log = get_logger(__name__)
READ_S = 1.0  # the reader notices `close_feed` within this


class Membership:
    """`leave`, `announce` and `wait_members` for `RedisStore`.

    One reader task per store owns the subscription and sets an event per message;
    waiters only wait on the event. (redis-py can swallow a cancellation that lands in a
    read, so a waiter must never be the one reading.)
    """

    _keys: Keys
    _redis: aioredis.Redis
    _blocking: aioredis.Redis
    _op_timeout_s: float
    _reader: asyncio.Task[None] | None = None
    _heard: asyncio.Event | None = None
    _closing = False

    def _run(self, op: str, call: Awaitable[Any]) -> Awaitable[Any]:
        raise NotImplementedError  # RedisStore's

    async def leave(self, owner: str) -> None:
        """`owner` stops gracefully: drop its heartbeat and tell the others at once."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(self._keys.replicas(), owner)
        pipe.publish(self._keys.members_channel(), b"leave")
        await self._run("leave", pipe.execute())

    async def announce(self) -> None:
        """Tell every replica that membership or lease ownership just changed."""
        await self._run("announce", self._redis.publish(self._keys.members_channel(), b"change"))

    async def wait_members(self, timeout_s: float) -> None:
        """Return when a replica announces a change, or after `timeout_s`."""
        heard = await self._subscribed()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await heard.wait()
        heard.clear()  # several announcements at once: one rebalance

    async def _subscribed(self) -> asyncio.Event:
        if self._heard is None:
            heard = self._heard = asyncio.Event()
            feed = self._blocking.pubsub()
            try:
                async with seam("wait_members", self._op_timeout_s):
                    await feed.subscribe(self._keys.members_channel())
            except BaseException:
                self._heard = None
                await _close(feed)
                raise
            self._reader = asyncio.create_task(self._read(feed, heard), name="members")
        return self._heard

    async def _read(self, feed: PubSub, heard: asyncio.Event) -> None:
        me = asyncio.current_task()
        try:
            # `cancelling()` too: redis-py can swallow the CancelledError of a read, and a
            # reader that outlived its cancellation would hang the loop's shutdown.
            while not self._closing and not (me is not None and me.cancelling()):
                async with seam("wait_members", READ_S + self._op_timeout_s):
                    got = await feed.get_message(ignore_subscribe_messages=True, timeout=READ_S)
                if got is not None:
                    heard.set()
        except Exception as exc:  # only a hint: the lease ticks go on without it
            log.warning("membership_feed_lost", error=str(exc), error_type=type(exc).__name__)
        finally:
            self._heard = None  # the next wait subscribes anew
            heard.set()  # and a waiter now rebalances rather than wait out a dead feed
            await _close(feed)

    async def close_feed(self) -> None:
        """Stop the reader and drop the subscription (the store closes)."""
        self._closing = True
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), READ_S * 2 + self._op_timeout_s)


async def _close(feed: PubSub) -> None:
    with contextlib.suppress(Exception):
        await feed.aclose()  # type: ignore[no-untyped-call]
