"""The SQLite store's thread: urgent calls overtake queued ones, errors reach the caller."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bridge.store.store_thread import StoreThread


async def test_urgent_calls_overtake_queued_ones_each_in_arrival_order() -> None:
    """While the thread is busy, queued urgent calls run before the normal ones."""
    worker = StoreThread(name="test-store")
    gate, ran = threading.Event(), list[str]()
    try:
        busy = worker.call(gate.wait)
        calls = [
            worker.call(ran.append, "commit-1"),
            worker.call(ran.append, "claim-1", urgent=True),
            worker.call(ran.append, "commit-2"),
            worker.call(ran.append, "claim-2", urgent=True),
        ]
        gate.set()
        await asyncio.gather(busy, *calls)
    finally:
        worker.close()
    assert ran == ["claim-1", "claim-2", "commit-1", "commit-2"]


async def test_an_exception_is_raised_to_the_caller_and_the_thread_goes_on() -> None:
    """A failing call raises in the awaiting coroutine; the next call still runs."""
    worker = StoreThread(name="test-store")
    try:
        with pytest.raises(ZeroDivisionError):
            await worker.call(divmod, 1, 0)
        assert await worker.call(divmod, 7, 2) == (3, 1)
    finally:
        worker.close()


async def test_close_runs_what_was_queued_first() -> None:
    """close() ends the thread only after the calls queued before it ran."""
    worker = StoreThread(name="test-store")
    ran: list[int] = []
    pending = [worker.call(ran.append, n) for n in range(3)]
    worker.close()
    await asyncio.gather(*pending)
    assert ran == [0, 1, 2]
