"""Per-sink dispatcher: claim due deliveries, send them, then ack, reschedule or dead-letter.

A sink that is down never blocks the listeners or the other sinks: each sink has its own
dispatcher, and a failing delivery goes back to the store with its next due time, so the
backlog waits in the store, not in memory. Retries follow the sink's `retry_s` ladder
(delay before attempt n+1 is `retry_s[n]`, jittered ±20%), never sooner than a
`Retry-After`; after the last rung the delivery is a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from bridge import metrics
from bridge.errors import SinkError, StoreError
from bridge.logs import get_logger
from bridge.store.base import Delivery, Store
from sinks.base import BatchSink, Sink

__all__ = ["Dispatcher", "next_try_delay_s"]

log = get_logger(__name__)
IDLE_WAIT_S = 1.0
SLOT_POLL_S = 0.05


def next_try_delay_s(
    ladder: Sequence[float],
    failed_attempt: int,
    retry_after_s: float | None,
    rand: Callable[[float, float], float] = random.uniform,
) -> float | None:
    """Seconds until the next try after attempt `failed_attempt` failed; None = give up."""
    rung = failed_attempt + 1
    if rung >= len(ladder):
        return None
    delay = ladder[rung] * rand(0.8, 1.2)
    return max(delay, retry_after_s or 0.0)


class Dispatcher:
    """Delivers one sink's outbox until stopped."""

    def __init__(
        self,
        *,
        sink: Sink,
        store: Store,
        retry_s: Sequence[float],
        concurrency: int,
        timeout_s: float,
        ordered: bool = False,
        metrics_label: str | None = None,
    ) -> None:
        self.sink = sink
        self._store = store
        self._ladder = tuple(retry_s)
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._ordered = ordered
        # The `sink` label of its metrics: the sink's name, or a bounded stand-in (such as
        # "subscription") when names are unbounded.
        self._label = metrics_label or sink.name
        self._lease_s = timeout_s * 3 + 10
        self._stopping = asyncio.Event()
        self.permanent_failure: str | None = None  # set by a loud failure, cleared by success
        self.delivered = 0
        self._blocked: dict[str, float] = {}  # ordered sinks: mailbox -> its retry's due time

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.sink.name

    def stop(self) -> None:
        """Finish the deliveries in hand, then return from `run()`."""
        self._stopping.set()

    async def run(self) -> None:
        """Claim and deliver until `stop()`; store errors are logged and retried."""
        if self._ordered or isinstance(self.sink, BatchSink):
            await self._run_batches()
        else:
            await self._run_slots()

    async def _run_batches(self) -> None:
        # Ordered and batch sinks need to see a claim as a whole: deliver it, then claim again.
        while not self._stopping.is_set():
            try:
                batch = await self._store.claim(
                    self.name, limit=self._concurrency, lease_s=self._lease_s
                )
                if batch:
                    await self._deliver(batch)
                else:
                    await self._idle()
            except StoreError as exc:
                log.error("dispatch_store_failed", sink=self.name, error=str(exc))
                await self._pause(1.0)

    async def _run_slots(self) -> None:
        """Keep up to `concurrency` sends in flight, refilling each slot as soon as it frees,
        so one slow receiver answer does not hold back the deliveries claimed with it."""
        inflight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                try:
                    await self._refill(inflight)
                except StoreError as exc:
                    log.error("dispatch_store_failed", sink=self.name, error=str(exc))
                    await self._pause(1.0)
        finally:
            if inflight:
                await asyncio.wait(inflight)

    async def _refill(self, inflight: set[asyncio.Task[None]]) -> None:
        room = self._concurrency - len(inflight)
        batch = (
            await self._store.claim(self.name, limit=room, lease_s=self._lease_s) if room else []
        )
        for item in batch:
            task = asyncio.create_task(self._send_guarded(item), name=f"deliver[{self.name}]")
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if len(inflight) >= self._concurrency:
            await asyncio.wait(inflight, timeout=IDLE_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        elif inflight and not batch:
            # Poll for new work while sends are in flight (a blocking store wait cannot be
            # interrupted cleanly when a slot frees).
            await asyncio.wait(inflight, timeout=SLOT_POLL_S, return_when=asyncio.FIRST_COMPLETED)
        elif not inflight:
            await self._idle()

    async def _send_guarded(self, item: Delivery) -> None:
        try:
            await self._deliver_one(item)
        except StoreError as exc:  # the claim lease runs out and the delivery comes back
            log.error("dispatch_store_failed", sink=self.name, error=str(exc))

    async def _idle(self) -> None:
        # Bounded wait: `stop()` is noticed within IDLE_WAIT_S.
        await self._store.wait(self.name, IDLE_WAIT_S)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _deliver(self, batch: list[Delivery]) -> None:
        if isinstance(self.sink, BatchSink):
            await self._deliver_batch(self.sink, batch)
            return
        # Only ordered sinks get here: mailboxes run side by side, each one in order.
        groups: dict[str, list[Delivery]] = defaultdict(list)
        for item in batch:
            groups[item.event.mailbox].append(item)
        async with asyncio.TaskGroup() as tg:
            for key, group in groups.items():
                tg.create_task(self._deliver_in_order(group), name=f"deliver[{self.name}:{key}]")

    async def _deliver_in_order(self, group: list[Delivery]) -> None:
        for i, item in enumerate(group):
            blocked_until = self._blocked.get(item.event.mailbox, 0.0)
            if blocked_until > time.time():
                await self._hold(group[i:], blocked_until)
                return
            if not await self._deliver_one(item):
                # Later mails of the same mailbox wait behind the one that failed.
                await self._hold(group[i + 1 :], self._blocked.get(item.event.mailbox, 0.0))
                return

    async def _hold(self, items: list[Delivery], until: float) -> None:
        for n, item in enumerate(items, start=1):
            reason = "held behind an earlier delivery to the same mailbox"
            await self._store.retry_at(item, until + n * 0.001, reason)

    async def _deliver_one(self, item: Delivery) -> bool:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s + 1):
                await self.sink.send(item.event)
        except SinkError as exc:
            await self._failed(item, exc, time.monotonic() - started)
            return False
        except TimeoutError:
            timeout = SinkError(self.name, "send timed out", retryable=True)
            await self._failed(item, timeout, time.monotonic() - started)
            return False
        await self._succeeded(item, time.monotonic() - started)
        return True

    async def _deliver_batch(self, sink: BatchSink, batch: list[Delivery]) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s * 2 + 1):
                results = await sink.send_batch([d.event for d in batch])
        except TimeoutError:
            results = [SinkError(self.name, "send timed out", retryable=True)] * len(batch)
        took = (time.monotonic() - started) / max(len(batch), 1)
        for item, result in zip(batch, results, strict=True):
            if result is None:
                await self._succeeded(item, took)
            else:
                await self._failed(item, result, took)

    async def _succeeded(self, item: Delivery, took_s: float) -> None:
        await self._store.ack(item)
        self.delivered += 1
        self.permanent_failure = None
        self._blocked.pop(item.event.mailbox, None)
        metrics.delivery(self._label, "delivered", took_s)
        metrics.event_latency(self._label, time.time() - item.enqueued_at)

    async def _failed(self, item: Delivery, exc: SinkError, took_s: float) -> None:
        if exc.loud:
            self.permanent_failure = exc.reason
            metrics.sink_permanent_failure(self._label)
        if exc.retryable and await self._reschedule(item, exc):
            metrics.delivery(self._label, "retry", took_s)
            return
        reason = exc.reason if not exc.retryable else f"retries exhausted: {exc.reason}"
        await self._store.dead_letter(item, reason)
        metrics.delivery(self._label, "dead", took_s)
        level = log.error if exc.loud else log.warning
        level(
            "delivery_dead_lettered",
            sink=self.name,
            event_id=item.event.id,
            tenant=item.event.tenant,
            mailbox=item.event.mailbox,
            attempts=item.attempt + 1,
            reason=reason,
        )

    async def _reschedule(self, item: Delivery, exc: SinkError) -> bool:
        delay = next_try_delay_s(self._ladder, item.attempt, exc.retry_after_s)
        if delay is None:
            return False
        due = time.time() + delay
        await self._store.retry_at(item, due, exc.reason)
        if self._ordered:
            self._blocked[item.event.mailbox] = due
        log.info(
            "delivery_retry",
            sink=self.name,
            event_id=item.event.id,
            mailbox=item.event.mailbox,
            attempt=item.attempt + 1,
            retry_in_s=round(delay, 3),
            reason=exc.reason,
        )
        return True
