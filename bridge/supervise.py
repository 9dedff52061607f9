"""Keep a long-lived job running: restart it with backoff when it dies, and say so.

A dispatcher that died would leave its sink's outbox growing in silence. The supervisor
restarts the job with capped, jittered exponential backoff (reset after a long healthy
run), counts every restart, and reports the job as failing while it has died
`alarm_after` times within `window_s`, so `/readyz` and an alert can say which one.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable

from bridge.backoffs import Backoff
from bridge.logs import get_logger

__all__ = ["Supervisor", "crash_fields", "stop_if_cancelled"]

log = get_logger(__name__)


def stop_if_cancelled() -> None:
    """Raise CancelledError when the current task has been asked to stop.

    redis-py can swallow the CancelledError of a command it was reading; the request still
    counts in `Task.cancelling()`. A long-lived loop that calls this once per round ends
    then anyway, instead of running on and hanging the shutdown that cancelled it once.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def crash_fields(exc: BaseException) -> dict[str, str]:
    """Log fields of an unexpected exception: its type and stack, never its message.

    A foreign exception's text may quote a URL with a token in its query string.
    """
    return {
        "error_type": type(exc).__name__,
        "stack": "".join(traceback.format_tb(exc.__traceback__)),
    }


class Supervisor:
    """Runs `job` until it returns with `stopping()` true; a crash is a restart."""

    def __init__(
        self,
        name: str,
        *,
        on_restart: Callable[[], None] = lambda: None,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        window_s: float = 300.0,
        alarm_after: int = 3,
        stable_s: float = 60.0,
    ) -> None:
        self.name = name
        self.restarts = 0
        self._on_restart = on_restart
        self._backoff = Backoff(base_s=base_s, cap_s=cap_s)
        self._window_s = window_s
        self._alarm_after = alarm_after
        self._stable_s = stable_s
        self._crashes: deque[tuple[float, str]] = deque(maxlen=alarm_after)

    async def run(self, job: Callable[[], Awaitable[None]], stopping: Callable[[], bool]) -> None:
        """Run `job`, restarting it after each crash, until it ends because of a stop."""
        while True:
            stop_if_cancelled()
            started = time.monotonic()
            try:
                await job()
            except Exception as exc:
                stop_if_cancelled()  # a job failing because it was stopped did not crash
                self._crashed(exc)
            else:
                if stopping():
                    return
                stop_if_cancelled()  # it returned because it was cancelled (and swallowed it)
                self._crashed(RuntimeError("returned before it was stopped"))
            if time.monotonic() - started > self._stable_s:
                self._backoff.reset()
            await asyncio.sleep(max(self._backoff.next_delay_s(), 0.1))

    def _crashed(self, exc: BaseException) -> None:
        self.restarts += 1
        self._crashes.append((time.monotonic(), type(exc).__name__))
        self._on_restart()
        log.error("task_crashed", task=self.name, restarts=self.restarts, **crash_fields(exc))

    def problem(self) -> str | None:
        """Why the job counts as failing (it keeps dying), or None."""
        now = time.monotonic()
        recent = [kind for at, kind in self._crashes if now - at <= self._window_s]
        if len(recent) < self._alarm_after:
            return None
        return (
            f"{self.name} keeps dying: {len(recent)} restarts in {self._window_s:.0f}s"
            f" (last: {recent[-1]})"
        )
