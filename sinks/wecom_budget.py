"""Per-member message budget: at most N messages in any sliding minute, 1000 an hour.

WeCom silently drops a member's 31st message within a minute (and the 1001st within an
hour), so the sink takes slots before it sends and folds or defers instead. A take is
all-or-one (`bridge.store.budget`): a slot per mail, else one slot for a digest, else none.

`StoreBudget` keeps the counts in the store, so N replicas together stay under the limit;
the bridge uses it. `MemberBudget` keeps them in this process (tests, one-off tools); it
forgets a member once the hour has no sends of theirs, so it stays bounded by the members
written to within the hour.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from bridge.store.base import Store
from bridge.store.budget import Grant, Limits, grant, longest_s

__all__ = ["Budget", "MemberBudget", "StoreBudget"]

MINUTE_S = 60.0
HOUR_S = 3600.0


class Budget(Protocol):
    """Slots of a member's message budget."""

    per_min: int

    async def take(self, userid: str, want: int) -> Grant:
        """Take `want` slots, or one, or none (with the wait until one frees)."""


def _limits(per_min: int, per_hour: int) -> Limits:
    return ((per_min, MINUTE_S), (per_hour, HOUR_S))


class StoreBudget:
    """Budget counted in the store under `scope` (one WeCom app), shared by replicas."""

    def __init__(
        self,
        *,
        store: Store,
        scope: str,
        per_min: int,
        per_hour: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_min = per_min
        self._store = store
        self._scope = scope
        self._limits = _limits(per_min, per_hour)
        self._clock = clock

    async def take(self, userid: str, want: int) -> Grant:
        """Take slots in the store (one round trip, atomic across replicas)."""
        key = f"wecom:{self._scope}:{userid}"
        return await self._store.take_budget(key, want, self._limits, self._clock())


class MemberBudget:
    """Budget counted in this process."""

    def __init__(
        self,
        *,
        per_min: int,
        per_hour: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_min = per_min
        self._limits = _limits(per_min, per_hour)
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    async def take(self, userid: str, want: int) -> Grant:
        """Take slots (no await between the decision and the record: no overspending)."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + MINUTE_S
            self._forget_before(now - longest_s(self._limits))
        window = self._sent.get(userid, deque())
        decided = grant(window, now, self._limits, want)
        if decided.taken:
            window.extend([now] * decided.taken)
            self._sent[userid] = window
        return decided

    def _forget_before(self, cutoff: float) -> None:
        for userid in list(self._sent):
            window = self._sent[userid]
            while window and window[0] <= cutoff:
                window.popleft()
            if not window:
                del self._sent[userid]

    def __len__(self) -> int:
        """Members with a send in the last hour."""
        return len(self._sent)
