"""The SQLite store's one thread: blocking calls run there one at a time, the urgent ones
first, each in arrival order, and the event loop awaits each as a plain future.

Why an order: in a burst the listeners' group commits queue up by the hundred, and a
dispatcher's claim behind them would leave its sink idle while the outbox fills. So calls
marked `urgent` (claims, acks: a dispatcher has at most one in flight) overtake the queued
commits. Every commit still completes before its listener reads on; it waits at most for
the dispatchers' calls in front of it.

The thread starts with the first call and ends at `close()`, after the calls queued before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["StoreThread"]

_T = TypeVar("_T")
_URGENT, _NORMAL, _LAST = 0, 1, 2
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class StoreThread:
    """Runs blocking functions on one named thread; `call` returns an awaitable future."""

    def __init__(self, *, name: str) -> None:
        self._name = name
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[..., _T], *args: Any, urgent: bool = False) -> asyncio.Future[_T]:
        """Queue `fn(*args)`; the future gets its result or its exception."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        job: _Job = (loop, future, fn, args)
        self._queue.put((_URGENT if urgent else _NORMAL, next(self._order), job))
        return future

    def close(self) -> None:
        """Run what is queued, then end the thread (blocks until it has ended)."""
        if self._thread is not None:
            self._queue.put((_LAST, next(self._order), None))
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            loop, future, fn, args = job
            if future.cancelled():  # nobody waits for it any more: as run_in_executor does
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting coroutine, like any result
                _hand_over(loop, _fail, future, exc)
            else:
                _hand_over(loop, _succeed, future, result)


def _hand_over(
    loop: asyncio.AbstractEventLoop,
    settle: Callable[[asyncio.Future[Any], Any], None],
    future: asyncio.Future[Any],
    value: Any,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
        loop.call_soon_threadsafe(settle, future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
