"""The deliveries a dispatcher is working on, with their claims renewed until let go.

A claim's lease is what hides a delivery from other claimers (this replica's next claim,
another replica). A delivery still being worked on when its lease ends would be handed out
again: sent twice, or, on an ordered sink, overtaken. So while deliveries are held, their
claims are renewed every third of the lease. A renewal may give the delivery a new handle
(Redis re-scores the claim); `current()` hands out the newest one, under a lock, so a retry
or dead letter never races a renewal with a stale handle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.store.base import Delivery, Store
from bridge.supervise import crash_fields, stop_if_cancelled

__all__ = ["HeldClaims"]

log = get_logger(__name__)


class HeldClaims:
    """Held deliveries by the ref they were claimed with."""

    def __init__(self, *, store: Store, lease_s: float) -> None:
        self.lease_s = lease_s
        self._store = store
        self._held: dict[str, Delivery] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, items: Iterable[Delivery]) -> None:
        """Start renewing these claims."""
        for item in items:
            self._held[item.ref] = item

    def release(self, item: Delivery) -> None:
        """Stop renewing the claim of `item` (it was acked, retried or dead-lettered)."""
        self._held.pop(item.ref, None)

    def clear(self) -> None:
        """Stop renewing every claim (the dispatcher that held them stopped)."""
        self._held.clear()

    @contextlib.asynccontextmanager
    async def current(self, item: Delivery) -> AsyncIterator[Delivery]:
        """The newest handle of `item`, kept still while the caller uses it."""
        async with self._lock:
            yield self._held.get(item.ref, item)

    async def run(self) -> None:
        """Renew every held claim each third of the lease, until cancelled."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            stop_if_cancelled()
            try:
                await self.renew_all()
            except Exception as exc:  # a dead renewer would let every held lease run out
                log.error("claim_renewer_crashed", **crash_fields(exc))

    async def renew_all(self) -> None:
        """Renew each held claim once; a store failure waits for the next round."""
        for ref in list(self._held):
            try:
                await self._renew(ref)
            except StoreError as exc:
                log.warning("claim_renew_failed", error=str(exc))
                return

    async def _renew(self, ref: str) -> None:
        async with self._lock:
            item = self._held.get(ref)
            if item is None:
                return
            renewed = await self._store.renew(item, self.lease_s)
            if renewed is None:
                log.warning("claim_lost", sink=item.sink, event_id=item.event.id)
                del self._held[ref]
            else:
                self._held[ref] = renewed
