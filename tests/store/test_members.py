"""Membership signals (both stores): leave, announce, wait_members; Redis across replicas."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from tests.plugins.store import StoreMaker


async def test_announce_wakes_a_membership_waiter(store: Store) -> None:
    """A waiter returns soon after an announcement instead of at its timeout."""
    await store.wait_members(0)  # subscribed before anyone announces
    waiter = asyncio.create_task(store.wait_members(600))
    await store.announce()
    async with asyncio.timeout(10):
        await waiter


async def test_wait_members_times_out_when_nothing_happens(store: Store) -> None:
    """Without an announcement the wait ends at its timeout, not before or never."""
    await store.wait_members(0)
    await store.wait_members(0.05)


async def test_leave_forgets_the_heartbeat_and_wakes_waiters(store: Store) -> None:
    """A replica that leaves is no longer live, and the waiters hear of it at once."""
    await store.heartbeat("r1", 30)
    await store.heartbeat("r2", 30)
    await store.wait_members(0)
    waiter = asyncio.create_task(store.wait_members(600))
    await store.leave("r1")
    async with asyncio.timeout(10):
        await waiter
    assert await store.live_owners() == ["r2"]


async def test_redis_announcement_reaches_another_replica(redis_store_maker: StoreMaker) -> None:
    """On Redis one replica's announcement wakes the other replica's waiter."""
    async with redis_store_maker.open() as one, redis_store_maker.open() as other:
        await other.wait_members(0)
        waiter = asyncio.create_task(other.wait_members(600))
        await one.leave("gone")
        async with asyncio.timeout(10):
            await waiter


async def test_redis_waiter_survives_cancellation(redis_store_maker: StoreMaker) -> None:
    """A wait cut short by cancellation leaves a subscription that works next time."""
    async with redis_store_maker.open() as one, redis_store_maker.open() as other:
        waiter = asyncio.create_task(other.wait_members(600))
        await asyncio.sleep(0.05)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await other.wait_members(0)
        again = asyncio.create_task(other.wait_members(600))
        await one.announce()
        async with asyncio.timeout(10):
            await again
