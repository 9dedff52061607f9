"""How the cyclic garbage collector runs in the bridge: live data is not scanned over and over.

Almost everything the bridge allocates in a start or a reconnect storm is long-lived (a
held listen is ~95 tracked objects, mostly aiohttp's, and a dropped one leaves no cyclic
garbage), and a young collection costs ~0.5 us per live object on this heap. By default
each object is scanned by a gen-0 and a gen-1 collection, and the growing heap again by
every full one: a quarter of a storm's CPU (`exmail_bridge_gc_seconds_total`). The
collections of a start, a storm or a burst find next to no garbage (bench/RESULTS.md).
`GcPolicy`:

- gen-0 threshold 10,000 (CPython's 700 re-scans 10,000 starting tenants ~20 times);
- what exists when it is installed (modules, the parsed config) is frozen at once;
- whatever survives a collection is frozen (`gc.freeze()` in its `stop` callback): it was
  just scanned and is live, so no older generation scans it again;
- young collections back off while they find nothing: after a scan that found no garbage
  the next 1, then 2, 4 ... `MAX_SKIPPED` young batches are frozen unscanned (in the
  collection's `start` callback, which leaves it nothing to scan); a scan that finds
  garbage scans every batch again. Full collections always scan;
- frozen objects are still freed by reference counting; a cycle among them is not, so an
  *audit* (unfreeze, full collection, which freezes the survivors again) runs every
  `audit_every_s` when anything was frozen since the last one, and at once when the
  frozen objects double since the last audit: cyclic garbage lives at most one audit
  interval, and memory stays within twice the live heap even if something leaked cycles.

`GcMeter` times every collection per generation (the collecting thread's CPU time).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from bridge.logs import get_logger
from bridge.supervise import crash_fields

__all__ = ["GcFigures", "GcMeter", "GcPolicy", "tuned"]

log = get_logger(__name__)
GENERATIONS = 3
GEN0_THRESHOLD = 10_000
AUDIT_EVERY_S = 900.0  # one full collection per 15 minutes at most (~1 CPU-s at 10,000)
TICK_S = 30.0  # counting the frozen objects walks their list: ~10 ms per million
GROWTH_AUDIT = 2.0  # frozen count x this since the last audit: audit now
MAX_SKIPPED = 16  # young batches frozen unscanned in a row at most


@dataclass(frozen=True, slots=True)
class GcFigures:
    """What the collector did since the meter was installed, per generation (0, 1, 2)."""

    collections: tuple[int, ...]
    cpu_s: tuple[float, ...]
    collected: tuple[int, ...]  # unreachable objects found (freed, or kept by a finalizer)
    frozen_objects: int  # in the permanent generation at the last count, never scanned


class GcMeter:
    """Times each collection through `gc.callbacks`; `figures()` reads the totals."""

    __slots__ = ("_clock", "_collected", "_collections", "_cpu_s", "_started_s")

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self._clock = clock
        self._started_s = 0.0
        self._collections = [0] * GENERATIONS
        self._cpu_s = [0.0] * GENERATIONS
        self._collected = [0] * GENERATIONS

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        # Collections never nest and start and stop run on one thread, so one start time.
        if phase == "start":
            self._started_s = self._clock()
            return
        generation = info["generation"]
        self._cpu_s[generation] += self._clock() - self._started_s
        self._collections[generation] += 1
        self._collected[generation] += info["collected"]

    def figures(self, frozen_objects: int) -> GcFigures:
        """The totals so far."""
        return GcFigures(
            tuple(self._collections), tuple(self._cpu_s), tuple(self._collected), frozen_objects
        )


class GcPolicy:
    """Freezes what survives a collection and audits the frozen objects now and then."""

    def __init__(
        self,
        *,
        audit_every_s: float = AUDIT_EVERY_S,
        tick_s: float = TICK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audit_every_s = audit_every_s
        self.tick_s = tick_s
        self.meter = GcMeter()
        self._clock = clock
        self._threshold = gc.get_threshold()
        self._audited_at_s = clock()
        self._audited_count: int | None = None  # frozen objects after the last audit
        self._frozen = 0  # the last count
        self._freezes = 0  # collections that froze their survivors since the last audit
        self._skip_run = 0  # how many young batches the last empty scan lets go unscanned
        self._to_skip = 0  # of those, still to come
        self._skipping = False  # the running collection was left nothing to scan

    def install(self) -> None:
        """Raise the gen-0 threshold, freeze what exists, freeze every survivor from now on."""
        self._threshold = gc.get_threshold()
        gen0, gen1, gen2 = self._threshold
        gc.set_threshold(max(gen0, GEN0_THRESHOLD), gen1, gen2)
        gc.freeze()
        for callback in (self.meter, self._after_collection):
            if callback not in gc.callbacks:
                gc.callbacks.append(callback)
        self._frozen = gc.get_freeze_count()

    def uninstall(self) -> None:
        """Back to CPython's own policy: callbacks removed, thresholds restored, unfrozen."""
        for callback in (self.meter, self._after_collection):
            if callback in gc.callbacks:
                gc.callbacks.remove(callback)
        gc.set_threshold(*self._threshold)
        gc.unfreeze()

    def _after_collection(self, phase: str, info: Mapping[str, int]) -> None:
        # Safe inside the callbacks: freezing only moves the generations' lists, and the
        # collection reads them after `start` and is done with them before `stop`.
        if phase == "start":
            self._skipping = self._to_skip > 0 and info["generation"] < GENERATIONS - 1
            if self._skipping:
                self._to_skip -= 1
                gc.freeze()
            return
        if not self._skipping:
            self._back_off(found=info["collected"] > 0)
        gc.freeze()
        self._freezes += 1

    def _back_off(self, *, found: bool) -> None:
        self._skip_run = 0 if found else min(max(2 * self._skip_run, 1), MAX_SKIPPED)
        self._to_skip = self._skip_run

    def figures(self) -> GcFigures:
        """The meter's totals and the last count of frozen objects."""
        return self.meter.figures(self._frozen)

    def due(self) -> bool:
        """Whether an audit is due now (counts the frozen objects: O(n))."""
        self._frozen = gc.get_freeze_count()
        if self._audited_count is None:  # the first count, after the start: the baseline
            self._audited_count = self._frozen
        if self._frozen >= GROWTH_AUDIT * max(self._audited_count, 1):
            return True
        return self._freezes > 0 and self._clock() - self._audited_at_s >= self.audit_every_s

    def audit(self) -> int:
        """Unfreeze and collect everything (the survivors are frozen again); objects found."""
        started_s = time.thread_time()
        gc.unfreeze()
        found = gc.collect()
        self._frozen = self._audited_count = gc.get_freeze_count()
        self._audited_at_s, self._freezes = self._clock(), 0
        log.info(
            "gc_audit",
            found=found,
            frozen=self._frozen,
            cpu_ms=round((time.thread_time() - started_s) * 1000, 1),
        )
        return found

    async def run(self) -> None:
        """Audit whenever one is due, checking every `tick_s`, until cancelled. A failed
        audit is logged and the next tick tries again: the audits are all that frees
        cyclic garbage once frozen, so they never stop while the policy is installed."""
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                if self.due():
                    self.audit()
            except Exception as exc:  # the loop must outlive any one audit
                log.error("gc_audit_failed", **crash_fields(exc))


@contextlib.asynccontextmanager
async def tuned(policy: GcPolicy | None = None) -> AsyncIterator[GcPolicy]:
    """`policy` installed, with its audits running, for the duration of the block."""
    policy = policy or GcPolicy()
    policy.install()
    audits = asyncio.create_task(policy.run(), name="gc-audits")
    try:
        yield policy
    finally:
        audits.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await audits
        finally:
            policy.uninstall()
