"""The store's contract for subscriptions, API tokens and delivery attempts.

Both backends implement `SubscriptionStore` (as mixins: `SqliteSubscriptions` and
`SqliteTokens`, `RedisSubscriptions` and `RedisTokens`) and pass
`tests/store/test_contract_subscriptions.py` and `tests/store/test_contract_tokens.py`.

A subscription's outbox is the ordinary per-sink outbox, under the subscription id as
the sink name, so retries, dead letters and replay are the configured sinks' own.
Every change to a subscription bumps one counter (`subscriptions_changed`): replicas poll
it and reload only when it moved. Attempts are kept `keep_s` seconds and at most
`keep_max` per subscription; the event bodies they carried are kept `keep_s` seconds,
once per event, so an event can be resent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from bridge.delivery.subscription_model import ApiToken, Attempt, AttemptStatus, Subscription
from bridge.events import Event
from bridge.store.base import Store

__all__ = [
    "AttemptQuery",
    "OutboxWithSubscriptions",
    "SubscriptionStore",
    "TokenStore",
    "with_subscriptions",
]


@dataclass(frozen=True, slots=True)
class AttemptQuery:
    """Which attempts of one subscription to list, newest first."""

    subscription_id: str
    status: AttemptStatus | None = None
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # unix seconds, inclusive
    before_id: str | None = None  # the cursor: attempts with a smaller id
    limit: int = 50

    def wants(self, attempt: Attempt) -> bool:
        """Whether `attempt` passes every filter (backends may pre-filter)."""
        return (
            (self.status is None or attempt.status == self.status)
            and (self.since is None or attempt.at >= self.since)
            and (self.until is None or attempt.at <= self.until)
            and (self.before_id is None or attempt.id < self.before_id)
        )


class TokenStore(Protocol):
    """Scoped API tokens, kept by the SHA-256 of their value (never the value)."""

    async def put_token(self, token: ApiToken) -> None:
        """Store a scoped API token (hashed)."""

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None. Read from the store on every call (no
        cache), so a revocation is seen by the very next lookup on every replica."""

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, sorted by id (creation order)."""

    async def delete_token(self, token_id: str) -> bool:
        """Forget the token, so its hash finds nothing any more; False when there was none."""


class SubscriptionStore(TokenStore, Protocol):
    """Subscription storage; a `Store` that also keeps subscriptions implements it."""

    async def put_subscription(self, sub: Subscription) -> None:
        """Create or replace `sub` (by id)."""

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        """The subscription, or None."""

    async def list_subscriptions(self) -> list[Subscription]:
        """Every subscription, sorted by id (creation order)."""

    async def delete_subscription(self, sub_id: str) -> bool:
        """Forget the subscription and drop its pending deliveries and dead letters;
        False when there was none."""

    async def subscriptions_changed(self) -> int:
        """A counter that moves on every put or delete."""

    async def drop_deliveries(self, sink: str) -> int:
        """Delete every pending delivery and dead letter of `sink`; how many."""

    async def enqueue(self, sink: str, events: Sequence[Event]) -> int:
        """Append `events` to `sink`'s outbox, due now, bypassing dedupe (a resend)."""

    async def record_attempts(
        self, items: Sequence[tuple[Attempt, Event]], *, keep_s: float, keep_max: int
    ) -> dict[str, float | None]:
        """Keep the attempts and their events' bodies (one step); return, for each
        subscription among them, since when it has failed every attempt (None: its last
        attempt succeeded)."""

    async def record_attempt(
        self, attempt: Attempt, event: Event, *, keep_s: float, keep_max: int
    ) -> float | None:
        """`record_attempts` of one attempt; its subscription's failing-since."""

    async def attempts(self, query: AttemptQuery) -> list[Attempt]:
        """Attempts matching `query`, newest first, at most `query.limit`."""

    async def event_body(self, event_id: str) -> Event | None:
        """An event some subscription was sent within the retention, or None."""


class OutboxWithSubscriptions(Store, SubscriptionStore, Protocol):
    """A store with both halves: what the subscription API and delivery need."""


def with_subscriptions(store: Store) -> OutboxWithSubscriptions:
    """`store` as a `OutboxWithSubscriptions`; both backends are one (TypeError if not)."""
    if not callable(getattr(store, "put_subscription", None)):
        raise TypeError(f"the {store.backend} store keeps no subscriptions")
    return cast(OutboxWithSubscriptions, store)
