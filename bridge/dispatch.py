"""Per-sink dispatcher: claim due deliveries, send them, then ack, reschedule or dead-letter.

A sink that is down never blocks the listeners or the other sinks: each sink has its own
dispatcher, and a failing delivery goes back to the store with its next due time, so the
backlog waits in the store, not in memory. What follows a send (the ack, the next rung of
the `retry_s` ladder, the dead letter) is in `bridge/outcomes.py`.

Nothing a sink raises ends the dispatcher: an unexpected exception is a failed attempt
(`internal error: <type>`), counted and logged with its stack. The dispatcher itself runs
under a `Supervisor`, restarted with backoff if it dies anyway. Ordered sinks claim with
`claim_in_order`, so the per-mailbox block lives in the store; claims being worked on are
renewed (`HeldClaims`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence

from bridge import metrics
from bridge.acks import AckBatcher
from bridge.claims import HeldClaims
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.outcomes import MAX_RETRY_AFTER_S, Outcomes, next_try_delay_s
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


def _store_failed(sink: str, exc: StoreError) -> None:
    _STORE_FAILED.log(log.error, "dispatch_store_failed", str(exc), sink=sink)


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
        self._concurrency = concurrency
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
        self.supervisor = supervisor or Supervisor(
            f"dispatcher {sink.name}", on_restart=self._restarted
        )
        metrics.dispatcher_created(self._label)
        self._outcomes = Outcomes(
            sink=sink,
            timeout_s=timeout_s,
            label=self._label,
            store=store,
            ladder=retry_s,
            claims=self._claims,
            acks=self._acks,
        )

    def _restarted(self) -> None:
        metrics.dispatcher_restarted(self._label)
        self._dying()

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.sink.name

    @property
    def delivered(self) -> int:
        """Deliveries acknowledged by the sink since start."""
        return self._outcomes.delivered

    @property
    def permanent_failure(self) -> str | None:
        """The reason of the last loud failure, until the next success."""
        return self._outcomes.permanent_failure

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
                    await self._outcomes.deliver_batch(sink, batch)
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
            await self._outcomes.deliver_one(item)
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
