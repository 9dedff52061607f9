"""Starts, supervises and stops one source task (listener, poller, ...) per owned tenant.

Start-up is spread over `startup_window_s` so 10,000 tenants do not connect in the same
second. With several replicas (Redis store) each tenant is owned by one replica: the
owner is chosen by rendezvous hashing over the live replicas and held by a lease that is
renewed every third of its TTL; a dead replica's tenants are taken over within one TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence

from bridge.config import TenantConfig
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.sources.base import Source
from bridge.states import StateBoard
from bridge.store.base import Store

__all__ = ["Pool", "rendezvous_owner"]

log = get_logger(__name__)


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
    ) -> None:
        self._tenants = {t.name: t for t in tenants}
        self._make = make_listener
        self._store = store
        self._board = board
        self._owner = instance_id
        self._window_s = startup_window_s
        self._lease_ttl_s = lease_ttl_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._listeners: dict[str, Source] = {}
        self.started = asyncio.Event()

    @property
    def listeners(self) -> dict[str, Source]:
        """The running sources by tenant name."""
        return self._listeners

    async def run(self) -> None:
        """Keep the set of running listeners equal to the tenants this replica owns."""
        first = True
        while True:
            try:
                await self._rebalance(spread=first)
                first = False
                self.started.set()
            except StoreError as exc:
                log.error("ownership_check_failed", error=str(exc))
            await asyncio.sleep(self._lease_ttl_s / 3)

    async def _rebalance(self, *, spread: bool) -> None:
        await self._store.heartbeat(self._owner, self._lease_ttl_s)
        owners = await self._store.live_owners()
        if self._owner not in owners:
            owners = [*owners, self._owner]
        wanted = [n for n in self._tenants if rendezvous_owner(n, owners) == self._owner]
        owned = await self._store.acquire_leases(wanted, self._owner, self._lease_ttl_s)
        for name in set(self._tasks) - set(owned):
            await self._stop_one(name)
            await self._store.release_lease(name, self._owner)
        new = [n for n in owned if n not in self._tasks]
        for i, name in enumerate(new):
            delay = self._window_s * i / len(new) if spread else 0.0
            self._start_one(name, delay)
        for name in set(self._tenants) - set(owned):
            self._board.set(name, "not_owned")

    def _start_one(self, name: str, delay_s: float) -> None:
        listener = self._make(self._tenants[name])
        self._listeners[name] = listener
        task = asyncio.create_task(self._supervise(listener, delay_s), name=f"listener[{name}]")
        self._tasks[name] = task

    async def _supervise(self, listener: Source, delay_s: float) -> None:
        while True:
            try:
                await listener.run(start_delay_s=delay_s)
            except Exception:  # a bug in one listener must not take the others down
                log.exception("listener_crashed", tenant=listener.name)
                await asyncio.sleep(max(listener.backoff.next_delay_s(), 1.0))
            delay_s = 0.0

    async def _stop_one(self, name: str) -> None:
        task = self._tasks.pop(name)
        listener = self._listeners.pop(name)
        await _cancel_until_done([task])
        await listener.drain()

    async def stop(self) -> None:
        """Stop every listener, let in-flight commits finish, release the leases."""
        names = list(self._tasks)
        await _cancel_until_done(list(self._tasks.values()))
        await asyncio.gather(*(self._listeners[n].drain() for n in names))
        with contextlib.suppress(StoreError):  # unreleased leases expire within their TTL
            await self._store.release_leases(names, self._owner)
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
        if not task.cancelled() and task.exception() is not None:
            log.error("listener_failed_on_stop", task=task.get_name(), error=str(task.exception()))
