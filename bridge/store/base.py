"""The store's contract: versions, the outbox per sink, dedupe, dead letters, leases,
and what sources remember between runs (unread baselines, the last directory walk).

Both backends (`sqlite`, `redis`) implement `Store` and pass the same contract tests.
The SQLite store serves one process, so its leases are always granted and its
membership is this process alone; callers need no special case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

import orjson

from bridge.events import Event
from bridge.store.budget import Grant, Limits
from bridge.store.preferences_base import PreferenceStore
from bridge.store.upstream_tokens import UpstreamTokenStore

__all__ = [
    "HOLD_S",
    "CommitResult",
    "DeadLetter",
    "Delivery",
    "DirectorySnapshot",
    "Routed",
    "Store",
    "scan_size",
]

# Ordered sinks: a due delivery held behind an earlier one that is itself due (but was not
# read in this claim) is looked at again this much later, so claims never spin on it.
HOLD_S = 1.0


def scan_size(limit: int) -> int:
    """How many due deliveries an ordered claim reads to find `limit` it may take."""
    return max(limit * 4, 64)


@dataclass(frozen=True, slots=True)
class Routed:
    """An event and the names of the sinks its route sends it to."""

    event: Event
    sinks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit did: events appended, events skipped as duplicates, and the nonces
    that were remembered already (then nothing was written)."""

    emitted: int
    duplicates: int
    replayed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event claimed for one sink; `ref` is the backend's handle for ack/retry."""

    sink: str
    event: Event
    attempt: int  # deliveries tried before this one (0 on the first try)
    ref: str
    enqueued_at: float  # unix seconds when the event was committed


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that exhausted its retries or failed permanently."""

    sink: str
    event: Event
    attempts: int
    reason: str
    failed_at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class DirectorySnapshot:
    """A tenant's directory as its last walk saw it: member -> fingerprint, and a hash of it."""

    version: str
    members: Mapping[str, str]

    def to_json(self) -> bytes:
        """The snapshot as JSON bytes, as both stores keep it."""
        return orjson.dumps({"version": self.version, "members": dict(self.members)})

    @classmethod
    def from_json(cls, raw: bytes) -> DirectorySnapshot:
        """Inverse of `to_json`."""
        doc = orjson.loads(raw)
        return cls(version=str(doc["version"]), members=dict(doc["members"]))


