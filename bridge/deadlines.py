"""Deadlines for many short awaits on one coarse timer, instead of a timer each.

`asyncio.timeout` arms a timer per use; on uvloop that is a libuv timer made, started,
stopped and closed, about 5 µs. A dispatcher bounds every send as a safety net behind the
sink's own timeout, thousands a second in a burst, and a deadline that fires up to
`grain_s` late serves it as well: `bound(timeout_s)` notes the running task and its due
time, and one timer per `grain_s` (armed only while some task is bounded) cancels the
tasks past due. The block then raises TimeoutError exactly where `asyncio.timeout` would;
a cancellation from anywhere else stays a CancelledError.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

__all__ = ["Bound", "Deadlines"]

Task = asyncio.Task[Any]


class Deadlines:
    """The deadlines of one group of tasks (one dispatcher's sends), swept together."""

    __slots__ = ("_due", "_expired", "_grain_s", "_timer")

    def __init__(self, *, grain_s: float = 0.25) -> None:
        self._grain_s = grain_s
        self._due: dict[Task, float] = {}
        self._expired: set[Task] = set()  # cancelled by a sweep, not yet out of the block
        self._timer: asyncio.TimerHandle | None = None

    def bound(self, timeout_s: float) -> Bound:
        """`async with deadlines.bound(s):` raises TimeoutError once `s` (+ up to
        `grain_s`) has passed inside the block."""
        return Bound(self, timeout_s)

    def _watch(self, task: Task, timeout_s: float) -> None:
        if task in self._due:
            raise RuntimeError("a task is bounded by one deadline of a group at a time")
        loop = asyncio.get_running_loop()
        self._due[task] = loop.time() + timeout_s
        if self._timer is None:
            self._timer = loop.call_later(self._grain_s, self._sweep, loop)

    def _forget(self, task: Task) -> bool:
        """Drop `task`'s deadline; whether a sweep had cancelled it."""
        del self._due[task]
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        for task, due in list(self._due.items()):
            if due <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._due:
            self._timer = loop.call_later(self._grain_s, self._sweep, loop)


class Bound:
    """One use of a deadline (see `Deadlines.bound`)."""

    __slots__ = ("_cancelling", "_deadlines", "_task", "_timeout_s")

    def __init__(self, deadlines: Deadlines, timeout_s: float) -> None:
        self._deadlines = deadlines
        self._timeout_s = timeout_s
        self._task: Task | None = None
        self._cancelling = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline bounds a task: use it inside one")
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines._watch(task, self._timeout_s)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None or not self._deadlines._forget(task):
            return
        # The sweep cancelled the task: take that request back, and turn the CancelledError
        # into TimeoutError unless someone else asked for a cancellation too (as
        # asyncio.timeout does).
        if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
