"""Coarse deadlines: a late block raises TimeoutError, an outside cancel stays a cancel."""

from __future__ import annotations

import asyncio

import pytest

from bridge import events
from bridge.deadlines import Deadlines
from bridge.dispatch import Dispatcher
from bridge.store.base import Routed, Store
from tests.core.test_listener import until

GRAIN_S = 0.02


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    """An await that outlasts the deadline is cancelled and the block raises TimeoutError."""
    deadlines = Deadlines(grain_s=GRAIN_S)
    async with asyncio.timeout(5):  # the test's own bound
        with pytest.raises(TimeoutError):
            async with deadlines.bound(0.05):
                await asyncio.sleep(10)


async def test_a_block_in_time_is_never_cancelled_later() -> None:
    """A block that ends before its deadline leaves no cancellation behind."""
    deadlines = Deadlines(grain_s=GRAIN_S)
    async with deadlines.bound(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.2)  # several sweeps past the deadline: nothing fires
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_an_outside_cancel_stays_a_cancel() -> None:
    """Cancelling the task from outside gives CancelledError, not TimeoutError."""
    deadlines = Deadlines(grain_s=GRAIN_S)
    started = asyncio.Event()

    async def bounded() -> None:
        async with deadlines.bound(10):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(bounded())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_only_the_late_ones_of_many_time_out() -> None:
    """Each task has its own deadline: the slow ones time out, the quick ones finish."""
    deadlines = Deadlines(grain_s=GRAIN_S)

    async def one(work_s: float) -> str:
        try:
            async with deadlines.bound(0.1):
                await asyncio.sleep(work_s)
        except TimeoutError:
            return "timeout"
        return "done"

    async with asyncio.timeout(5):
        results = await asyncio.gather(*(one(s) for s in (0, 0.01, 5, 0, 5)))
    assert results == ["done", "done", "timeout", "done", "timeout"]


async def test_the_same_task_twice_in_one_group_is_refused() -> None:
    """Nesting two deadlines of one group in a task is a programmer error."""
    deadlines = Deadlines(grain_s=GRAIN_S)
    async with deadlines.bound(1):
        with pytest.raises(RuntimeError, match="one deadline"):
            async with deadlines.bound(1):
                pass


class _Hangs:
    """A sink whose send never returns (a fault: it ignores its own timeout)."""

    name = "hangs"

    async def start(self) -> None:
        """Nothing to open."""

    async def send(self, event: events.Event) -> None:
        """Wait forever."""
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        """Nothing to close."""


async def test_a_send_that_never_returns_ends_as_send_timed_out(store: Store) -> None:
    """The dispatcher's safety net bounds a hung send: its delivery is dead-lettered."""
    dispatcher = Dispatcher(sink=_Hangs(), store=store, retry_s=[0], concurrency=2, timeout_s=0.1)
    task = asyncio.create_task(dispatcher.run(), name="dispatch[hangs]")
    try:
        event = events.mail_received(
            tenant="acme",
            mailbox="bob@acme.com",
            mail_id="M1",
            sender="a@b.cn",
            to="bob@acme.com",
            subject="s",
            summary="",
            unread_count=1,
        )
        await store.commit("acme", [Routed(event=event, sinks=("hangs",))])
        await until(lambda: _dead(store), timeout_s=10)
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 10)
    [dead] = await store.dead_letters("hangs")
    assert dead.reason == "retries exhausted: send timed out"


async def _dead(store: Store) -> bool:
    return await store.dead_count("hangs") == 1
