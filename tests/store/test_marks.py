"""The store's short-lived marks (callback replay guard): contract for both backends."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from tests.plugins.store import StoreMaker


async def test_first_mark_wins_then_it_is_seen(store: Store) -> None:
    """mark() reports the keys it newly marked; marked() sees them; others stay unmarked."""
    assert await store.marked(["sig:nonce"]) == set()
    assert await store.mark(["sig:nonce", "sig:two"], 600) == {"sig:nonce", "sig:two"}
    assert await store.mark(["sig:nonce", "sig:three"], 600) == {"sig:three"}
    assert await store.marked(["sig:nonce", "sig:other", "sig:three"]) == {"sig:nonce", "sig:three"}


async def test_empty_key_lists_are_fine(store: Store) -> None:
    """Empty lists mark and find nothing."""
    assert await store.mark([], 600) == set()
    assert await store.marked([]) == set()


async def test_concurrent_marks_have_one_winner(store: Store) -> None:
    """Twenty racing marks of one key: exactly one of them is first."""
    results = await asyncio.gather(*(store.mark(["race"], 600) for _ in range(20)))
    assert results.count({"race"}) == 1
    assert results.count(set()) == 19


async def test_a_mark_expires(store: Store) -> None:
    """After its TTL a mark is gone and the key can be marked again."""
    assert await store.mark(["short"], 0.2) == {"short"}
    while await store.marked(["short"]):
        await asyncio.sleep(0.05)
    assert await store.mark(["short"], 600) == {"short"}


async def test_marks_are_shared_between_store_instances(store_maker: StoreMaker) -> None:
    """A mark made through one open store is seen through another (replicas share it)."""
    async with store_maker.open() as first, store_maker.open() as second:
        assert await first.mark(["shared"], 600) == {"shared"}
        assert await second.marked(["shared"]) == {"shared"}
        assert await second.mark(["shared"], 600) == set()


async def test_marks_survive_a_restart(store_maker: StoreMaker) -> None:
    """Marks are in the store, not in memory: they outlive the process that made them."""
    async with store_maker.open() as store:
        assert await store.mark(["durable"], 600) == {"durable"}
    store_maker.restart()
    async with store_maker.open() as store:
        assert await store.marked(["durable"]) == {"durable"}
