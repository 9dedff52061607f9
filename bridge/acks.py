"""Batched acks for one dispatcher: acks are handed over without waiting, and one flusher
sends all that have gathered in one store call, then the ones that came meanwhile.

A delivery's slot is free as soon as its send succeeded, so the sink's concurrency goes to
sends, not to waiting on the store. No ack waits for company: the first is sent at once.
If a store call fails, its acks are dropped with a log line: their claims run out and the
deliveries come back (at least once, the promise we keep); `drain()` at stop sends the
rest before the dispatcher returns.
"""

from __future__ import annotations

import asyncio

from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.store.base import Delivery, Store

__all__ = ["AckBatcher"]

log = get_logger(__name__)


class AckBatcher:
    """`submit(item)` queues an ack; a flusher task sends the queue in batches."""

    def __init__(self, *, store: Store, sink: str) -> None:
        self._store = store
        self._sink = sink
        self._waiting: list[Delivery] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit(self, item: Delivery) -> None:
        """Queue the ack of `item` (its send succeeded)."""
        self._waiting.append(item)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"acks[{self._sink}]")

    async def drain(self) -> None:
        """Wait until every queued ack was sent (or dropped after a store failure)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._store.ack_many(batch)
            except StoreError as exc:
                log.error("ack_failed", sink=self._sink, count=len(batch), error=str(exc))
