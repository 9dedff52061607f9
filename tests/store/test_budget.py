"""The contract of shared send budgets and marks; every test runs against both stores."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from bridge.store.budget import Grant
from tests.plugins.store import StoreMaker

LIMITS = ((3, 60.0), (5, 3600.0))
T0 = 1_800_000_000.0


async def test_take_is_all_then_one_then_none(store: Store) -> None:
    """Two fit, then three do not but one does, then none with the wait until one frees."""
    assert await store.take_budget("bob", 2, LIMITS, T0) == Grant(taken=2)
    assert await store.take_budget("bob", 3, LIMITS, T0 + 1) == Grant(taken=1)
    assert await store.take_budget("bob", 1, LIMITS, T0 + 10) == Grant(taken=0, wait_s=50.0)
    assert await store.take_budget("amy", 3, LIMITS, T0 + 10) == Grant(taken=3)


async def test_minute_frees_but_hour_holds(store: Store) -> None:
    """After a minute the per-minute slots free; the hourly limit still counts them."""
    await store.take_budget("bob", 3, LIMITS, T0)
    assert await store.take_budget("bob", 3, LIMITS, T0 + 61) == Grant(taken=1)
    got = await store.take_budget("bob", 1, LIMITS, T0 + 62)
    assert got == Grant(taken=1)
    late = await store.take_budget("bob", 1, LIMITS, T0 + 63)
    assert (late.taken, late.wait_s) == (0, 3600.0 - 63)


async def test_replicas_share_the_budget(store_maker: StoreMaker) -> None:
    """Two store handles (two replicas) together stay under the limit."""
    async with store_maker.open() as one, store_maker.open() as two:
        assert (await one.take_budget("bob", 2, LIMITS, T0)).taken == 2
        assert (await two.take_budget("bob", 2, LIMITS, T0)).taken == 1
        assert (await one.take_budget("bob", 1, LIMITS, T0)).taken == 0


async def test_mark_only_moves_forward(store: Store) -> None:
    """A mark takes a greater or equal value, refuses a smaller one, and is per key."""
    assert await store.advance_mark("bob", "2026-11-21T05:00:02.000Z", 60)
    assert not await store.advance_mark("bob", "2026-11-21T05:00:01.000Z", 60)
    assert await store.advance_mark("bob", "2026-11-21T05:00:02.000Z", 60)
    assert await store.advance_mark("amy", "2026-11-21T05:00:01.000Z", 60)


async def test_mark_expires(store: Store) -> None:
    """After its TTL a mark is forgotten and any value is taken."""
    assert await store.advance_mark("bob", "9", 0.05)
    await asyncio.sleep(0.1)
    assert await store.advance_mark("bob", "1", 60)
