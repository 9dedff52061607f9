"""Long-lived loops end on one cancel even when a store call swallowed the CancelledError
(as redis-py can while it reads a reply)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from unittest.mock import patch

from bridge.delivery.preferences_release import HoldReleaser
from bridge.store.base import Store
from bridge.supervise import Supervisor


async def _swallowing(*_: Any, **__: Any) -> list[str]:
    """A store read that, like redis-py mid-reply, eats the cancellation and returns."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0.05)
    return []


async def test_a_releaser_ends_on_one_cancel_that_a_store_call_swallowed(store: Store) -> None:
    """The hold releaser, cancelled once while its store call swallows the cancel, ends."""
    releaser = HoldReleaser(store=store, sink="chat", every_s=0.01)
    with patch.object(store, "held_members", _swallowing):
        task = asyncio.create_task(releaser.run())
        await asyncio.sleep(0.02)  # inside the store call
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}
    assert task.cancelled()


async def test_a_supervised_job_that_swallowed_its_cancel_is_not_restarted() -> None:
    """A job that returned after swallowing its cancel is neither a crash nor restarted."""
    starts = 0

    async def job() -> None:
        nonlocal starts
        starts += 1
        await _swallowing()

    supervisor = Supervisor("swallower")
    task = asyncio.create_task(supervisor.run(job, lambda: False))
    await asyncio.sleep(0.02)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}
    assert task.cancelled()
    assert (starts, supervisor.restarts) == (1, 0)
