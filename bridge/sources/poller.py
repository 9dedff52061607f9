"""A polling source: one tenant's watched mailboxes, their unread counts, every interval.

Each round asks the watchlist which mailboxes to poll (a new-API watchlist walks the
directory when that is due), reads the stored baselines, and reads each mailbox's count.
A count that differs from its baseline is committed as the new baseline, together with an
`exmail.mail.unread` event when it rose. The first round after a gap (the start, a failed
round) polls back to back and says `reason = "reconcile"`; later rounds spread the polls
evenly over `interval_s`, shifted by a per-tenant phase so tenants do not poll in step,
and say `"poll"`. Every request goes through the shared upstream rate budget (the
client's), so a thousand tenants share `upstream_rate_per_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge import baselines, metrics
from bridge.backoffs import Backoff
from bridge.errors import UpstreamError, UpstreamRejected
from bridge.logs import get_logger
from bridge.sources.commit import Committer
from bridge.sources.recovery import Recovery
from bridge.states import StateBoard
from bridge.store.base import Store
from bridge.supervise import stop_if_cancelled

__all__ = ["CountReader", "Poller", "Watchlist", "phase"]

log = get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]


class CountReader(Protocol):
    """Reads one mailbox's unread count from the tenant's upstream."""

    async def unread_count(self, mailbox: str) -> int:
        """The count; UpstreamRejected when the upstream refuses this mailbox."""


class Watchlist(Protocol):
    """Says which mailboxes to poll this round."""

    async def mailboxes(self) -> list[str]:
        """Lower-cased mailboxes, each once."""


def phase(tenant: str) -> float:
    """A stable fraction in [0, 1) that spreads tenants' rounds over the interval."""
    digest = hashlib.blake2b(tenant.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Poller:
    """Runs one tenant's poll rounds until cancelled (a `Source`)."""

    def __init__(
        self,
        *,
        tenant: str,
        protocol: str,
        reader: CountReader,
        watchlist: Watchlist,
        store: Store,
        committer: Committer,
        board: StateBoard,
        recovery: Recovery,
        interval_s: float,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant = tenant
        self._protocol = protocol
        self._reader = reader
        self._watchlist = watchlist
        self._store = store
        self._committer = committer
        self._board = board
        self._recovery = recovery
        self._interval_s = interval_s
        self._sleep = sleep
        self._clock = clock
        self._gap = True  # nothing was polled yet: the first round reconciles
        self.rounds = 0

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self._tenant

    @property
    def backoff(self) -> Backoff:
        """The backoff the pool waits on after a crash."""
        return self._recovery.backoff

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        """Poll until cancelled; never raises an operational error."""
        self._board.set(self.name, "starting")
        try:
            await self._sleep(start_delay_s)
            while True:
                stop_if_cancelled()
                try:
                    await self._round()
                except UpstreamError as exc:
                    self._gap = True
                    metrics.unread_poll(self._protocol, "error")
                    await self._recovery.after(exc)
        finally:
            self._board.drop(self.name)

    async def drain(self) -> None:
        """Wait for a commit that a cancellation left running."""
        await self._committer.drain()

    async def _round(self) -> None:
        started = self._clock()
        mailboxes = await self._watchlist.mailboxes()
        stored = await self._committer.retrying(lambda: self._store.get_baselines(self.name))
        reason = "reconcile" if self._gap else "poll"
        for i, mailbox in enumerate(mailboxes):
            await self._sleep_until(started + self._offset_s(i, len(mailboxes)))
            await self._poll(mailbox, stored, reason)
        self._gap = False
        self._recovery.healthy()
        self.rounds += 1
        await self._sleep_until(started + self._interval_s)

    def _offset_s(self, i: int, n: int) -> float:
        if self._gap:
            return 0.0  # reconcile at once: mail may have waited for the whole gap
        step_s = self._interval_s / n
        return (i + phase(self._tenant)) * step_s

    async def _sleep_until(self, moment: float) -> None:
        delay_s = moment - self._clock()
        if delay_s > 0:
            await self._sleep(delay_s)

    async def _poll(self, mailbox: str, stored: dict[str, int], reason: str) -> None:
        try:
            count = await self._reader.unread_count(mailbox)
        except UpstreamRejected as exc:
            metrics.unread_poll(self._protocol, "rejected")
            log.warning("poll_skipped", tenant=self.name, mailbox=mailbox, error=str(exc))
            return
        if stored.get(mailbox) == count:
            metrics.unread_poll(self._protocol, "same")
            return
        found = baselines.unread_rises(self.name, {mailbox: count}, stored, reason=reason)
        await self._committer.commit(found, baselines={mailbox: count})
        stored[mailbox] = count
        metrics.unread_poll(self._protocol, "rise" if found else "changed")
