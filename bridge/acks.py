"""Batched acks for one dispatcher: the acks that arrive while one store call is in flight
all go in the next call, so a burst costs one transaction per batch, not one per event.

No ack waits for company: the first one is sent at once, and only the acks that come while
it is on its way are gathered. When the call fails (or is cancelled) every ack in it fails
with it; their claims then run out and the deliveries come back (at least once).
"""

from __future__ import annotations

import asyncio

from bridge.claims import HeldClaims
from bridge.errors import StoreError
from bridge.store.base import Delivery, Store

__all__ = ["AckBatcher"]


class AckBatcher:
    """`await ack(item)` returns once `item` is acked in the store (or raises StoreError)."""

    def __init__(self, *, store: Store, claims: HeldClaims) -> None:
        self._store = store
        self._claims = claims
        self._waiting: list[tuple[Delivery, asyncio.Future[None]]] = []
        self._sending = False

    async def ack(self, item: Delivery) -> None:
        """Ack `item`, together with whatever other acks are waiting."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if not self._sending:
            await self._send_all()
        await done

    async def _send_all(self) -> None:
        """Send batches until nobody waits; the caller that found the line empty does it."""
        self._sending = True
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sending = False
            self._fail(self._waiting, "ack batch interrupted")  # only after a cancellation
            self._waiting = []

    async def _send(self, batch: list[tuple[Delivery, asyncio.Future[None]]]) -> None:
        try:
            async with self._claims.current_many([item for item, _ in batch]) as held:
                await self._store.ack_many(held)
        except StoreError as exc:
            self._fail(batch, str(exc), exc)
            return
        except BaseException:
            self._fail(batch, "ack batch interrupted")
            raise
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    def _fail(
        self,
        batch: list[tuple[Delivery, asyncio.Future[None]]],
        why: str,
        exc: StoreError | None = None,
    ) -> None:
        error = exc or StoreError(why, backend=self._store.backend, op="ack_many")
        for _, done in batch:
            if not done.done():
                done.set_exception(error)
                done.exception()  # marked retrieved: a waiter cancelled meanwhile must not warn