class Store(PreferenceStore, UpstreamTokenStore, Protocol):
    """What the listeners, dispatchers, CLI and HTTP server need from storage."""

    backend: str  # "sqlite" or "redis", for errors and metrics

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...

    async def ping(self) -> None:
        """Raise StoreError unless the store answers."""

    def full(self) -> str | None:
        """Why writes are refused for want of disk or memory now, or None."""

    async def get_version(self, tenant: str) -> str:
        """The tenant's stored version, "0" when none."""

    async def commit(
        self,
        tenant: str,
        routed: Sequence[Routed],
        new_ver: str | None = None,
        baselines: Mapping[str, int] | None = None,
        *,
        nonces: Sequence[str] = (),
        nonce_ttl_s: float = 0.0,
    ) -> CommitResult:
        """Atomically: append each event (not seen in the dedupe window) to its sinks'
        outboxes, remember its id, advance the version when `new_ver` is given, set each
        mailbox's unread baseline in `baselines` (the events announce the change), and
        remember each of `nonces` (callback signature+nonce keys) for `nonce_ttl_s`.

        When any of `nonces` is remembered already and not expired, nothing at all is
        written and `replayed` names those nonces: the caller refuses them and commits the
        rest again. Checking and remembering in the commit itself makes a replay guard
        that costs no extra store round trip and cannot mark what was not committed."""

    async def get_baselines(self, tenant: str) -> dict[str, int]:
        """The last unread count committed per mailbox of `tenant` (empty when none)."""

    async def get_directory(self, tenant: str) -> DirectorySnapshot | None:
        """The tenant's directory as the last walk stored it, or None before the first."""

    async def put_directory(self, tenant: str, snapshot: DirectorySnapshot) -> None:
        """Replace the tenant's stored directory walk."""

    async def claim(
        self, sink: str, *, limit: int, lease_s: float, acks: Sequence[Delivery] = ()
    ) -> list[Delivery]:
        """Up to `limit` due deliveries for `sink`; each is invisible to other claimers
        for `lease_s` seconds unless acked, rescheduled or dead-lettered before that.
        `acks` (deliveries of `sink` claimed with `claim` that succeeded) are forgotten
        first, in the same transaction or round trip, as `ack_many` would."""

    async def claim_in_order(self, sink: str, *, limit: int, lease_s: float) -> list[Delivery]:
        """Like `claim`, for ordered sinks: a delivery is handed out only when no earlier
        delivery (commit order) of the same mailbox is still waiting for `sink`, or when
        that one is handed out in the same call (they come back in commit order). A due
        delivery held back is deferred, without an attempt, to the earlier one's due time.
        The block is the stored line itself, so it holds across replicas and restarts."""

    async def defer(self, delivery: Delivery, at: float) -> None:
        """Try the delivery again at unix time `at` without counting an attempt (it was
        held, not tried). Ignored when the claim was lost, like `retry_at`."""

    async def renew(self, delivery: Delivery, lease_s: float) -> Delivery | None:
        """Extend the claim to `lease_s` from now. Returns the delivery to use from now on
        (its `ref` may change), or None when the claim was lost."""

    async def take_budget(self, key: str, want: int, limits: Limits, now: float) -> Grant:
        """Take `want` slots of `key`'s send budget when they all fit in every (sends,
        window_s) limit, else one slot when one fits, else none (with the wait until one
        frees); `now` is unix seconds. Shared by every process on the store."""

    async def advance_mark(self, key: str, value: str, ttl_s: float) -> bool:
        """Set `key`'s mark to `value` unless the mark is already greater (string order);
        True when `value` is now the mark. The mark is forgotten `ttl_s` after its last
        advance. Keeps a retained state (an unread count) from going backwards."""

    async def wait(self, sink: str, timeout_s: float) -> None:
        """Return when something may be due for `sink`, or after `timeout_s`."""

    async def ack(self, delivery: Delivery) -> None:
        """The delivery succeeded: forget it."""

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Several deliveries (claimed with `claim`, not `claim_in_order`) succeeded:
        forget them all in one transaction or one round trip."""

    async def retry_at(self, delivery: Delivery, at: float, reason: str) -> None:
        """Try the delivery again at unix time `at`, with `attempt + 1`."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the delivery to the sink's dead letters."""

    async def dead_letters(self, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first, of one sink or all."""

    async def replay(self, sink: str | None = None, event_id: str | None = None) -> int:
        """Move matching dead letters back into the outbox, due now; return how many."""

    async def purge(self, sink: str | None = None, event_id: str | None = None) -> int:
        """Delete matching dead letters; return how many."""

    async def backlog(self, sink: str) -> int:
        """Deliveries waiting (due or scheduled, claimed or not) for `sink`."""

    async def dead_count(self, sink: str) -> int:
        """Dead letters of `sink`."""

    async def get_secret(self, name: str, factory: bytes) -> bytes:
        """The value stored under `name`, storing `factory` first if there is none."""

    async def acquire_leases(self, tenants: Sequence[str], owner: str, ttl_s: float) -> list[str]:
        """Take or renew each tenant's lease for `owner` (one round trip); return the
        tenants `owner` now holds. A lease held by another live owner is left alone."""

    async def acquire_lease(self, tenant: str, owner: str, ttl_s: float) -> bool:
        """Take or renew one tenant's lease for `ttl_s` seconds; True when `owner` holds it."""

    async def release_lease(self, tenant: str, owner: str) -> None:
        """Give the lease up, if `owner` holds it."""

    async def release_leases(self, tenants: Sequence[str], owner: str) -> int:
        """Give up every lease `owner` holds among `tenants` in one round trip (shutdown of
        10,000 tenants fits in `grace_s`); return how many were released."""

    async def lease_owner(self, tenant: str) -> str | None:
        """Who holds the tenant's lease now, or None."""

    async def heartbeat(self, owner: str, ttl_s: float) -> None:
        """Announce that replica `owner` is alive for the next `ttl_s` seconds."""

    async def live_owners(self) -> list[str]:
        """Replicas whose heartbeat has not expired, sorted (for rendezvous hashing)."""

    async def leave(self, owner: str) -> None:
        """Replica `owner` stops gracefully: forget its heartbeat now and announce it."""

    async def announce(self) -> None:
        """Tell every replica on the store that membership or lease ownership changed."""

    async def wait_members(self, timeout_s: float) -> None:
        """Return soon after any replica on the store announces (or leaves), or after
        `timeout_s`. A hint to rebalance now; a missed one costs one lease tick."""
