"""The pool's side of a callback tenant: Exmail calls us, so there is no loop to run.

The callback receiver (an HTTP route) commits what arrives on any replica; this source
only holds the tenant's place in the pool (its lease and its state on the board) and
drains the tenant's commit path on shutdown.
"""

from __future__ import annotations

import asyncio

from bridge.backoffs import Backoff
from bridge.config import TenantConfig
from bridge.sources.commit import Committer
from bridge.states import StateBoard

__all__ = ["CallbackSource"]


class CallbackSource:
    """Marks the tenant connected and waits; callbacks arrive over HTTP."""

    def __init__(self, *, tenant: TenantConfig, board: StateBoard, committer: Committer) -> None:
        self.tenant = tenant
        self._board = board
        self._committer = committer
        self.backoff = Backoff(base_s=1.0, cap_s=60.0)

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self.tenant.name

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        """Wait until cancelled."""
        self._board.set(self.name, "connected")
        try:
            await asyncio.Event().wait()
        finally:
            self._board.drop(self.name)

    async def drain(self) -> None:
        """Wait for commits a cancellation left running."""
        await self._committer.drain()
