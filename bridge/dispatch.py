"""Per-sink dispatcher: claim due deliveries, send them, then ack, reschedule or dead-letter.

A sink that is down never blocks the listeners or the other sinks: each sink has its own
dispatcher, and a failing delivery goes back to the store with its next due time, so the
backlog waits in the store, not in memory. Retries follow the sink's `retry_s` ladder
(`retry_s[0]` delays the first try; the delay before attempt n+1 is `retry_s[n]`, jittered
±20%), never sooner than a `Retry-After` (itself capped at an hour); after the last rung
the delivery is a dead letter.

Nothing a sink raises ends the dispatcher: an unexpected exception is a failed attempt
(`internal error: <type>`), counted and logged with its stack. The dispatcher itself runs
under a `Supervisor`, restarted with backoff if it dies anyway. Ordered sinks claim with
`claim_in_order`, so the per-mailbox block lives in the store; claims being worked on are
renewed (`HeldClaims`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence

from bridge import metrics
from bridge.acks import AckBatcher
from bridge.claims import HeldClaims
from bridge.errors import SinkError, StoreError
from bridge.logs import get_logger
from bridge.quiet import Quiet
from bridge.store.base import Delivery, Store
from bridge.supervise import Supervisor, stop_if_cancelled
from sinks.base import BatchSink, Sink

__all__ = ["MAX_RETRY_AFTER_S", "Dispatcher", "next_try_delay_s"]

log = get_logger(__name__)
# A store outage fails every dispatcher at once: one line per error text per interval.
_STORE_FAILED = Quiet(every_s=10.0)
IDLE_WAIT_S = 1.0
SLOT_POLL_S = 0.05
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


def _store_failed(sink: str, exc: StoreError) -> None:
    held = _STORE_FAILED.allow(str(exc))
    if held is not None:
        log.error("dispatch_store_failed", sink=sink, error=str(exc), held_back=held)


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
        lease_s: float | None = None,
        supervisor: Supervisor | None = None,
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
        self._lease_s = lease_s or timeout_s * 3 + 10
        self._claims = HeldClaims(store=store, lease_s=self._lease_s)
        # Ordered sinks ack one by one: an ack there also moves the mailbox's line on.
        self._acks = None if ordered else AckBatcher(store=store, sink=sink.name)
        self._stopping = asyncio.Event()
        self._freed = asyncio.Event()  # a send or a background claim ended
        self._claiming: asyncio.Task[list[Delivery]] | None = None
        self._claim_limit = 0
        self._dry = False  # the last claim found less due work than it asked for
        self._polled = False  # a poll interval (or the store's wait) passed since
        self._seen_errors: set[str] = set()
        self.supervisor = supervisor or Supervisor(
            f"dispatcher {sink.name}", on_restart=self._restarted
        )
        self.permanent_failure: str | None = None  # set by a loud failure, cleared by success
        metrics.dispatcher_created(self._label)
        self._meters = metrics.DeliveryMeters(self._label)
        self.delivered = 0

    def _restarted(self) -> None:
        metrics.dispatcher_restarted(self._label)
        self._dying()

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.sink.name

    def stop(self) -> None:
        """Finish the deliveries in hand, then return from `run()`."""
        self._stopping.set()

    def problem(self) -> str | None:
        """Why this sink's delivery is not healthy, or None."""
        dying = self._dying()
        if dying is not None:
            return dying
        if self.permanent_failure:
            return f"sink {self.name} failing permanently: {self.permanent_failure}"
        return None

    async def run(self) -> None:
        """Claim and deliver until `stop()`; restarted with backoff if it dies."""
        await self.supervisor.run(self._run_once, self._stopping.is_set)

    async def _run_once(self) -> None:
        renewer = asyncio.create_task(self._claims.run(), name=f"renew[{self.name}]")
        try:
            if isinstance(self.sink, BatchSink) and not self._ordered:
                await self._run_batches(self.sink)
            else:
                await self._run_slots()
        finally:
            if self._acks is not None:
                await self._acks.drain()
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self._claims.clear()  # nobody works on them now: let their leases run out

    def _dying(self) -> str | None:
        dying = self.supervisor.problem()
        metrics.dispatcher_failing(self._label, dying is not None)
        return dying

    async def _claim(self, limit: int) -> list[Delivery]:
        self._dying()  # keeps the gauge current (it clears once the crashes are old)
        if self._acks is None:
            batch = await self._store.claim_in_order(self.name, limit=limit, lease_s=self._lease_s)
        else:
            # The acks of the sends that ended ride on the claim: one store call for both.
            acks = self._acks.take()
            try:
                batch = await self._store.claim(
                    self.name, limit=limit, lease_s=self._lease_s, acks=acks
                )
            except StoreError:
                self._acks.give_back(acks)
                raise
        self._claims.hold(batch)
        return batch

    async def _run_batches(self, sink: BatchSink) -> None:
        # Batch sinks see a claim as a whole (to fold a burst): deliver it, then claim again.
        while not self._stopping.is_set():
            stop_if_cancelled()
            try:
                batch = await self._claim(self._concurrency)
                if batch:
                    await self._deliver_batch(sink, batch)
                else:
                    await self._idle()
            except StoreError as exc:
                _store_failed(self.name, exc)
                await self._pause(1.0)

    async def _run_slots(self) -> None:
        """Keep up to `concurrency` sends in flight, refilling each slot as soon as it frees
        from a reserve of claimed deliveries, so neither one slow receiver answer nor the
        next claim's store round trip holds the other sends back."""
        inflight: set[asyncio.Task[None]] = set()
        reserve: deque[Delivery] = deque()

        def ended(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            self._freed.set()

        try:
            while not self._stopping.is_set():
                stop_if_cancelled()
                try:
                    await self._refill(inflight, reserve, ended)
                except StoreError as exc:
                    _store_failed(self.name, exc)
                    await self._pause(1.0)
        finally:
            if self._claiming is not None:
                with contextlib.suppress(StoreError):
                    reserve.extend(await self._claiming)
                self._claiming = None
            await self._give_back(reserve)
            if inflight:
                await asyncio.wait(inflight)

    async def _refill(
        self,
        inflight: set[asyncio.Task[None]],
        reserve: deque[Delivery],
        ended: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self._collect(reserve)
        while reserve and len(inflight) < self._concurrency:
            task = asyncio.create_task(
                self._send_guarded(reserve.popleft()), name=f"deliver[{self.name}]"
            )
            inflight.add(task)
            task.add_done_callback(ended)
        room = self._concurrency - len(inflight)
        if self._claiming is None and len(reserve) <= self._concurrency // 2:
            # The next round is claimed in the background while the slots are busy, so a
            # freed slot never waits for a store round trip. When the store had no more
            # due work, claim again once half the slots are free or a poll interval passed
            # (an idle sink: after the store's wait), not at every freed slot.
            half_free = room >= max(1, self._concurrency // 2) and bool(inflight)
            if not self._dry or half_free or self._polled:
                self._start_claim(self._concurrency + room - len(reserve))
        if self._claiming is None and not inflight and not reserve:
            await self._idle()
            self._polled = True
            return
        # Acks wait for the claim that the next freed slots bring, but not long.
        polling = self._acks or (self._dry and self._claiming is None)
        if not await self._woken(SLOT_POLL_S if polling else IDLE_WAIT_S):
            self._polled = True
            if self._acks is not None:
                self._acks.flush()

    def _start_claim(self, limit: int) -> None:
        self._claim_limit = limit
        self._claiming = asyncio.create_task(self._claim(limit), name=f"claim[{self.name}]")
        self._claiming.add_done_callback(lambda _: self._freed.set())

    def _collect(self, reserve: deque[Delivery]) -> None:
        """A finished background claim's deliveries join the reserve (its StoreError is
        raised here)."""
        claiming = self._claiming
        if claiming is None or not claiming.done():
            return
        self._claiming = None
        batch = claiming.result()
        reserve.extend(batch)
        self._dry, self._polled = len(batch) < self._claim_limit, False

    async def _give_back(self, reserve: deque[Delivery]) -> None:
        """Stopping: make the claimed deliveries that were never sent due again now."""
        while reserve:
            item = reserve.popleft()
            try:
                async with self._claims.current(item) as held:
                    await self._store.defer(held, time.time())
            except StoreError as exc:  # its lease runs out instead
                log.warning("dispatch_give_back_failed", sink=self.name, error=str(exc))
            self._claims.release(item)

    async def _woken(self, timeout_s: float) -> bool:
        """Wait until a send or a claim ends (True) or `timeout_s` passes (False)."""
        if not self._freed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._freed.wait()
        freed = self._freed.is_set()
        self._freed.clear()
        return freed

    async def _send_guarded(self, item: Delivery) -> None:
        try:
            await self._deliver_one(item)
        except StoreError as exc:  # the claim lease runs out and the delivery comes back
            _store_failed(self.name, exc)
        except Exception as exc:  # a bug here must not leave a task exception unretrieved
            log.error("dispatch_crashed", sink=self.name, error_type=type(exc).__name__)
        finally:
            self._claims.release(item)

    async def _idle(self) -> None:
        # Bounded wait: `stop()` is noticed within IDLE_WAIT_S.
        await self._store.wait(self.name, IDLE_WAIT_S)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _deliver_one(self, item: Delivery) -> None:
        if await self._held_for_first_try(item):
            return
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s + 1):
                await self.sink.send(item.event)
        except SinkError as exc:
            await self._failed(item, exc, time.monotonic() - started)
        except TimeoutError:
            timeout = SinkError(self.name, "send timed out", retryable=True)
            await self._failed(item, timeout, time.monotonic() - started)
        except Exception as exc:
            await self._failed(item, self._internal(exc), time.monotonic() - started)
        else:
            await self._succeeded(item, time.monotonic() - started)

    async def _held_for_first_try(self, item: Delivery) -> bool:
        """`retry_s[0]` > 0 delays the first try: defer it, counting no attempt."""
        first_at = item.enqueued_at + self._ladder[0]
        if item.attempt > 0 or first_at <= time.time() + 0.001:
            return False
        async with self._claims.current(item) as held:
            await self._store.defer(held, first_at)
        return True

    async def _deliver_batch(self, sink: BatchSink, batch: list[Delivery]) -> None:
        started = time.monotonic()
        results: Sequence[SinkError | None]
        try:
            async with asyncio.timeout(self._timeout_s * 2 + 1):
                results = await sink.send_batch([d.event for d in batch])
        except TimeoutError:
            results = [SinkError(self.name, "send timed out", retryable=True)] * len(batch)
        except Exception as exc:
            results = [self._internal(exc)] * len(batch)
        took = (time.monotonic() - started) / max(len(batch), 1)
        try:
            for item, result in zip(batch, results, strict=True):
                if result is None:
                    await self._succeeded(item, took)
                else:
                    await self._failed(item, result, took)
        finally:
            for item in batch:
                self._claims.release(item)

    def _internal(self, exc: Exception) -> SinkError:
        """An unexpected exception from a sink, as a retryable failed attempt."""
        kind = type(exc).__name__
        metrics.sink_internal_error(self._label)
        # The stack once per exception type (not its text: it may quote a secret).
        stack = "" if kind in self._seen_errors else "".join(traceback.format_tb(exc.__traceback__))
        self._seen_errors.add(kind)
        log.error("sink_internal_error", sink=self.name, error_type=kind, stack=stack)
        return SinkError(self.name, f"internal error: {kind}", retryable=True)

    async def _succeeded(self, item: Delivery, took_s: float) -> None:
        if self._acks is not None:
            self._acks.submit(item)  # the slot is free now; the ack goes in the next batch
        else:
            async with self._claims.current(item) as held:
                await self._store.ack(held)
        self.delivered += 1
        self.permanent_failure = None
        self._meters.delivered(took_s, time.time() - item.enqueued_at)

    async def _failed(self, item: Delivery, exc: SinkError, took_s: float) -> None:
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
