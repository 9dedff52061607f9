"""Per-tenant access tokens: cached, refreshed before expiry, one fetch at a time per tenant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Token", "TokenCache"]


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and the monotonic time after which it is no longer used."""

    value: str
    refresh_at: float

    def __repr__(self) -> str:
        return f"Token(refresh_at={self.refresh_at:.1f})"  # never show the value


Fetcher = Callable[[], Awaitable[tuple[str, float]]]


class TokenCache:
    """Tokens by tenant key; a fetcher answers `(token, expires_in_s)`.

    A token is refreshed `margin_s` before it expires, but never later than half-way
    through its lifetime, so short-lived tokens are not fetched on every call. Concurrent
    callers for one tenant share one fetch (single flight).
    """

    def __init__(self, *, margin_s: float) -> None:
        self._margin_s = margin_s
        self._tokens: dict[str, Token] = {}
        self._flights: dict[str, asyncio.Future[Token]] = {}

    async def get(self, key: str, fetch: Fetcher) -> str:
        """A valid token for `key`, fetching one with `fetch` if needed."""
        token = self._tokens.get(key)
        if token is not None and time.monotonic() < token.refresh_at:
            return token.value
        return (await self._refresh(key, fetch)).value

    def invalidate(self, key: str, value: str | None = None) -> None:
        """Forget the token of `key` (only if it is still `value`, when given)."""
        token = self._tokens.get(key)
        if token is not None and (value is None or token.value == value):
            del self._tokens[key]

    async def _refresh(self, key: str, fetch: Fetcher) -> Token:
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch_one(key, fetch))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # shield: one caller's cancellation must not cancel the fetch the others wait on
        return await asyncio.shield(flight)

    def _landed(self, key: str, flight: asyncio.Future[Token]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here: every waiter may have gone away

    async def _fetch_one(self, key: str, fetch: Fetcher) -> Token:
        value, expires_in_s = await fetch()
        lead_s = min(self._margin_s, expires_in_s / 2)
        token = Token(value=value, refresh_at=time.monotonic() + expires_in_s - lead_s)
        self._tokens[key] = token
        return token
