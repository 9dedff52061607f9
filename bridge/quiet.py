"""One log line per interval for a failure that thousands of tasks hit at once.

When the store goes down, every dispatcher (one per sink and per subscription) and every
tenant's committer fails together and retries on its own clock: logged naively that is
thousands of identical lines a second. A `Quiet` lets the first line of each kind through,
then one per `every_s` carrying how many it held back, so the log shows the outage and its
size without drowning everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MAX_KEYS", "Quiet"]

MAX_KEYS = 1000  # distinct keys remembered; an error text with ids in it must not grow this


class Quiet:
    """Lets one line per key through every `every_s`; counts the ones held back."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None to hold this line back; else how many lines of `key` were held back since
        the last one let through."""
        now = self._clock()
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._next) >= MAX_KEYS and key not in self._next:
            self._next.clear()  # many distinct texts: start over rather than grow
            self._held.clear()
        self._next[key] = now + self._every_s
        return self._held.pop(key, 0)

    def log(self, emit: Callable[..., object], event: str, error: str, **fields: object) -> None:
        """`emit(event, error=..., held_back=n, **fields)` unless a line of the same error
        text went out within the interval."""
        held = self.allow(error)
        if held is not None:
            emit(event, error=error, held_back=held, **fields)
