"""Capped exponential backoff with full jitter, from the `backoff` package's generators.

Only the wait generators are used (not its decorators): a reconnect loop is a plain loop.
`Backoff.reset()` after a healthy poll starts the ladder again at the base.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import backoff

__all__ = ["Backoff"]


class Backoff:
    """Delays of base·2ⁿ capped at `cap_s`, each drawn uniformly from [0, delay]."""

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
        self._gen: Iterator[float] = self._fresh()
        self.failures = 0

    def _fresh(self) -> Iterator[float]:
        gen = backoff.expo(base=2, factor=self.base_s, max_value=self.cap_s)
        next(gen)  # the generator's first value is a priming None
        return gen

    def next_delay_s(self) -> float:
        """The next (jittered) delay; each call climbs one step of the ladder."""
        self.failures += 1
        return float(self._jitter(next(self._gen)))

    def reset(self) -> None:
        """Start again at the base after a healthy round."""
        self._gen = self._fresh()
        self.failures = 0
