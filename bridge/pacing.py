"""Pacing of one tenant's polls, so a listen that ends at once can never become a hot loop.

A poll is *hollow* when it brought nothing new (no new event, no newer version) and ended
less than `min_interval_s` after it started: an instant empty 200, an immediate
`{"Ret":0}`, an old `Ver`. A hollow poll counts as a failure: the back-off is not reset,
and the next poll waits for the rest of the interval or the next back-off step, whichever
is longer. Any other poll resets the back-off and the next one starts at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.backoffs import Backoff

__all__ = ["PollPacer"]


class PollPacer:
    """Says how long to wait before the next poll of one tenant."""

    __slots__ = ("_backoff", "_clock", "_started_at", "min_interval_s")

    def __init__(
        self,
        *,
        min_interval_s: float,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval_s = min_interval_s
        self._backoff = backoff
        self._clock = clock
        self._started_at = clock()

    def started(self) -> None:
        """A poll begins now."""
        self._started_at = self._clock()

    def lasted(self) -> bool:
        """Whether the poll under way has run for at least `min_interval_s`."""
        return self._clock() - self._started_at >= self.min_interval_s

    def finished(self, *, news: bool) -> float:
        """A poll ended; the delay before the next one (0 after a healthy poll)."""
        elapsed_s = self._clock() - self._started_at
        if news or elapsed_s >= self.min_interval_s:
            self._backoff.reset()
            return 0.0
        return max(self.min_interval_s - elapsed_s, self._backoff.next_delay_s())
