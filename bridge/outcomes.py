"""One attempt to deliver, and what follows it: ack, the next rung of the retry ladder, or
the dead letters.

Retries follow the sink's `retry_s` ladder (`retry_s[0]` delays the first try; the delay
before attempt n+1 is `retry_s[n]`, jittered ±20%), never sooner than a `Retry-After`
(itself capped at an hour); after the last rung the delivery is a dead letter. Nothing a
sink raises ends its dispatcher: an unexpected exception is a failed attempt
(`internal error: <type>`), counted and logged with its stack once per type.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Callable, Sequence

from bridge import metrics
from bridge.acks import AckBatcher
from bridge.claims import HeldClaims
from bridge.deadlines import Deadlines
from bridge.errors import SinkError
from bridge.logs import get_logger
from bridge.store.base import Delivery, Store
from sinks.base import BatchSink, Sink

__all__ = ["MAX_RETRY_AFTER_S", "Outcomes", "next_try_delay_s"]

log = get_logger(__name__)
MAX_RETRY_AFTER_S = 3600.0  # one answer must not park a delivery for days


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
    return max(delay, min(retry_after_s or 0.0, MAX_RETRY_AFTER_S))


class Outcomes:
    """One dispatcher's attempts and their ends: ack, retry or dead-letter, counted, logged."""

    def __init__(
        self,
        *,
        sink: Sink,
        timeout_s: float,
        label: str,
        store: Store,
        ladder: Sequence[float],
        claims: HeldClaims,
        acks: AckBatcher | None,
    ) -> None:
        self.name = sink.name
        self._sink = sink
        self._timeout_s = timeout_s
        self._label = label
        self._store = store
        self._ladder = tuple(ladder)
        self._claims = claims
        self._acks = acks  # None: ack one by one (ordered sinks move their line on)
        self._meters = metrics.DeliveryMeters(label)
        # The sink bounds each send itself; this is the safety net behind it, one coarse
        # timer for all sends instead of one each (bridge/deadlines.py).
        self._deadlines = Deadlines()
        self._seen_errors: set[str] = set()
        self.permanent_failure: str | None = None  # set by a loud failure, cleared by success
        self.delivered = 0

    async def deliver_one(self, item: Delivery) -> None:
        """Send one delivery (or defer its first try), then ack, retry or dead-letter it."""
        if await self._held_for_first_try(item):
            return
        started = time.monotonic()
        try:
            async with self._deadlines.bound(self._timeout_s + 1):
                await self._sink.send(item.event)
        except SinkError as exc:
            await self.failed(item, exc, time.monotonic() - started)
        except TimeoutError:
            timeout = SinkError(self.name, "send timed out", retryable=True)
            await self.failed(item, timeout, time.monotonic() - started)
        except Exception as exc:
            await self.failed(item, self.internal(exc), time.monotonic() - started)
        else:
            await self.succeeded(item, time.monotonic() - started)

    async def _held_for_first_try(self, item: Delivery) -> bool:
        """`retry_s[0]` > 0 delays the first try: defer it, counting no attempt."""
        first_at = item.enqueued_at + self._ladder[0]
        if item.attempt > 0 or first_at <= time.time() + 0.001:
            return False
        async with self._claims.current(item) as held:
            await self._store.defer(held, first_at)
        return True

    async def deliver_batch(self, sink: BatchSink, batch: list[Delivery]) -> None:
        """Send a claim to a batch sink as a whole, then settle each delivery of it."""
        started = time.monotonic()
        results: Sequence[SinkError | None]
        try:
            async with asyncio.timeout(self._timeout_s * 2 + 1):
                results = await sink.send_batch([d.event for d in batch])
        except TimeoutError:
            results = [SinkError(self.name, "send timed out", retryable=True)] * len(batch)
        except Exception as exc:
            results = [self.internal(exc)] * len(batch)
        took = (time.monotonic() - started) / max(len(batch), 1)
        try:
            for item, result in zip(batch, results, strict=True):
                if result is None:
                    await self.succeeded(item, took)
                else:
                    await self.failed(item, result, took)
        finally:
            for item in batch:
                self._claims.release(item)

    def internal(self, exc: Exception) -> SinkError:
        """An unexpected exception from a sink, as a retryable failed attempt."""
        kind = type(exc).__name__
        metrics.sink_internal_error(self._label)
        # The stack once per exception type (not its text: it may quote a secret).
        stack = "" if kind in self._seen_errors else "".join(traceback.format_tb(exc.__traceback__))
        self._seen_errors.add(kind)
        log.error("sink_internal_error", sink=self.name, error_type=kind, stack=stack)
        return SinkError(self.name, f"internal error: {kind}", retryable=True)

    async def succeeded(self, item: Delivery, took_s: float) -> None:
        if self._acks is not None:
            self._acks.submit(item)  # the slot is free now; the ack goes in the next batch
        else:
            async with self._claims.current(item) as held:
                await self._store.ack(held)
        self.delivered += 1
        self.permanent_failure = None
        self._meters.delivered(took_s, time.time() - item.enqueued_at)

    async def failed(self, item: Delivery, exc: SinkError, took_s: float) -> None:
        if exc.loud:
            self.permanent_failure = exc.reason
            metrics.sink_permanent_failure(self._label)
        delay = next_try_delay_s(self._ladder, item.attempt, exc.retry_after_s)
        if exc.retryable and delay is not None:
            async with self._claims.current(item) as held:
                await self._store.retry_at(held, time.time() + delay, exc.reason)
            self._meters.failed("retry", took_s)
            self._log_retry(item, delay, exc.reason)
            return
        reason = exc.reason if not exc.retryable else f"retries exhausted: {exc.reason}"
        async with self._claims.current(item) as held:
            await self._store.dead_letter(held, reason)
        self._meters.failed("dead", took_s)
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

    def _log_retry(self, item: Delivery, delay_s: float, reason: str) -> None:
        log.info(
            "delivery_retry",
            sink=self.name,
            event_id=item.event.id,
            mailbox=item.event.mailbox,
            attempt=item.attempt + 1,
            retry_in_s=round(delay_s, 3),
            reason=reason,
        )
