"""One tenant's directory version, and its sync with `user/list` on a back-off of its own.

A `Ver` push says the directory changed. The sync (`user/list` with the stored version)
may fail: the upstream is down, the answer is refused or too large. That must not stop
mail: the listener goes on listening with the version it heard (so the upstream does not
answer at once with the same `Ver` again), and the sync is retried here, on its own
back-off, between polls. The stored version moves only when a sync's event is committed,
so a restart before then syncs again from the old version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from bridge.backoffs import Backoff
from bridge.config import ExmailSection, TenantConfig
from bridge.errors import UpstreamError
from bridge.logs import get_logger

__all__ = ["DirectoryDelta", "DirectorySync", "DirectoryUpstream"]

log = get_logger(__name__)


class DirectoryDelta(Protocol):
    """What `user/list` answers: the new version and who changed."""

    @property
    def ver(self) -> str: ...
    @property
    def added(self) -> Sequence[str]: ...
    @property
    def removed(self) -> Sequence[str]: ...
    @property
    def modified(self) -> Sequence[str]: ...


class DirectoryUpstream(Protocol):
    """The part of the Exmail client a directory sync uses."""

    async def user_list(self, tenant: TenantConfig, ver: str) -> DirectoryDelta: ...


class DirectorySync:
    """The stored version, a newer one heard but not yet synced, and when to try again."""

    __slots__ = ("_backoff", "_clock", "_retry_at", "_tenant", "_upstream", "heard", "ver")

    def __init__(
        self,
        *,
        tenant: TenantConfig,
        upstream: DirectoryUpstream,
        settings: ExmailSection,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant = tenant
        self._upstream = upstream
        self._clock = clock
        self._backoff = Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
        self.ver = "0"  # the stored version: its directory event is committed
        self.heard: str | None = None  # a newer version the upstream announced
        self._retry_at = 0.0

    @property
    def listen_ver(self) -> str:
        """The version to listen with: the newest heard, so it is not announced again."""
        return self.heard or self.ver

    def hear(self, ver: str) -> bool:
        """Note an announced version; True when it is newer than any known."""
        if int(ver) <= int(self.listen_ver):
            return False
        self.heard = ver
        return True

    def due(self) -> bool:
        """Whether a sync is pending and its retry time has come."""
        return self.heard is not None and self._clock() >= self._retry_at

    async def fetch(self) -> tuple[DirectoryDelta, str] | None:
        """The changes since the stored version and the version to store; None on failure."""
        target = self.heard or self.ver
        try:
            delta = await self._upstream.user_list(self._tenant, self.ver)
        except UpstreamError as exc:
            self._failed(exc)
            return None
        new_ver = delta.ver if int(delta.ver) >= int(target) else target
        return delta, new_ver

    def synced(self, new_ver: str) -> None:
        """The sync's event and `new_ver` are committed."""
        self.ver = new_ver
        if self.heard is not None and int(self.heard) <= int(new_ver):
            self.heard = None
        self._backoff.reset()
        self._retry_at = 0.0

    def _failed(self, exc: UpstreamError) -> None:
        delay_s = self._backoff.next_delay_s()
        self._retry_at = self._clock() + delay_s  # counted by the seam as a user/list error
        log.warning(
            "directory_sync_failed",
            tenant=self._tenant.name,
            error=str(exc),
            failures=self._backoff.failures,
            retry_in_s=round(delay_s, 3),
        )
