"""The generic single-flight cache: one fetch per key, early refresh, held failures."""

from __future__ import annotations

import asyncio

import pytest

from bridge.errors import CredentialsError, RateLimited
from bridge.singleflight import SingleFlightCache


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Counts fetches; each answers a new value, after an optional gate."""

    def __init__(self, lifetime_s: float = 100.0) -> None:
        self.calls = 0
        self.lifetime_s = lifetime_s
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return f"v{self.calls}", self.lifetime_s


async def test_concurrent_callers_share_one_fetch() -> None:
    """Ten callers at once cause one fetch and all get its value."""
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=10)
    fetch = Fetcher()
    fetch.gate.clear()
    waiters = [asyncio.create_task(cache.get("k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    fetch.gate.set()
    assert await asyncio.gather(*waiters) == ["v1"] * 10
    assert fetch.calls == 1


async def test_refreshed_margin_before_expiry_and_at_half_life() -> None:
    """A value is refetched `margin_s` before it expires, or half-way for short lives."""
    clock = Clock()
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=300, clock=clock)
    fetch = Fetcher(lifetime_s=7200)
    assert await cache.get("k", fetch) == "v1"
    clock.now += 7200 - 301
    assert await cache.get("k", fetch) == "v1"
    clock.now += 2
    assert await cache.get("k", fetch) == "v2"
    short = Fetcher(lifetime_s=10)
    assert await cache.get("s", short) == "v1"
    clock.now += 4.9
    assert await cache.get("s", short) == "v1"
    clock.now += 0.2
    assert await cache.get("s", short) == "v2"


async def test_invalidate_only_the_stale_value() -> None:
    """invalidate(key, old) forgets only a value that is still `old`."""
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=1)
    fetch = Fetcher()
    assert await cache.get("k", fetch) == "v1"
    cache.invalidate("k", "other")
    assert await cache.get("k", fetch) == "v1"
    cache.invalidate("k", "v1")
    assert await cache.get("k", fetch) == "v2"


async def test_rate_limited_failure_is_held_for_retry_after() -> None:
    """A fetch failing with retry_after_s is not repeated until that time has passed."""
    clock = Clock()
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=1, clock=clock)
    fetch = Fetcher()
    fetch.error = RateLimited("busy", code="45009", retry_after_s=60)
    for _ in range(3):
        with pytest.raises(RateLimited):
            await cache.get("k", fetch)
    assert fetch.calls == 1
    clock.now += 61
    fetch.error = None
    assert await cache.get("k", fetch) == "v2"


async def test_other_failures_are_not_held() -> None:
    """A failure without retry_after_s (bad credentials) is retried on the next call."""
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=1)
    fetch = Fetcher()
    fetch.error = CredentialsError("no", code="40001")
    for _ in range(2):
        with pytest.raises(CredentialsError):
            await cache.get("k", fetch)
    assert fetch.calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch() -> None:
    """One waiter's cancellation leaves the fetch running for the others."""
    cache: SingleFlightCache[str, str] = SingleFlightCache(margin_s=1)
    fetch = Fetcher()
    fetch.gate.clear()
    first = asyncio.create_task(cache.get("k", fetch))
    second = asyncio.create_task(cache.get("k", fetch))
    await asyncio.sleep(0)
    first.cancel()
    fetch.gate.set()
    assert await second == "v1"
    assert fetch.calls == 1
    assert first.cancelled()


def test_repr_hides_the_value() -> None:
    """A cached value (a token) never shows in its repr."""
    from bridge.singleflight import Cached

    assert "secret" not in repr(Cached(value="secret", refresh_at=1.0))
