"""The subscription half of the store contract; every test runs on SQLite and Redis."""

from __future__ import annotations

import time

from bridge.delivery.subscription_model import (
    Attempt,
    Subscription,
    new_id,
    new_secret,
)
from bridge.events import Event, event_id
from bridge.store.base import Routed, Store
from bridge.store.subscriptions import AttemptQuery, with_subscriptions
from tests.plugins.store import StoreMaker


def sub(**fields: object) -> Subscription:
    base: dict[str, object] = {
        "id": new_id("sub"),
        "url": "https://oa.example/hook",
        "secrets": (),
        "created_at": time.time(),
    }
    base.update(fields)
    return Subscription(**base)  # type: ignore[arg-type]


def ev(n: int, tenant: str = "acme") -> Event:
    return Event(
        id=event_id(tenant, "sub-test", str(n)),
        type="exmail.mail.received",
        tenant=tenant,
        mailbox="bob@acme.com",
        time="2026-11-29T10:00:00.000Z",
        data={"n": n},
    )


def attempt(sub_id: str, n: int, ok: bool, at: float) -> Attempt:
    return Attempt(
        id=new_id("att", at),
        subscription_id=sub_id,
        event_id=ev(n).id,
        event_type="exmail.mail.received",
        at=at,
        status="succeeded" if ok else "failed",
        status_code=204 if ok else 503,
        duration_ms=12,
        error="" if ok else "HTTP 503",
    )


async def test_subscriptions_put_get_list_delete_and_count_changes(store: Store) -> None:
    """Subscriptions round-trip whole; every put and delete moves the change counter."""
    subs = with_subscriptions(store)
    before = await subs.subscriptions_changed()
    a = sub(metadata={"team": "hr"}, scope=("acme",))
    b = sub(event_types=("exmail.mail.*",), disabled=True, disabled_reason="by hand")
    await subs.put_subscription(a)
    await subs.put_subscription(b)
    assert await subs.get_subscription(a.id) == a
    assert await subs.list_subscriptions() == sorted([a, b], key=lambda s: s.id)
    assert await subs.subscriptions_changed() >= before + 2
    moved = await subs.subscriptions_changed()
    assert await subs.delete_subscription(a.id)
    assert not await subs.delete_subscription(a.id)
    assert await subs.get_subscription(a.id) is None
    assert await subs.subscriptions_changed() > moved


async def test_secrets_survive_the_store_with_their_grace(store: Store) -> None:
    """A rotated subscription keeps the old secret, with its expiry, in the store."""
    subs = with_subscriptions(store)
    old, new = new_secret(), new_secret()
    rotated = sub(secrets=()).rotated(old, 0, 100.0).rotated(new, 60, 200.0)
    await subs.put_subscription(rotated)
    stored = await subs.get_subscription(rotated.id)
    assert stored is not None
    assert stored.signing_secrets(230.0) == (new, old)
    assert stored.signing_secrets(270.0) == (new,)


async def test_deleting_a_subscription_drops_its_deliveries(store: Store) -> None:
    """Pending deliveries and dead letters of a deleted subscription are gone."""
    subs = with_subscriptions(store)
    victim, other = sub(), sub()
    await subs.put_subscription(victim)
    await store.commit("acme", [Routed(ev(1), (victim.id, other.id)), Routed(ev(2), (victim.id,))])
    [first, _] = await store.claim(victim.id, limit=2, lease_s=30)
    await store.dead_letter(first, "HTTP 410")
    assert await subs.delete_subscription(victim.id)
    assert await store.backlog(victim.id) == 0
    assert await store.dead_letters(victim.id) == []
    assert await store.backlog(other.id) == 1


async def test_drop_deliveries_empties_one_sink(store: Store) -> None:
    """drop_deliveries removes what waits for one sink and reports how many."""
    subs = with_subscriptions(store)
    await store.commit("acme", [Routed(ev(1), ("a", "b")), Routed(ev(2), ("a",))])
    assert await subs.drop_deliveries("a") == 2
    assert await store.backlog("a") == 0
    assert await store.backlog("b") == 1


