"""The contract for what sources remember: unread baselines and directory walks."""

from __future__ import annotations

import pytest

from bridge.errors import StoreError
from bridge.store.base import DirectorySnapshot, Store
from tests.plugins.store import StoreMaker
from tests.store.test_contract import routed


async def test_baselines_are_empty_then_set_by_commit(store: Store) -> None:
    """A tenant has no baselines until a commit sets them; later commits overwrite."""
    assert await store.get_baselines("acme") == {}
    await store.commit("acme", routed(1), baselines={"bob@acme.com": 3, "ann@acme.com": 0})
    await store.commit("acme", routed(2), baselines={"bob@acme.com": 5})
    assert await store.get_baselines("acme") == {"bob@acme.com": 5, "ann@acme.com": 0}
    assert await store.get_baselines("other") == {}


async def test_baselines_are_set_even_when_every_event_is_a_duplicate(store: Store) -> None:
    """A commit with no new event (or no event at all) still stores its baselines."""
    await store.commit("acme", routed(1))
    result = await store.commit("acme", routed(1), baselines={"bob@acme.com": 4})
    assert result.duplicates == 1
    await store.commit("acme", [], baselines={"ann@acme.com": 2})
    assert await store.get_baselines("acme") == {"bob@acme.com": 4, "ann@acme.com": 2}


async def test_commit_without_baselines_keeps_them(store: Store) -> None:
    """A commit that names no baselines leaves the stored ones alone."""
    await store.commit("acme", [], baselines={"bob@acme.com": 7})
    await store.commit("acme", routed(1), new_ver="12")
    assert await store.get_baselines("acme") == {"bob@acme.com": 7}


async def test_baselines_survive_a_restart(store_maker: StoreMaker) -> None:
    """Baselines are durable: a reopened (or restarted) store still has them."""
    async with store_maker.open() as store:
        await store.commit("acme", routed(1), baselines={"bob@acme.com": 9})
    store_maker.restart()
    async with store_maker.open() as store:
        assert await store.get_baselines("acme") == {"bob@acme.com": 9}


async def test_failed_commit_sets_no_baseline(store_maker: StoreMaker) -> None:
    """A commit that fails part-way leaves the baselines as they were."""
    async with store_maker.open() as store:
        await store.commit("acme", [], baselines={"bob@acme.com": 1})
        with store_maker.failing_commit(), pytest.raises(StoreError):
            await store.commit("acme", routed(1, 2), baselines={"bob@acme.com": 2})
        assert await store.get_baselines("acme") == {"bob@acme.com": 1}


async def test_directory_is_none_then_replaced_whole(store: Store) -> None:
    """No walk is stored at first; each put replaces the tenant's snapshot entirely."""
    assert await store.get_directory("acme") is None
    first = DirectorySnapshot(version="v1", members={"a@acme.com": "A|1", "b@acme.com": "B|1"})
    await store.put_directory("acme", first)
    assert await store.get_directory("acme") == first
    second = DirectorySnapshot(version="v2", members={"c@acme.com": "C|2"})
    await store.put_directory("acme", second)
    assert await store.get_directory("acme") == second
    assert await store.get_directory("other") is None


async def test_an_empty_directory_is_not_a_missing_one(store: Store) -> None:
    """A walk that found nobody is stored as an empty snapshot, distinct from none."""
    await store.put_directory("acme", DirectorySnapshot(version="empty", members={}))
    assert await store.get_directory("acme") == DirectorySnapshot(version="empty", members={})
