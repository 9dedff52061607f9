"""Capped exponential backoff with full jitter (the `backoff` package's jitter).

The ladder is base·2ⁿ capped, the values of `backoff.expo`, computed from the failure
count rather than held in a generator: every tenant has one or two of these, and 10,000
live generators cost about 2 MiB. `Backoff.reset()` after a healthy poll starts the ladder
again at the base.
"""

from __future__ import annotations

from collections.abc import Callable

import backoff

__all__ = ["Backoff"]

_MAX_STEP = 62  # base·2⁶² is past any cap, and 2.0 ** 1024 would overflow


class Backoff:
    """Delays of base·2ⁿ capped at `cap_s`, each drawn uniformly from [0, delay]."""

    __slots__ = ("_jitter", "base_s", "cap_s", "failures")

    def __init__(
        self,
        *,
        base_s: float,
        cap_s: float,
        jitter: Callable[[float], float] = backoff.full_jitter,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._jitter = jitter
        self.failures = 0

    def next_delay_s(self) -> float:
        """The next (jittered) delay; each call climbs one step of the ladder."""
        step = min(self.failures, _MAX_STEP)
        self.failures += 1
        return float(self._jitter(min(self.cap_s, self.base_s * 2.0**step)))

    def reset(self) -> None:
        """Start again at the base after a healthy round."""
        self.failures = 0
