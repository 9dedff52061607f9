"""The pool: rendezvous ownership, leases across replicas, start-up spread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from bridge.backoffs import Backoff
from bridge.config import TenantConfig
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.listener import Listener
from bridge.pool import Pool, _cancel_until_done, rendezvous_owner
from bridge.routing import Router
from bridge.states import StateBoard
from bridge.store.base import Store
from tests.core.test_listener import until
from tests.plugins.sim import ExmailSim
from tests.plugins.store import StoreMaker

TENANTS = [
    TenantConfig.model_validate(
        {"name": f"t{i}", "client_id": f"admin@t{i}.com", "client_secret": "k"}
    )
    for i in range(12)
]


def test_rendezvous_is_stable_and_spread() -> None:
    """Each tenant has one owner; removing a replica moves only that replica's tenants."""
    names = [f"tenant{i}" for i in range(300)]
    three = {n: rendezvous_owner(n, ["a", "b", "c"]) for n in names}
    assert set(three.values()) == {"a", "b", "c"}
    assert min(list(three.values()).count(o) for o in "abc") > 50
    two = {n: rendezvous_owner(n, ["a", "b"]) for n in names}
    assert all(two[n] == three[n] for n in names if three[n] != "c")
    assert rendezvous_owner("x", []) is None


@asynccontextmanager
async def replica(
    sim: ExmailSim, store: Store, owner: str, *, lease_ttl_s: float = 1.5
) -> AsyncIterator[tuple[Pool, StateBoard]]:
    """One replica's pool over all TENANTS, running until the block ends."""
    settings = sim.exmail_settings()
    board = StateBoard()
    async with make_session(settings, max_connections=32) as session:
        client = ExmailClient(session=session, settings=settings)

        def make(tenant: TenantConfig) -> Listener:
            return Listener(
                tenant=tenant,
                upstream=client,
                store=store,
                router=Router(routes=[], sinks=["s"]),
                settings=settings,
                board=board,
            )

        pool = Pool(
            tenants=TENANTS,
            make_listener=make,
            store=store,
            board=board,
            instance_id=owner,
            startup_window_s=0.2,
            lease_ttl_s=lease_ttl_s,
        )
        task = asyncio.create_task(pool.run(), name=f"pool[{owner}]")
        try:
            yield pool, board
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pool.stop()


async def test_single_replica_runs_every_tenant(exmail_sim: ExmailSim, store: Store) -> None:
    """Alone (either store), a replica owns and listens for every tenant."""
    async with replica(exmail_sim, store, "solo") as (pool, board):
        await until(_all_listening(board, len(TENANTS)))
        assert set(pool.listeners) == {t.name for t in TENANTS}
    assert pool.listeners == {}


def _all_listening(board: StateBoard, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return board.count("connected") + board.count("connecting") == n

    return check


async def test_two_replicas_split_and_take_over(
    exmail_sim: ExmailSim, redis_store_maker: StoreMaker
) -> None:
    """Two replicas on Redis never listen for the same tenant; one dies, the other takes all."""
    async with (
        redis_store_maker.open() as store_a,
        redis_store_maker.open() as store_b,
        replica(exmail_sim, store_b, "b") as (pool_b, _),
    ):
        async with replica(exmail_sim, store_a, "a") as (pool_a, _):

            async def split() -> bool:
                a, b = set(pool_a.listeners), set(pool_b.listeners)
                return bool(a) and bool(b) and not a & b and len(a | b) == len(TENANTS)

            await until(split)
            # Replica a goes away; its heartbeat is expired at once so b need not wait.
            await store_a.heartbeat("a", 0.001)
        await until(lambda: _owns_all(pool_b))


async def _owns_all(pool: Pool) -> bool:
    return len(pool.listeners) == len(TENANTS)


async def test_stop_releases_every_lease_in_one_round_trip(
    exmail_sim: ExmailSim, redis_store_maker: StoreMaker
) -> None:
    """Pool.stop gives up all its leases with one Redis call, however many tenants it owns."""
    async with redis_store_maker.open() as store:
        assert redis_store_maker.redis_server is not None
        probe = aioredis.Redis.from_url(redis_store_maker.redis_server.url)
        try:
            # a long TTL: no ownership round runs while the calls are counted
            async with replica(exmail_sim, store, "solo", lease_ttl_s=30) as (pool, _):
                await until(lambda: _all_started(pool))
                before = await _evalsha_calls(probe)
                await pool.stop()
                after = await _evalsha_calls(probe)
        finally:
            await probe.aclose()
        assert after - before == 1
        assert [await store.lease_owner(t.name) for t in TENANTS] == [None] * len(TENANTS)


async def _all_started(pool: Pool) -> bool:
    return len(pool.listeners) == len(TENANTS)


async def _evalsha_calls(probe: aioredis.Redis) -> int:
    """Scripts Redis ran (a NOSCRIPT miss that redis-py then loads and reruns is not one)."""
    evalsha = (await probe.info("commandstats")).get("cmdstat_evalsha", {})
    return int(evalsha.get("calls", 0)) - int(evalsha.get("failed_calls", 0))


class _CrashingSource:
    """A source whose every run dies of a foreign error quoting a token in a URL."""

    def __init__(self, tenant: TenantConfig) -> None:
        self.name = tenant.name
        self.backoff = Backoff(base_s=0.01, cap_s=0.01)
        self.runs = 0

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        self.runs += 1
        raise RuntimeError(f"GET https://api.example/cgi-bin/x?access_token={LEAKY_TOKEN}")

    async def drain(self) -> None:
        pass


LEAKY_TOKEN = "tok-3c1f0e9a"  # a fake


async def test_a_crashing_source_is_restarted_and_logged_without_its_message(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source that raises restarts; the log names its type and stack, never its text."""
    sources: list[_CrashingSource] = []

    def make(tenant: TenantConfig) -> _CrashingSource:
        sources.append(_CrashingSource(tenant))
        return sources[-1]

    pool = Pool(
        tenants=TENANTS[:1],
        make_listener=make,
        store=store,
        board=StateBoard(),
        instance_id="solo",
        startup_window_s=0,
        lease_ttl_s=30,
    )
    task = asyncio.create_task(pool.run())
    try:
        await until(_runs_reach(sources, 2), timeout_s=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.stop()
    out = "".join(capsys.readouterr())
    assert "listener_crashed" in out
    assert "RuntimeError" in out
    assert LEAKY_TOKEN not in out


def _runs_reach(sources: list[_CrashingSource], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(sources) and sources[0].runs >= n

    return check


async def test_a_source_failing_on_stop_is_logged_without_its_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A task that dies of a foreign error while stopped: logged by type, never its text."""

    async def dies_on_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError(f"POST /x?access_token={LEAKY_TOKEN}") from None

    task = asyncio.create_task(dies_on_cancel(), name="listener[acme]")
    await asyncio.sleep(0)
    await _cancel_until_done([task])
    out = "".join(capsys.readouterr())
    assert "listener_failed_on_stop" in out
    assert "RuntimeError" in out
    assert LEAKY_TOKEN not in out
