"""Shared message budgets: at most N sends per key in each sliding window.

WeCom drops a member's 31st message within a minute (and the 1001st within an hour)
without an error. Counting in the store lets N replicas together stay under the limit.
A take is all-or-one: the `want` slots when they all fit in every window (one message per
mail), else one slot when one fits (a digest), else none, with the wait until one frees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Grant", "Limits", "grant", "longest_s"]

Limits = Sequence[tuple[int, float]]  # (sends, window seconds)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a take got: `taken` slots (want, 1 or 0); when 0, `wait_s` until one frees."""

    taken: int
    wait_s: float = 0.0


def longest_s(limits: Limits) -> float:
    """The longest window: sends older than this no longer count."""
    return max(window_s for _, window_s in limits)


def grant(times: Sequence[float], now: float, limits: Limits, want: int) -> Grant:
    """The all-or-one decision over the ascending send `times` of one key."""
    free, wait_s = want, 0.0
    for limit, window_s in limits:
        recent = [t for t in times if t > now - window_s]
        free = min(free, limit - len(recent))
        if len(recent) >= limit:
            wait_s = max(wait_s, recent[len(recent) - limit] + window_s - now)
    taken = want if free >= want else (1 if free >= 1 else 0)
    return Grant(taken=taken, wait_s=0.0 if taken else wait_s)
