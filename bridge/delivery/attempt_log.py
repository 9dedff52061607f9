"""Attempt records, written in batches: one store step for every attempt made meanwhile.

Recording each attempt on its own doubled the store writes of a subscription delivery
(the attempt, then the ack); batching makes it one more write per flush instead. An
attempt waits at most `FLUSH_S` in memory: a crash can lose the records of the last
moment's attempts (never a delivery, which lives in the outbox). After each flush, every
subscription that has failed every attempt for `disable_after_s` goes to `on_failing`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bridge.config_api import ApiSection
from bridge.delivery.subscription_model import Attempt
from bridge.errors import StoreError
from bridge.events import Event
from bridge.logs import get_logger
from bridge.store.subscriptions import SubscriptionStore

__all__ = ["FLUSH_S", "AttemptLog"]

log = get_logger(__name__)
FLUSH_S = 0.1
MAX_BATCH = 1000
MAX_PENDING = 100_000  # beyond this (the store is down), the oldest records are dropped

OnFailing = Callable[[str, float], Awaitable[None]]


class AttemptLog:
    """Collects attempts from every subscription sink and writes them in batches."""

    def __init__(
        self, *, store: SubscriptionStore, settings: ApiSection, on_failing: OnFailing
    ) -> None:
        self._store = store
        self._settings = settings
        self._on_failing = on_failing
        self._pending: list[tuple[Attempt, Event]] = []
        self._wake = asyncio.Event()

    def add(self, attempt: Attempt, event: Event) -> None:
        """Queue one record; it is written within `FLUSH_S`."""
        self._pending.append((attempt, event))
        if len(self._pending) > MAX_PENDING:
            del self._pending[: len(self._pending) - MAX_PENDING]
        self._wake.set()

    async def run(self) -> None:
        """Flush until cancelled (then flush what is left)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(FLUSH_S)  # let a burst's attempts gather
                if not await self.flush():
                    await asyncio.sleep(1.0)  # the store failed: retry, unhurried
                    self._wake.set()
        finally:
            await asyncio.shield(self.flush())

    async def flush(self) -> bool:
        """Write everything queued; check who has failed for too long. False when the
        store failed (the records stay queued)."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                since = await self._store.record_attempts(
                    batch,
                    keep_s=self._settings.attempts_retention_s,
                    keep_max=self._settings.attempts_max,
                )
            except StoreError as exc:
                log.error("attempts_not_recorded", count=len(batch), error=str(exc))
                self._pending[:0] = batch
                return False
            await self._check(since)
        return True

    async def _check(self, since: dict[str, float | None]) -> None:
        now = time.time()
        for sub_id, failing_since in since.items():
            if failing_since is not None and now - failing_since >= self._settings.disable_after_s:
                await self._on_failing(sub_id, failing_since)
