"""A store outage that fails every dispatcher at once is logged once, not once per task."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any
from unittest.mock import patch

from structlog.testing import capture_logs

from bridge.errors import StoreError
from bridge.quiet import Quiet
from bridge.store.base import Store
from tests.core.test_dispatch import Receiver, dispatching


def test_one_line_per_interval_then_the_count_held_back() -> None:
    """One line per key per interval passes; the next one carries how many were held back."""
    now = [100.0]
    quiet = Quiet(every_s=10.0, clock=lambda: now[0])
    assert quiet.allow("down") == 0
    assert [quiet.allow("down") for _ in range(5)] == [None] * 5
    assert quiet.allow("full") == 0
    now[0] += 10.0
    assert quiet.allow("down") == 5
    assert quiet.allow("down") is None


async def test_twenty_dispatchers_on_a_dead_store_log_one_line(store: Store) -> None:
    """Twenty dispatchers failing on a dead store for 2 s write one dispatch_store_failed line."""
    # a text no other test uses: the interval is per process and per error text
    down = StoreError(f"connection refused {uuid.uuid4()}", backend=store.backend, op="claim")

    async def failing_claim(*_: Any, **__: Any) -> Any:
        raise down

    with capture_logs() as logs, patch.object(store, "claim", failing_claim):
        async with AsyncExitStack() as stack:
            for _ in range(20):
                receiver = Receiver(plan=lambda _m, _a: (200, {}))
                await stack.enter_async_context(dispatching(store, receiver, retry_s=[0]))
            await asyncio.sleep(2.0)
    lines = [e for e in logs if e["event"] == "dispatch_store_failed"]
    assert len(lines) == 1
    assert "connection refused" in lines[0]["error"]
