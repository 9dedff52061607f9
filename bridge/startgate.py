"""How many tenants may be starting at once: between their start and their first held
listen (or recorded failure).

The rate limiter already paces the requests; this bounds how many tenants wait at it
together. Starting 10,000 at once made 10,000 token exchanges, store reads and request
objects live side by side for a moment; the memory they freed stayed with the process
(about 10 KiB per tenant, measured in bench/connections.py). A few hundred starting at a
time keeps the budget busy (at 5,000 requests/s a tenant's start takes a few tens of ms)
and the peak small.
"""

from __future__ import annotations

import asyncio

__all__ = ["START_AT_ONCE", "StartGate"]

START_AT_ONCE = 256


class StartGate:
    """`enter(tenant)` waits for a slot; `leave(tenant)` frees it (once per entry)."""

    def __init__(self, size: int = START_AT_ONCE) -> None:
        self._slots = asyncio.Semaphore(size)
        self._inside: set[str] = set()

    async def enter(self, tenant: str) -> None:
        """Wait until `tenant` may start."""
        await self._slots.acquire()
        self._inside.add(tenant)

    def leave(self, tenant: str) -> None:
        """`tenant` listens, failed, or stopped: its slot goes to the next one."""
        if tenant in self._inside:
            self._inside.remove(tenant)
            self._slots.release()
