"""One generic cache for values that are costly to fetch and expire: tokens, lookups.

A value is refreshed `margin_s` before it expires, but never later than half-way through
its lifetime, so short-lived values are not fetched on every call. Concurrent callers for
one key share one fetch (single flight), shielded so one caller's cancellation does not
cancel the fetch the others wait on. A fetch that fails with a `retry_after_s` (rate
limited, provider busy) holds that key's failure for that long: callers get the same error
at once instead of hammering the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Cached", "Fetch", "SingleFlightCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Fetch = Callable[[], Awaitable[tuple[V, float]]]  # answers (value, lifetime in seconds)


@dataclass(frozen=True, slots=True)
class Cached(Generic[V]):
    """A value and the monotonic time after which it is no longer used."""

    value: V
    refresh_at: float

    def __repr__(self) -> str:
        return f"Cached(refresh_at={self.refresh_at:.1f})"  # values may be secrets


class SingleFlightCache(Generic[K, V]):
    """Values by key; a fetch answers `(value, lifetime_s)`."""

    def __init__(self, *, margin_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._margin_s = margin_s
        self._clock = clock
        self._values: dict[K, Cached[V]] = {}
        self._flights: dict[K, asyncio.Future[Cached[V]]] = {}
        self._holds: dict[K, tuple[float, BaseException]] = {}

    async def get(self, key: K, fetch: Fetch[V]) -> V:
        """A fresh value for `key`, fetching one with `fetch` if needed."""
        cached = self._values.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        self._raise_held(key)
        return (await self._refresh(key, fetch)).value

    def seed(self, key: K, value: V, left_s: float, *, min_use_s: float = 0.0) -> bool:
        """Hold `value`, fetched earlier with `left_s` of its lifetime left, as if fetched
        now, unless a fresh value is held already or it would be refreshed within
        `min_use_s`; True when it is held."""
        use_s = left_s - self._margin_s
        cached = self._values.get(key)
        if use_s < min_use_s or (cached is not None and self._clock() < cached.refresh_at):
            return False
        self._values[key] = Cached(value=value, refresh_at=self._clock() + use_s)
        return True

    def invalidate(self, key: K, value: V | None = None) -> None:
        """Forget the value of `key` (only if it is still `value`, when given)."""
        cached = self._values.get(key)
        if cached is not None and (value is None or cached.value == value):
            del self._values[key]

    def _raise_held(self, key: K) -> None:
        held = self._holds.get(key)
        if held is None:
            return
        until, exc = held
        if self._clock() < until:
            raise exc
        del self._holds[key]

    async def _refresh(self, key: K, fetch: Fetch[V]) -> Cached[V]:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch_one(key, fetch))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: K, flight: asyncio.Future[Cached[V]]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.cancelled():
            return
        exc = flight.exception()  # retrieved here: every waiter may have gone away
        retry_after_s = getattr(exc, "retry_after_s", None)
        if exc is not None and isinstance(retry_after_s, int | float) and retry_after_s > 0:
            self._holds[key] = (self._clock() + float(retry_after_s), exc)

    async def _fetch_one(self, key: K, fetch: Fetch[V]) -> Cached[V]:
        value, lifetime_s = await fetch()
        lead_s = min(self._margin_s, lifetime_s / 2)
        cached = Cached(value=value, refresh_at=self._clock() + lifetime_s - lead_s)
        self._values[key] = cached
        self._holds.pop(key, None)
        return cached
