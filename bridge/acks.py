"""Batched acks for one dispatcher: an ack is handed over without waiting, and rides on the
dispatcher's next claim (one store call acks the finished deliveries and claims new ones);
acks that no claim takes soon are sent by a flusher in one store call.

A delivery's slot is free as soon as its send succeeded, so the sink's concurrency goes to
sends, not to waiting on the store. The dispatcher calls `flush()` whenever no claim is
coming (a slot wait timed out, the dispatcher stops), so an ack waits at most about one
slot poll. If a store call fails, its acks are dropped with a log line: their claims run
out and the deliveries come back (at least once, the promise we keep); `drain()` at stop
sends the rest before the dispatcher returns.
"""

from __future__ import annotations

import asyncio

from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.store.base import Delivery, Store

__all__ = ["AckBatcher"]

log = get_logger(__name__)


class AckBatcher:
    """`submit(item)` queues an ack; `take()` hands the queue to a claim, `flush()` to a
    flusher task that sends it in batches."""

    def __init__(self, *, store: Store, sink: str) -> None:
        self._store = store
        self._sink = sink
        self._waiting: list[Delivery] = []
        self._flusher: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        """Whether acks are waiting for a claim or a flush."""
        return bool(self._waiting)

    def submit(self, item: Delivery) -> None:
        """Queue the ack of `item` (its send succeeded)."""
        self._waiting.append(item)

    def take(self) -> list[Delivery]:
        """The queued acks, for a claim to send; the queue is empty after."""
        taken, self._waiting = self._waiting, []
        return taken

    def give_back(self, items: list[Delivery]) -> None:
        """Acks a failed claim did not send: queue them again."""
        self._waiting[:0] = items

    def flush(self) -> None:
        """Send the queued acks in the background (no claim is coming to take them)."""
        if self._waiting and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush(), name=f"acks[{self._sink}]")

    async def drain(self) -> None:
        """Send every queued ack and wait until each was sent (or dropped after a store
        failure)."""
        while True:
            self.flush()
            if self._flusher is None or self._flusher.done():
                return
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._waiting:
            batch = self.take()
            try:
                await self._store.ack_many(batch)
            except StoreError as exc:
                log.error("ack_failed", sink=self._sink, count=len(batch), error=str(exc))
