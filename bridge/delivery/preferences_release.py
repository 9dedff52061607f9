"""Releasing held mails: when a member's hold ends, their held mails go out as one digest.

Every `[me] release_every_s` the releaser looks at the members with held mails for its
sink, computes when their hold ends from their preferences as they are now and the oldest
held mail, and for each whose hold has ended commits one digest event to the sink's
outbox, then forgets the held mails. The digest's id is stable (see `held_digest`), so
a release repeated after a crash, or run by two replicas at once, is one card.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bridge.delivery.held_digest import digest_event
from bridge.delivery.preferences import Preferences
from bridge.delivery.preferences_rules import release_at
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.store.base import Routed, Store
from bridge.supervise import stop_if_cancelled

__all__ = ["HoldReleaser"]

log = get_logger(__name__)


class HoldReleaser:
    """Turns ended holds of one sink into digest deliveries."""

    def __init__(
        self,
        *,
        store: Store,
        sink: str,
        every_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sink = sink
        self._every_s = every_s
        self._clock = clock

    async def run(self) -> None:
        """Release due holds every `every_s` until cancelled; store errors are logged."""
        while True:
            stop_if_cancelled()
            try:
                await self.release_due()
            except StoreError as exc:
                log.error("hold_release_failed", sink=self._sink, error=str(exc))
            except Exception:
                # A bug or an unreadable record must not end releases for everyone: log it
                # and try again next round (the sleep below keeps this from spinning).
                log.exception("hold_release_crashed", sink=self._sink)
            await asyncio.sleep(self._every_s)

    async def release_due(self) -> int:
        """Commit a digest for every member whose hold has ended; return how many."""
        released = 0
        for member in await self._store.held_members(self._sink):
            released += await self._release(member)
        return released

    async def _release(self, member: str) -> int:
        held = await self._store.held(self._sink, member)
        if not held:
            return 0
        prefs = await self._store.get_preferences(member) or Preferences()
        if release_at(prefs, held[0].held_at) > self._clock():
            return 0
        digest = digest_event(member, held)
        await self._store.commit(digest.tenant, [Routed(event=digest, sinks=(self._sink,))])
        await self._store.unhold(self._sink, member, [h.event.id for h in held])
        log.info("hold_released", sink=self._sink, member=member, mails=len(held))
        return 1
