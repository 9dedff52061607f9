"""A token bucket shared by every listener: a global cap on the upstream request rate.

The budget is shared fairly: waiters queue per key (a tenant) and the keys are served in
turn, one request each, so a tenant that asks a hundred times a second gets the same
share as one that asks once, and cannot starve the others' reconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque

__all__ = ["MIN_WAIT_S", "RateLimiter", "pump_wait_s"]

# The pump waits at least this long for tokens (if the bucket can hold them). A wait per
# token would wake the loop 5,000 times a second, and uvloop rounds a sub-millisecond timer
# to none: the pump spun, a core busy for nothing through a whole start-up or reconnect
# storm. Tokens accrue by the clock meanwhile, so the rate is the same; they go out in
# bursts of rate x this (10 at 5,000/s).
MIN_WAIT_S = 0.002


class RateLimiter:
    """Allow `rate_per_s` acquisitions a second on average, bursts up to `burst`."""

    def __init__(self, *, rate_per_s: float, burst: float | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        self.rate_per_s = rate_per_s
        self.burst = burst if burst is not None else max(1.0, rate_per_s)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        # key -> its waiters in arrival order; the dict's order is the round-robin turn
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._pump: asyncio.Task[None] | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    async def acquire(self, key: str = "") -> None:
        """Wait until one request for `key` may go out."""
        self._refill()
        if not self._queues and self._tokens >= 1:
            self._tokens -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(waiter)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve(), name="ratelimit")
        await waiter

    async def _serve(self) -> None:
        """Hand out tokens as they refill, one key at a time, in turn."""
        while self._queues:
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep(pump_wait_s(self._tokens, self.burst, self.rate_per_s))
                continue
            if self._grant_next():
                self._tokens -= 1

    def _grant_next(self) -> bool:
        """Wake the next live waiter of the next key; False when only cancelled ones were left."""
        key, queue = next(iter(self._queues.items()))
        granted = False
        while queue and not granted:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                granted = True
        del self._queues[key]
        if queue:
            self._queues[key] = queue  # back of the line: every other key goes first
        return granted


def pump_wait_s(tokens: float, burst: float, rate_per_s: float) -> float:
    """How long the pump sleeps with `tokens` in the bucket: until the next whole token,
    but at least MIN_WAIT_S when the bucket can hold what accrues meanwhile."""
    next_s = (1 - tokens) / rate_per_s
    room_s = (burst - tokens) / rate_per_s
    return max(next_s, min(MIN_WAIT_S, room_s))
