"""Starts, supervises and stops one source task (listener, poller, ...) per owned tenant.

Start-up is driven by the shared upstream budget: every owned tenant's listener starts at
once and waits its turn at the rate limiter (`upstream_rate_per_s`, shared fairly), so 20
tenants listen within a fraction of a second and 10,000 within about 2 x 10,000 / rate
(a token and a listen each), or 10,000 / rate when their tokens were kept in the store
(`warm`, bridge/tokenwarm.py: one bulk load before they start); nothing waits on a fixed
window. `startup_window_s` is an upper bound: when the rate cannot start every tenant
within it, the pool says so at start.

With several replicas (Redis store) each tenant is owned by one replica: the owner is
chosen by rendezvous hashing over the live replicas and held by a lease that is renewed
every third of its TTL; a dead replica's tenants are taken over within one TTL. Hand-off
is instant when a replica joins or leaves gracefully: it announces the change on the store
(`announce`), and every replica rebalances at once instead of at its next tick; a replica
that gives leases up announces that too, so the new owner takes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence

from bridge.config import TenantConfig
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.sources.base import Source
from bridge.startgate import StartGate
from bridge.states import StateBoard
from bridge.store.base import Store
from bridge.supervise import crash_fields, stop_if_cancelled

__all__ = ["Pool", "rendezvous_owner"]

log = get_logger(__name__)
# Seeds the tenants' upstream tokens from the store before they start (bridge.tokenwarm).
Warm = Callable[[Sequence[TenantConfig]], Awaitable[object]]


def rendezvous_owner(tenant: str, owners: Sequence[str]) -> str | None:
    """The owner with the highest hash of (owner, tenant); stable as owners come and go."""

    def score(owner: str) -> bytes:
        return hashlib.blake2b(f"{owner}\x1f{tenant}".encode(), digest_size=8).digest()

    return max(owners, key=score, default=None)


class Pool:
    """Holds the listener tasks; `run()` until cancelled, then `stop()` drains them."""

    def __init__(
        self,
        *,
        tenants: Sequence[TenantConfig],
        make_listener: Callable[[TenantConfig], Source],
        store: Store,
        board: StateBoard,
        instance_id: str,
        startup_window_s: float,
        lease_ttl_s: float,
        rate_per_s: float | None = None,
        warm: Warm | None = None,
    ) -> None:
        self._tenants = {t.name: t for t in tenants}
        self._make = make_listener
        self._store = store
        self._board = board
        self._owner = instance_id
        self._window_s = startup_window_s
        self._rate_per_s = rate_per_s
        self._lease_ttl_s = lease_ttl_s
        self._warm = warm
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._listeners: dict[str, Source] = {}
        self._stopping = False
        self._gate = StartGate()
        board.on_settled = self._gate.leave
        self.started = asyncio.Event()

    @property
    def listeners(self) -> dict[str, Source]:
        """The running sources by tenant name."""
        return self._listeners

    def has_started(self) -> bool:
        """Whether the first ownership round has run (the listeners it owns are started)."""
        return self.started.is_set()

    @property
    def owned(self) -> list[str]:
        """The tenants this replica runs a listener for now."""
        return list(self._tasks)

    async def run(self) -> None:
        """Keep the set of running listeners equal to the tenants this replica owns."""
        self._warn_if_window_too_short()
        with contextlib.suppress(StoreError):  # listen for the others before joining
            await self._store.wait_members(0)
        while not self._stopping:
            try:
                await self._rebalance()
                self.started.set()
            except StoreError as exc:
                log.error("ownership_check_failed", error=str(exc))
            await self._until_next_tick()

    async def _until_next_tick(self) -> None:
        """The next lease tick, or sooner when a replica announces a join, leave or release."""
        try:
            await self._store.wait_members(self._lease_ttl_s / 3)
        except StoreError as exc:
            log.warning("membership_watch_failed", error=str(exc))
            await asyncio.sleep(self._lease_ttl_s / 3)

    def _warn_if_window_too_short(self) -> None:
        if self._rate_per_s is None:
            return
        needed_s = 2 * len(self._tenants) / self._rate_per_s  # a token and a listen each
        if needed_s > self._window_s:
            log.warning(
                "startup_window_exceeded",
                tenants=len(self._tenants),
                upstream_rate_per_s=self._rate_per_s,
                startup_window_s=self._window_s,
                expected_s=round(needed_s, 1),
            )

    async def _rebalance(self) -> None:
        owners = await self._store.live_owners()
        joined = self._owner not in owners  # a new member: tell the others to make room
        await self._store.heartbeat(self._owner, self._lease_ttl_s)
        if joined:
            owners = [*owners, self._owner]
        wanted = [n for n in self._tenants if rendezvous_owner(n, owners) == self._owner]
        owned = await self._store.acquire_leases(wanted, self._owner, self._lease_ttl_s)
        owned_set = set(owned)  # 10,000 tenants: a set, once, not one per look-up
        gone = [n for n in self._tasks if n not in owned_set]
        for name in gone:
            await self._stop_one(name)
        if gone:
            await self._store.release_leases(gone, self._owner)
        fresh = [name for name in owned if name not in self._tasks]
        if fresh and self._warm is not None:
            await self._warm([self._tenants[name] for name in fresh])
        for name in fresh:
            if not self._stopping:
                self._start_one(name)
        for name in self._tenants.keys() - owned_set:
            self._board.set(name, "not_owned")
        if joined or gone:
            await self._store.announce()  # the others rebalance now, not at their next tick

    def _start_one(self, name: str) -> None:
        listener = self._make(self._tenants[name])
        self._listeners[name] = listener
        task = asyncio.create_task(self._supervise(listener), name=f"listener[{name}]")
        self._tasks[name] = task

    async def _supervise(self, listener: Source) -> None:
        await self._gate.enter(listener.name)  # left when it listens or fails (the board)
        try:
            while True:
                stop_if_cancelled()
                try:
                    await listener.run()
                except Exception as exc:  # a bug in one listener must not take the others down
                    log.error("listener_crashed", tenant=listener.name, **crash_fields(exc))
                    self._gate.leave(listener.name)
                    await asyncio.sleep(max(listener.backoff.next_delay_s(), 1.0))
        finally:
            self._gate.leave(listener.name)

    async def _stop_one(self, name: str) -> None:
        task = self._tasks.pop(name)
        listener = self._listeners.pop(name)
        await _cancel_until_done([task])
        await listener.drain()

    async def stop(self) -> None:
        """Stop every listener, let in-flight commits finish, release the leases, and tell
        the other replicas at once, so they take the tenants over within a second."""
        self._stopping = True  # `run` starts nothing more, even if it is still running
        names = list(self._tasks)
        await _cancel_until_done(list(self._tasks.values()))
        await asyncio.gather(*(self._listeners[n].drain() for n in names))
        with contextlib.suppress(StoreError):  # unreleased leases expire within their TTL
            await self._store.release_leases(names, self._owner)
        with contextlib.suppress(StoreError):  # else the others notice at their next tick
            await self._store.leave(self._owner)
        self._tasks.clear()
        self._listeners.clear()


async def _cancel_until_done(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks, again every half second while any still runs.

    A cancellation that lands while a listener is mid-request can be swallowed below us
    (seen in tests on Python 3.11 when a takeover's fresh listeners were stopped at once);
    repeating it guarantees the listener stops.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("listener_failed_on_stop", task=task.get_name(), **crash_fields(exc))
