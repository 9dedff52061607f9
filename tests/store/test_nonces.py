"""Nonces remembered in the commit (callback replay guard): contract for both backends."""

from __future__ import annotations

import asyncio

from bridge.store.base import CommitResult, Store
from tests.plugins.store import StoreMaker
from tests.store.test_contract import routed


async def _commit(store: Store, *ns: int, nonces: list[str], ttl_s: float = 600) -> CommitResult:
    return await store.commit("acme", routed(*ns), nonces=nonces, nonce_ttl_s=ttl_s)


async def test_a_remembered_nonce_makes_the_commit_write_nothing(store: Store) -> None:
    """A commit naming a remembered nonce writes nothing at all and names that nonce."""
    first = await _commit(store, 1, nonces=["sig:one", "sig:two"])
    assert (first.emitted, first.replayed) == (1, frozenset())
    again = await store.commit(
        "acme", routed(2), "42", {"bob@acme.com": 9}, nonces=["sig:new", "sig:two"]
    )
    assert (again.emitted, again.duplicates, again.replayed) == (0, 0, frozenset({"sig:two"}))
    assert await store.backlog("oa") == 1
    assert await store.get_version("acme") == "0"
    assert await store.get_baselines("acme") == {}
    fresh = await _commit(store, 2, nonces=["sig:new"])  # not remembered by the refused one
    assert (fresh.emitted, fresh.replayed) == (1, frozenset())


async def test_nonces_without_events_are_remembered(store: Store) -> None:
    """Nonces committed without events (ignored callbacks) are remembered too."""
    assert (await _commit(store, nonces=["sig:quiet"])).replayed == frozenset()
    assert (await _commit(store, nonces=["sig:quiet"])).replayed == {"sig:quiet"}
    assert (await _commit(store, 3, nonces=[])).emitted == 1


async def test_concurrent_commits_of_one_nonce_have_one_winner(store: Store) -> None:
    """Twenty racing commits of one nonce: exactly one writes, nineteen are refused."""
    results = await asyncio.gather(*(_commit(store, n, nonces=["race"]) for n in range(20)))
    assert sum(r.replayed == frozenset() for r in results) == 1
    assert sum(r.replayed == {"race"} for r in results) == 19
    assert await store.backlog("oa") == 1


async def test_a_nonce_expires(store: Store) -> None:
    """After its TTL a nonce is forgotten and a commit may name it again."""
    assert (await _commit(store, nonces=["short"], ttl_s=0.2)).replayed == frozenset()
    while (await _commit(store, nonces=["short"])).replayed:
        await asyncio.sleep(0.05)
    assert (await _commit(store, nonces=["short"])).replayed == {"short"}  # 600 s now


async def test_nonces_are_shared_between_store_instances(store_maker: StoreMaker) -> None:
    """A nonce remembered through one store refuses a commit through another (replicas)."""
    async with store_maker.open() as first, store_maker.open() as second:
        assert (await _commit(first, 1, nonces=["shared"])).replayed == frozenset()
        assert (await _commit(second, 2, nonces=["shared"])).replayed == {"shared"}


async def test_nonces_survive_a_restart(store_maker: StoreMaker) -> None:
    """Nonces are in the store, not in memory: they outlive the process that made them."""
    async with store_maker.open() as store:
        assert (await _commit(store, 1, nonces=["durable"])).replayed == frozenset()
    store_maker.restart()
    async with store_maker.open() as store:
        assert (await _commit(store, 2, nonces=["durable"])).replayed == {"durable"}
