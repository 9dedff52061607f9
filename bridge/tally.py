"""One log line per second for a routine per-tenant event, instead of one per tenant.

A reconnect storm breaks 10,000 held listens at once; a structlog line each costs tens of
microseconds and buries everything else in the log. The tenants' own lines go to debug;
this counts them by reason and logs `event` with the counts once per `every_s`.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from bridge.logs import get_logger

__all__ = ["Tally"]

log = get_logger(__name__)


class Tally:
    """Counts `note(reason)` calls; logs `event` with the counts `every_s` after the first."""

    def __init__(self, event: str, *, every_s: float = 1.0) -> None:
        self.event = event
        self.every_s = every_s
        self._counts: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def note(self, reason: str) -> None:
        """Count one occurrence; the summary line follows within `every_s`."""
        self._counts[reason] += 1
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:  # a new loop: tests, restarts
            self._loop = loop
            self._timer = loop.call_later(self.every_s, self.flush)

    def flush(self) -> None:
        """Log the counts gathered so far (nothing when there are none)."""
        counts, self._counts = self._counts, Counter()
        self._timer = None
        if counts:
            log.info(self.event, count=sum(counts.values()), reasons=dict(counts))
