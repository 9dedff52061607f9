"""The one commit path of every source: route, commit atomically, count.

A commit is shielded: a shutdown that cancels a source never cuts a commit in half, and
`drain()` waits for one a cancellation left running. `commit()` retries a failing store
with backoff until it succeeds (a push read from a socket must not be lost);
`commit_once()` raises StoreError instead, for callers that can make the sender retry
(the callback receiver answers 503).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from bridge import metrics
from bridge.backoffs import Backoff
from bridge.errors import StoreError
from bridge.events import Event
from bridge.logs import get_logger
from bridge.quiet import Quiet
from bridge.routing import Router
from bridge.store.base import CommitResult, Store
from bridge.supervise import stop_if_cancelled

__all__ = ["Committer"]

log = get_logger(__name__)
# A store outage fails every tenant's commit at once: one line per error text per interval.
_STORE_FAILED = Quiet(every_s=10.0)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
STORE_BACKOFF_CAP_S = 30.0


class Committer:
    """Commits one tenant's events; shared by all of that tenant's sources."""

    __slots__ = ("_backoff_base_s", "_pending", "_router", "_sleep", "_store", "tenant")

    def __init__(
        self,
        *,
        tenant: str,
        store: Store,
        router: Router,
        backoff_base_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.tenant = tenant
        self._store = store
        self._router = router
        self._backoff_base_s = backoff_base_s
        self._sleep = sleep
        # Made at the first commit: most tenants of a large deployment are quiet.
        self._pending: set[asyncio.Future[CommitResult]] | None = None

    async def commit(
        self,
        batch: Sequence[Event],
        new_ver: str | None = None,
        *,
        baselines: Mapping[str, int] | None = None,
    ) -> CommitResult:
        """Commit `batch` (the new version, the unread baselines), retrying the store until
        it succeeds."""
        return await self.retrying(lambda: self.commit_once(batch, new_ver, baselines=baselines))

    async def commit_once(
        self,
        batch: Sequence[Event],
        new_ver: str | None = None,
        *,
        baselines: Mapping[str, int] | None = None,
        nonces: Sequence[str] = (),
        nonce_ttl_s: float = 0.0,
    ) -> CommitResult:
        """Commit `batch` once; StoreError when the store fails. With `nonces`, nothing is
        committed when one of them is remembered already (see `Store.commit`)."""
        routed = self._router.route(list(batch))
        commit = self._store.commit(
            self.tenant, routed, new_ver, baselines, nonces=nonces, nonce_ttl_s=nonce_ttl_s
        )
        pending = asyncio.ensure_future(commit)
        if self._pending is None:
            self._pending = set()
        self._pending.add(pending)
        pending.add_done_callback(self._pending.discard)
        result = await asyncio.shield(pending)
        _count(self.tenant, batch, result)
        return result

    async def retrying(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a store operation until it succeeds: a full disk must not lose a push."""
        store_backoff = Backoff(base_s=self._backoff_base_s, cap_s=STORE_BACKOFF_CAP_S)
        while True:
            stop_if_cancelled()
            try:
                return await op()
            except StoreError as exc:
                delay = store_backoff.next_delay_s()
                _STORE_FAILED.log(
                    log.error, "store_failed", str(exc), tenant=self.tenant, retry_in_s=delay
                )
                await self._sleep(delay)

    async def drain(self) -> None:
        """Wait for commits that a cancellation left running."""
        for pending in list(self._pending or ()):
            with contextlib.suppress(Exception):
                await pending


def _count(tenant: str, batch: Sequence[Event], result: CommitResult) -> None:
    if result.emitted == len(batch):
        by_type: dict[str, int] = {}
        for event in batch:
            by_type[event.type] = by_type.get(event.type, 0) + 1
        for event_type, count in by_type.items():
            metrics.events_committed(event_type, count)
    elif result.emitted:  # a partly duplicate batch: reconcile batches share one type
        metrics.events_committed(batch[0].type, result.emitted)
    if result.duplicates:
        metrics.events_deduplicated(result.duplicates)
        log.info("events_deduplicated", tenant=tenant, count=result.duplicates)
