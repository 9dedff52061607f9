"""What only the Redis store does: several replicas, leases, OOM and a dead server."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.config import BridgeSection
from bridge.errors import StoreError, StoreFullError
from bridge.store import open_store
from bridge.store.redis import RedisStore
from tests.plugins.services import free_port
from tests.plugins.store import StoreMaker
from tests.store.test_contract import routed


@pytest.fixture
def maker(redis_store_maker: StoreMaker) -> StoreMaker:
    """Short name for the Redis StoreMaker."""
    return redis_store_maker


async def test_open_store_uses_the_prefix(maker: StoreMaker) -> None:
    """open_store picks Redis for a redis:// URL and keeps keys under redis_prefix."""
    assert maker.redis_server is not None
    settings = BridgeSection(store=maker.redis_server.url, redis_prefix=maker.prefix)
    async with open_store(settings) as store:
        assert store.backend == "redis"
        await store.commit("acme", routed(1), new_ver="3")
    async with maker.open() as same:
        assert await same.get_version("acme") == "3"


async def test_out_of_memory_raises_store_full(maker: StoreMaker) -> None:
    """Redis refusing writes for maxmemory is StoreFullError, nothing written, in full()."""
    async with maker.open() as store:
        with maker.failing_commit(), pytest.raises(StoreFullError):
            await store.commit("acme", routed(1), new_ver="2")
        assert await store.get_version("acme") == "0"
        assert store.full() == "store full: redis store, commit: redis is out of memory"
        await store.commit("acme", routed(1), new_ver="2")
        assert store.full() is None


async def test_unreachable_server_raises_store_error() -> None:
    """A refused connection is a StoreError, never a redis exception."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with RedisStore(url=url, prefix="x:", dedupe_window_s=60) as store:
        with pytest.raises(StoreError) as info:
            await store.ping()
    assert info.value.backend == "redis"


async def test_replicas_share_one_outbox(maker: StoreMaker) -> None:
    """Two replicas never claim the same delivery, and a commit on one wakes the other."""
    async with maker.open() as one, maker.open() as two:
        waiter = asyncio.create_task(two.wait("oa", 30.0), name="replica-two-wait")
        await asyncio.sleep(0.05)
        await one.commit("acme", routed(1, 2, 3))
        async with asyncio.timeout(5):
            await waiter
        a = await two.claim("oa", limit=2, lease_s=30)
        b = await one.claim("oa", limit=2, lease_s=30)
        assert sorted(d.event.id for d in a + b) == sorted(r.event.id for r in routed(1, 2, 3))


async def test_a_crashed_replicas_claims_come_back(maker: StoreMaker) -> None:
    """Deliveries claimed by a replica that is gone are claimable once its lease passes."""
    async with maker.open() as crashed:
        await crashed.commit("acme", routed(1, 2))
        assert len(await crashed.claim("oa", limit=10, lease_s=0.1)) == 2
    async with maker.open() as survivor:
        assert await survivor.claim("oa", limit=10, lease_s=30) == []
        await asyncio.sleep(0.15)
        assert len(await survivor.claim("oa", limit=10, lease_s=30)) == 2


async def test_leases_exclude_other_owners_until_they_expire(maker: StoreMaker) -> None:
    """A lease held by one owner is refused to another until released or expired."""
    async with maker.open() as store:
        assert await store.acquire_lease("acme", "r1", 30)
        assert not await store.acquire_lease("acme", "r2", 30)
        await store.release_lease("acme", "r2")
        assert await store.lease_owner("acme") == "r1"
        await store.release_lease("acme", "r1")
        assert await store.acquire_lease("acme", "r2", 0.1)
        assert await store.acquire_leases(["acme", "beta"], "r1", 30) == ["beta"]
        await asyncio.sleep(0.15)
        assert await store.lease_owner("acme") is None
        assert await store.acquire_leases(["acme", "beta"], "r1", 30) == ["acme", "beta"]


async def test_renewal_keeps_a_lease_alive(maker: StoreMaker) -> None:
    """Renewing before the TTL passes keeps the lease with its owner."""
    async with maker.open() as store:
        assert await store.acquire_lease("acme", "r1", 0.2)
        for _ in range(3):
            await asyncio.sleep(0.1)
            assert await store.acquire_lease("acme", "r1", 0.2)
        assert not await store.acquire_lease("acme", "r2", 0.2)


async def test_live_owners_drop_silent_replicas(maker: StoreMaker) -> None:
    """A replica whose heartbeat expired is no longer live."""
    async with maker.open() as store:
        await store.heartbeat("r1", 30)
        await store.heartbeat("r2", 0.05)
        assert await store.live_owners() == ["r1", "r2"]
        await asyncio.sleep(0.1)
        assert await store.live_owners() == ["r1"]


async def test_wait_survives_a_server_restart(maker: StoreMaker) -> None:
    """After Redis restarts, wait and claim work again on the same store."""
    assert maker.redis_server is not None
    async with maker.open() as store:
        await store.commit("acme", routed(1))
        maker.restart()
        deadline = time.monotonic() + 5
        while True:
            try:
                await store.wait("oa", 0.05)
                break
            except StoreError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert len(await store.claim("oa", limit=10, lease_s=30)) == 1