async def test_enqueue_bypasses_dedupe_and_is_due_now(store: Store) -> None:
    """A resend enqueues an already-committed event again, due at once, attempt 0."""
    subs = with_subscriptions(store)
    await store.commit("acme", [Routed(ev(1), ("a",))])
    [claimed] = await store.claim("a", limit=1, lease_s=30)
    await store.ack(claimed)
    assert await subs.enqueue("a", [ev(1), ev(2)]) == 2
    again = await store.claim("a", limit=10, lease_s=30)
    assert [d.event for d in again] == [ev(1), ev(2)]
    assert all(d.attempt == 0 for d in again)


async def test_attempts_track_failing_since_and_filter(store: Store) -> None:
    """Failures since the last success are dated from the first; filters and the cursor work."""
    subs = with_subscriptions(store)
    s, now = sub(), time.time()

    async def record(n: int, ok: bool, at: float) -> float | None:
        return await subs.record_attempt(attempt(s.id, n, ok, at), ev(n), keep_s=3600, keep_max=99)

    since = await record(1, False, now - 30)
    assert since is not None
    assert abs(since - (now - 30)) < 0.01
    since = await record(1, False, now - 20)
    assert since is not None
    assert abs(since - (now - 30)) < 0.01
    assert await record(1, True, now - 10) is None
    since = await record(2, False, now)
    assert since is not None
    assert abs(since - now) < 0.01
    listed = await subs.attempts(AttemptQuery(s.id))
    assert [a.at for a in listed] == [now, now - 10, now - 20, now - 30]
    failed = await subs.attempts(AttemptQuery(s.id, status="failed", since=now - 25))
    assert [a.at for a in failed] == [now, now - 20]
    page = await subs.attempts(AttemptQuery(s.id, limit=2))
    rest = await subs.attempts(AttemptQuery(s.id, before_id=page[-1].id, until=now))
    assert [a.at for a in page + rest] == [a.at for a in listed]
    assert await subs.event_body(ev(2).id) == ev(2)
    assert await subs.event_body(ev(9).id) is None


async def test_attempts_are_bounded_in_count_and_age(store: Store) -> None:
    """Only the newest keep_max attempts within keep_s are kept."""
    subs = with_subscriptions(store)
    s, now = sub(), time.time()
    await subs.record_attempt(attempt(s.id, 0, True, now - 100), ev(0), keep_s=50, keep_max=3)
    for n in range(1, 6):
        await subs.record_attempt(attempt(s.id, n, True, now - 5 + n), ev(n), keep_s=50, keep_max=3)
    kept = await subs.attempts(AttemptQuery(s.id))
    assert [a.event_id for a in kept] == [ev(5).id, ev(4).id, ev(3).id]


async def test_subscriptions_are_shared_by_processes(store_maker: StoreMaker) -> None:
    """A subscription put through one store handle is seen through another (a replica)."""
    async with store_maker.open() as one, store_maker.open() as two:
        a = sub(description="made on one")
        await with_subscriptions(one).put_subscription(a)
        assert await with_subscriptions(two).get_subscription(a.id) == a


async def test_record_attempts_writes_a_batch_in_one_step(store: Store) -> None:
    """A batch keeps every attempt and answers each subscription's state after it."""
    subs = with_subscriptions(store)
    a, b, now = sub(), sub(), time.time()
    batch = [
        (attempt(a.id, 1, False, now - 3), ev(1)),
        (attempt(b.id, 2, False, now - 2), ev(2)),
        (attempt(a.id, 3, True, now - 1), ev(3)),
    ]
    since = await subs.record_attempts(batch, keep_s=3600, keep_max=99)
    assert since[a.id] is None
    assert since[b.id] is not None
    assert abs(since[b.id] - (now - 2)) < 0.01  # type: ignore[operator]
    assert len(await subs.attempts(AttemptQuery(a.id))) == 2
    assert await subs.record_attempts([], keep_s=3600, keep_max=99) == {}
