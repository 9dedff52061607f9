"""How the cyclic garbage collector runs in the bridge, and what it costs.

`GcMeter` times every collection per generation (the collecting thread's CPU time, from
`gc.callbacks`) for `exmail_bridge_gc_seconds_total{generation}`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["GcFigures", "GcMeter"]

GENERATIONS = 3


@dataclass(frozen=True, slots=True)
class GcFigures:
    """What the collector did since the meter was installed, per generation (0, 1, 2)."""

    collections: tuple[int, ...]
    cpu_s: tuple[float, ...]
    collected: tuple[int, ...]  # unreachable objects found (freed, or kept by a finalizer)
    frozen_objects: int  # in the permanent generation now (gc.freeze), never scanned


class GcMeter:
    """Times each collection through `gc.callbacks`; `figures()` reads the totals."""

    __slots__ = ("_clock", "_collected", "_collections", "_cpu_s", "_started_s")

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self._clock = clock
        self._started_s = 0.0
        self._collections = [0] * GENERATIONS
        self._cpu_s = [0.0] * GENERATIONS
        self._collected = [0] * GENERATIONS

    def install(self) -> None:
        """Start timing collections (once; installing again changes nothing)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        """Stop timing collections."""
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        # Collections never nest and start and stop run on one thread, so one start time.
        if phase == "start":
            self._started_s = self._clock()
            return
        generation = info["generation"]
        self._cpu_s[generation] += self._clock() - self._started_s
        self._collections[generation] += 1
        self._collected[generation] += info["collected"]

    def figures(self) -> GcFigures:
        """The totals so far."""
        return GcFigures(
            collections=tuple(self._collections),
            cpu_s=tuple(self._cpu_s),
            collected=tuple(self._collected),
            frozen_objects=gc.get_freeze_count(),
        )
