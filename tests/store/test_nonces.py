"""The store's remembered nonces (callback replay guard): contract for both backends."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from tests.plugins.store import StoreMaker


async def test_first_remember_wins_then_it_is_seen(store: Store) -> None:
    """remember_nonces() reports the keys it newly remembered; nonces_seen() sees them."""
    assert await store.nonces_seen(["sig:nonce"]) == set()
    assert await store.remember_nonces(["sig:nonce", "sig:two"], 600) == {"sig:nonce", "sig:two"}
    assert await store.remember_nonces(["sig:nonce", "sig:three"], 600) == {"sig:three"}
    assert await store.nonces_seen(["sig:nonce", "sig:other", "sig:three"]) == {
        "sig:nonce",
        "sig:three",
    }


async def test_empty_key_lists_are_fine(store: Store) -> None:
    """Empty lists remember and find nothing."""
    assert await store.remember_nonces([], 600) == set()
    assert await store.nonces_seen([]) == set()


async def test_concurrent_remembers_have_one_winner(store: Store) -> None:
    """Twenty racing remembers of one key: exactly one of them is first."""
    results = await asyncio.gather(*(store.remember_nonces(["race"], 600) for _ in range(20)))
    assert results.count({"race"}) == 1
    assert results.count(set()) == 19


async def test_a_nonce_expires(store: Store) -> None:
    """After its TTL a nonce is forgotten and the key can be remembered again."""
    assert await store.remember_nonces(["short"], 0.2) == {"short"}
    while await store.nonces_seen(["short"]):
        await asyncio.sleep(0.05)
    assert await store.remember_nonces(["short"], 600) == {"short"}


async def test_nonces_are_shared_between_store_instances(store_maker: StoreMaker) -> None:
    """A nonce remembered through one open store is seen through another (replicas)."""
    async with store_maker.open() as first, store_maker.open() as second:
        assert await first.remember_nonces(["shared"], 600) == {"shared"}
        assert await second.nonces_seen(["shared"]) == {"shared"}
        assert await second.remember_nonces(["shared"], 600) == set()


async def test_nonces_survive_a_restart(store_maker: StoreMaker) -> None:
    """Nonces are in the store, not in memory: they outlive the process that made them."""
    async with store_maker.open() as store:
        assert await store.remember_nonces(["durable"], 600) == {"durable"}
    store_maker.restart()
    async with store_maker.open() as store:
        assert await store.nonces_seen(["durable"]) == {"durable"}
