"""The shape every source has, as the pool sees it."""

from __future__ import annotations

from typing import Protocol

from bridge.backoffs import Backoff

__all__ = ["Source"]


class Source(Protocol):
    """One tenant's upstream loop, run and supervised by the pool."""

    @property
    def name(self) -> str:
        """The tenant's name."""

    @property
    def backoff(self) -> Backoff:
        """The source's backoff; the pool waits on it after a crash."""

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        """Work until cancelled; never raise an operational error."""

    async def drain(self) -> None:
        """Wait for a commit that a cancellation left running (shutdown calls this)."""
