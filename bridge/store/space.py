"""Which store operations are failing for want of disk (SQLite) or memory (Redis).

A full store still answers a ping, so `/readyz` asks this instead: an operation that was
refused for space counts until it succeeds again, or until `fade_s` passed without
another refusal (a one-off that is never retried must not fail readiness for ever).
"""

from __future__ import annotations

import time

__all__ = ["SpaceWatch"]

FADE_S = 120.0  # longer than any retry interval of a commit or a claim


class SpaceWatch:
    """Remembers the operations refused for space, each with why and when."""

    def __init__(self, *, fade_s: float = FADE_S) -> None:
        self._fade_s = fade_s
        self._refused: dict[str, tuple[str, float]] = {}

    def refused(self, op: str, why: str) -> None:
        """`op` failed because the disk or memory behind the store is full."""
        self._refused[op] = (why, time.monotonic())

    def succeeded(self, op: str) -> None:
        """`op` went through: it no longer counts."""
        self._refused.pop(op, None)

    def problem(self) -> str | None:
        """Why the store cannot take writes now, or None."""
        now = time.monotonic()
        recent = [(at, why) for why, at in self._refused.values() if now - at <= self._fade_s]
        return f"store full: {max(recent)[1]}" if recent else None
