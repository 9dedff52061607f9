"""Which mailboxes an `api` tenant polls: `watch`, its patterns resolved against the directory.

The directory is walked at the first round and then every `directory_interval_s`. A walk
that fails is logged, counted and tried again at the next round; meanwhile the last walk
(this run's, else the stored one) resolves the patterns, so a directory outage never
stops the polls. Bad credentials are not a directory problem: they go up to park the tenant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bridge import baselines, metrics
from bridge.errors import CredentialsError, UpstreamError
from bridge.exmail_api.directory import DirectoryWalker
from bridge.logs import get_logger
from bridge.store.base import Store

__all__ = ["DirectoryWatch", "PlainWatch"]

log = get_logger(__name__)


class PlainWatch:
    """The plain entries of `watch` (for upstreams without a directory to resolve against)."""

    def __init__(self, watch: Sequence[str]) -> None:
        self._mailboxes = baselines.resolve_watch(watch, ())

    async def mailboxes(self) -> list[str]:
        """The watched mailboxes."""
        return list(self._mailboxes)


class DirectoryWatch:
    """`watch` resolved against the tenant's directory, which it keeps walking."""

    def __init__(
        self,
        *,
        tenant: str,
        watch: Sequence[str],
        walker: DirectoryWalker,
        store: Store,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant = tenant
        self._watch = tuple(watch)
        self._walker = walker
        self._store = store
        self._interval_s = interval_s
        self._clock = clock
        self._next_walk = 0.0  # walk at the first round
        self._known: list[str] | None = None

    async def mailboxes(self) -> list[str]:
        """The watched mailboxes, after a directory walk when one is due."""
        if self._clock() >= self._next_walk:
            await self._walk()
        return baselines.resolve_watch(self._watch, self._known or ())

    async def _walk(self) -> None:
        try:
            snapshot = await self._walker.walk()
        except CredentialsError:
            raise
        except UpstreamError as exc:
            metrics.directory_walk("failed")
            log.warning("directory_walk_failed", tenant=self._tenant, error=str(exc))
            if self._known is None:
                stored = await self._store.get_directory(self._tenant)
                self._known = list(stored.members) if stored is not None else None
            return
        self._known = list(snapshot.members)
        self._next_walk = self._clock() + self._interval_s
