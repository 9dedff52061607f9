"""Per-member message budget: at most N messages in any sliding minute, 1000 an hour.

WeCom silently drops a member's 31st message within a minute (and the 1001st within an
hour), so the sink counts what it sent and folds or defers instead. Slots are taken
synchronously (no await between the check and the take), so concurrent sends cannot
overspend.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["MemberBudget"]

MINUTE_S = 60.0
HOUR_S = 3600.0


class MemberBudget:
    """Sliding-window counters of messages per member."""

    def __init__(
        self,
        *,
        per_min: int,
        per_hour: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_min = per_min
        self.per_hour = per_hour
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}

    def _window(self, userid: str) -> deque[float]:
        window = self._sent.setdefault(userid, deque())
        cutoff = self._clock() - HOUR_S
        while window and window[0] <= cutoff:
            window.popleft()
        return window

    def _last_minute(self, window: deque[float]) -> list[float]:
        cutoff = self._clock() - MINUTE_S
        return [t for t in window if t > cutoff]

    def available(self, userid: str) -> int:
        """Messages `userid` may still receive now."""
        window = self._window(userid)
        free = min(self.per_min - len(self._last_minute(window)), self.per_hour - len(window))
        return max(free, 0)

    def take(self, userid: str, count: int = 1) -> None:
        """Record `count` messages to `userid` now."""
        window = self._window(userid)
        now = self._clock()
        window.extend(now for _ in range(count))

    def wait_s(self, userid: str) -> float:
        """Seconds until one more message may go to `userid` (0 when one may now)."""
        window = self._window(userid)
        minute = self._last_minute(window)
        now = self._clock()
        waits = [0.0]
        if len(minute) >= self.per_min:
            waits.append(minute[len(minute) - self.per_min] + MINUTE_S - now)
        if len(window) >= self.per_hour:
            waits.append(window[len(window) - self.per_hour] + HOUR_S - now)
        return max(waits)
