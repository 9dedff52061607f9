"""The store's short-lived marks (callback replay guard): contract for both backends."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from tests.plugins.store import StoreMaker


async def test_first_mark_wins_then_it_is_seen(store: Store) -> None:
    """mark() is True once, then False; is_marked() sees it; other keys are unmarked."""
    assert not await store.is_marked("sig:nonce")
    assert await store.mark("sig:nonce", 600)
    assert not await store.mark("sig:nonce", 600)
    assert await store.is_marked("sig:nonce")
    assert not await store.is_marked("sig:other")


async def test_concurrent_marks_have_one_winner(store: Store) -> None:
    """Twenty racing marks of one key: exactly one of them is first."""
    results = await asyncio.gather(*(store.mark("race", 600) for _ in range(20)))
    assert results.count(True) == 1


async def test_a_mark_expires(store: Store) -> None:
    """After its TTL a mark is gone and the key can be marked again."""
    assert await store.mark("short", 0.2)
    while await store.is_marked("short"):
        await asyncio.sleep(0.05)
    assert await store.mark("short", 600)


async def test_marks_are_shared_between_store_instances(store_maker: StoreMaker) -> None:
    """A mark made through one open store is seen through another (replicas share it)."""
    async with store_maker.open() as first, store_maker.open() as second:
        assert await first.mark("shared", 600)
        assert await second.is_marked("shared")
        assert not await second.mark("shared", 600)


async def test_marks_survive_a_restart(store_maker: StoreMaker) -> None:
    """Marks are in the store, not in memory: they outlive the process that made them."""
    async with store_maker.open() as store:
        assert await store.mark("durable", 600)
    store_maker.restart()
    async with store_maker.open() as store:
        assert await store.is_marked("durable")
