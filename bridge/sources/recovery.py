"""What a polling source does after an upstream failure: back off, or park the tenant.

Transient failures (unavailable, rate limited, timeouts) wait on a capped, jittered
exponential backoff, at least as long as the upstream asked; bad credentials park the
tenant for `park_s` with a loud log line. Either way the tenant's state is on the board.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.backoffs import Backoff
from bridge.errors import CredentialsError, UpstreamError
from bridge.logs import get_logger
from bridge.states import StateBoard

__all__ = ["Recovery"]

log = get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]


class Recovery:
    """Waits out one tenant's upstream failures."""

    def __init__(
        self,
        *,
        tenant: str,
        board: StateBoard,
        backoff: Backoff,
        park_s: float,
        sleep: Sleep,
    ) -> None:
        self._tenant = tenant
        self._board = board
        self.backoff = backoff
        self._park_s = park_s
        self._sleep = sleep

    async def after(self, exc: UpstreamError) -> None:
        """Sleep as long as `exc` deserves; the caller then tries again."""
        if isinstance(exc, CredentialsError):
            self._board.set(self._tenant, "parked")
            log.error("tenant_parked", tenant=self._tenant, error=str(exc), retry_in_s=self._park_s)
            await self._sleep(self._park_s)
            return
        self._board.set(self._tenant, "backoff")
        delay = self.backoff.next_delay_s()
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int | float):
            delay = max(delay, float(retry_after))
        log.warning(
            "poll_failed",
            tenant=self._tenant,
            code=exc.code,
            error=str(exc),
            failures=self.backoff.failures,
            retry_in_s=round(delay, 3),
        )
        await self._sleep(delay)

    def healthy(self) -> None:
        """A round went through: the next failure starts the ladder again."""
        self.backoff.reset()
        self._board.set(self._tenant, "connected")
