"""The one contract both stores keep; every test runs against SQLite and Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.errors import StoreError
from bridge.events import Event, event_id
from bridge.store.base import Routed, Store
from tests.plugins.store import StoreMaker


def ev(n: int, tenant: str = "acme", mailbox: str = "bob@acme.com") -> Event:
    return Event(
        id=event_id(tenant, "test", str(n)),
        type="exmail.mail.received",
        tenant=tenant,
        mailbox=mailbox,
        time="2026-11-21T05:00:00.123Z",
        data={"n": n, "summary": "x" * 50},
    )


def routed(*ns: int, sinks: tuple[str, ...] = ("oa",)) -> list[Routed]:
    return [Routed(event=ev(n), sinks=sinks) for n in ns]


async def test_version_is_zero_then_advances_with_commit(store: Store) -> None:
    """A tenant without a version reads "0"; commit(new_ver=...) stores it."""
    assert await store.get_version("acme") == "0"
    await store.commit("acme", routed(1), new_ver="1364460338051")
    assert await store.get_version("acme") == "1364460338051"
    await store.commit("acme", routed(2))
    assert await store.get_version("acme") == "1364460338051"
    assert await store.get_version("other") == "0"


async def test_version_advances_with_an_empty_commit(store: Store) -> None:
    """A commit with no events still stores the new version."""
    result = await store.commit("acme", [], new_ver="7")
    assert (result.emitted, result.duplicates) == (0, 0)
    assert await store.get_version("acme") == "7"


async def test_commit_fans_out_to_each_routed_sink(store: Store) -> None:
    """Each event lands once in the outbox of every sink its route names."""
    result = await store.commit(
        "acme", [Routed(ev(1), ("oa", "bus", "chat")), Routed(ev(2), ("bus",))]
    )
    assert result.emitted == 2
    assert [await store.backlog(s) for s in ("oa", "bus", "chat", "none")] == [1, 2, 1, 0]
    claimed = await store.claim("bus", limit=10, lease_s=30)
    assert [d.event for d in claimed] == [ev(1), ev(2)]
    assert all(d.attempt == 0 and d.sink == "bus" for d in claimed)
    assert all(abs(d.enqueued_at - time.time()) < 60 for d in claimed)


async def test_duplicates_within_window_are_skipped(store: Store) -> None:
    """An id committed before (or twice in one batch) is not emitted again."""
    first = await store.commit("acme", routed(1, 2))
    again = await store.commit("acme", routed(2, 3, 3))
    assert (first.emitted, first.duplicates) == (2, 0)
    assert (again.emitted, again.duplicates) == (1, 2)
    assert await store.backlog("oa") == 3


async def test_repush_after_window_is_emitted_again(store_maker: StoreMaker) -> None:
    """Once the dedupe window has passed, the same id is a new event again."""
    async with store_maker.open(dedupe_window_s=0.05) as store:
        await store.commit("acme", routed(1))
        assert (await store.commit("acme", routed(1))).duplicates == 1
        await asyncio.sleep(0.15)
        assert (await store.commit("acme", routed(1))).emitted == 1
        assert await store.backlog("oa") == 2


async def test_commit_failing_midway_leaves_nothing(store_maker: StoreMaker) -> None:
    """A commit that fails part-way raises StoreError and writes none of its parts."""
    async with store_maker.open() as store:
        with store_maker.failing_commit(), pytest.raises(StoreError):
            await store.commit("acme", routed(1, 2, sinks=("oa", "bus")), new_ver="9")
        assert await store.get_version("acme") == "0"
        assert await store.backlog("oa") == await store.backlog("bus") == 0
        assert await store.claim("oa", limit=10, lease_s=30) == []
        result = await store.commit("acme", routed(1, 2, sinks=("oa", "bus")), new_ver="9")
        assert result.emitted == 2


async def test_claim_is_oldest_first_and_hides_claimed(store: Store) -> None:
    """Claims come in commit order; a claimed delivery is not handed out twice."""
    await store.commit("acme", routed(1, 2))
    await store.commit("acme", routed(3))
    first = await store.claim("oa", limit=2, lease_s=30)
    second = await store.claim("oa", limit=10, lease_s=30)
    assert [d.event.id for d in first] == [ev(1).id, ev(2).id]
    assert [d.event.id for d in second] == [ev(3).id]
    assert await store.claim("oa", limit=10, lease_s=30) == []
    assert await store.backlog("oa") == 3


async def test_ack_forgets_the_delivery(store: Store) -> None:
    """An acked delivery leaves the backlog and never comes back."""
    await store.commit("acme", routed(1))
    [delivery] = await store.claim("oa", limit=1, lease_s=0.05)
    await store.ack(delivery)
    await asyncio.sleep(0.1)
    assert await store.claim("oa", limit=10, lease_s=30) == []
    assert await store.backlog("oa") == 0


async def test_retry_at_reschedules_with_one_more_attempt(store: Store) -> None:
    """retry_at hides the delivery until `at`, then returns it with attempt + 1."""
    await store.commit("acme", routed(1))
    [delivery] = await store.claim("oa", limit=1, lease_s=30)
    await store.retry_at(delivery, time.time() + 0.1, "http 503")
    assert await store.claim("oa", limit=1, lease_s=30) == []
    await asyncio.sleep(0.15)
    [again] = await store.claim("oa", limit=1, lease_s=30)
    assert (again.event, again.attempt) == (ev(1), 1)
    assert await store.backlog("oa") == 1


async def test_expired_claim_lease_makes_delivery_claimable(store: Store) -> None:
    """A claimer that vanishes without ack/retry gives the delivery back after its lease."""
    await store.commit("acme", routed(1))
    [lost] = await store.claim("oa", limit=1, lease_s=0.05)
    await asyncio.sleep(0.1)
    [again] = await store.claim("oa", limit=1, lease_s=30)
    assert again.event == lost.event
    assert again.attempt == 0


async def test_stale_claimer_cannot_reschedule(store: Store) -> None:
    """After its lease passed and another claimer took over, retry/dead-letter are ignored."""
    await store.commit("acme", routed(1))
    [stale] = await store.claim("oa", limit=1, lease_s=0.05)
    await asyncio.sleep(0.1)
    [current] = await store.claim("oa", limit=1, lease_s=30)
    await store.retry_at(stale, time.time() + 3600, "late")
    await store.dead_letter(stale, "late")
    assert await store.dead_count("oa") == 0
    await store.retry_at(current, time.time() - 1, "now")
    [third] = await store.claim("oa", limit=1, lease_s=30)
    assert third.attempt == 1


async def test_dead_letter_keeps_reason_and_attempts(store: Store) -> None:
    """dead_letter moves the delivery out of the outbox into the sink's dead letters."""
    await store.commit("acme", routed(1, 2, sinks=("oa", "bus")))
    [one, two] = await store.claim("oa", limit=2, lease_s=30)
    await store.retry_at(one, time.time() - 1, "503")
    [one] = await store.claim("oa", limit=1, lease_s=30)
    await store.dead_letter(one, "http 503 after 2 tries")
    await store.dead_letter(two, "http 400")
    letters = await store.dead_letters("oa")
    assert [(d.event, d.attempts, d.reason) for d in letters] == [
        (ev(1), 2, "http 503 after 2 tries"),
        (ev(2), 1, "http 400"),
    ]
    assert await store.dead_letters() == letters
    assert await store.dead_letters("bus") == []
    assert (await store.backlog("oa"), await store.dead_count("oa")) == (0, 2)
    assert (await store.backlog("bus"), await store.dead_count("bus")) == (2, 0)


async def _dead(store: Store, sink: str, *ns: int) -> None:
    await store.commit("acme", routed(*ns, sinks=(sink,)))
    for delivery in await store.claim(sink, limit=len(ns), lease_s=30):
        await store.dead_letter(delivery, "gone")


async def test_replay_returns_dead_letters_due_now(store: Store) -> None:
    """replay filters by sink and event id, and re-queues with attempt 0."""
    await _dead(store, "oa", 1, 2)
    await _dead(store, "bus", 3)
    assert await store.replay("oa", ev(2).id) == 1
    [back] = await store.claim("oa", limit=10, lease_s=30)
    assert (back.event, back.attempt) == (ev(2), 0)
    assert await store.replay() == 2
    assert [d.event for d in await store.claim("oa", limit=10, lease_s=30)] == [ev(1)]
    assert [d.event for d in await store.claim("bus", limit=10, lease_s=30)] == [ev(3)]
    assert await store.dead_count("oa") == await store.dead_count("bus") == 0
    assert await store.replay() == 0


async def test_purge_deletes_matching_dead_letters(store: Store) -> None:
    """purge filters by sink and event id and deletes for good."""
    await _dead(store, "oa", 1, 2)
    await _dead(store, "bus", 3, 4)
    assert await store.purge(event_id=ev(1).id) == 1
    assert await store.purge("bus") == 2
    assert [d.event for d in await store.dead_letters()] == [ev(2)]
    assert await store.purge() == 1
    assert await store.dead_letters() == []
    assert await store.backlog("oa") == await store.backlog("bus") == 0


async def test_wait_wakes_on_commit(store: Store) -> None:
    """A waiter on an idle sink returns as soon as a commit for that sink lands."""
    waiter = asyncio.create_task(store.wait("oa", 30.0), name="waiter")
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.commit("acme", routed(1, sinks=("bus",)))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.commit("acme", routed(2, sinks=("oa",)))
    async with asyncio.timeout(5):
        await waiter


async def test_wait_returns_when_a_retry_falls_due(store: Store) -> None:
    """A waiter returns once a scheduled retry becomes due, before its own timeout."""
    await store.commit("acme", routed(1))
    [delivery] = await store.claim("oa", limit=1, lease_s=30)
    await store.retry_at(delivery, time.time() + 0.1, "503")
    async with asyncio.timeout(5):
        while not await store.claim("oa", limit=1, lease_s=30):
            await store.wait("oa", 30.0)


async def test_wait_times_out_when_nothing_comes(store: Store) -> None:
    """With nothing due, wait returns after its timeout without error."""
    async with asyncio.timeout(5):
        await store.wait("oa", 0.05)


async def test_counts_follow_the_outbox(store: Store) -> None:
    """backlog counts due, scheduled and claimed deliveries; dead_count the dead letters."""
    await store.commit("acme", routed(1, 2, 3))
    a, b = await store.claim("oa", limit=2, lease_s=30)
    await store.ack(a)
    await store.dead_letter(b, "bad")
    assert (await store.backlog("oa"), await store.dead_count("oa")) == (1, 1)


async def test_get_secret_is_stable(store_maker: StoreMaker) -> None:
    """The first factory value is kept, across calls and re-opening."""
    async with store_maker.open() as store:
        assert await store.get_secret("click", b"first") == b"first"
        assert await store.get_secret("click", b"second") == b"first"
        assert await store.get_secret("other", b"x") == b"x"
    async with store_maker.open() as store:
        assert await store.get_secret("click", b"third") == b"first"


async def test_data_survives_reopen_and_restart(store_maker: StoreMaker) -> None:
    """Versions, outbox, attempts, dead letters and dedupe survive a restart."""
    async with store_maker.open() as store:
        await store.commit("acme", routed(1, 2, 3), new_ver="42")
        one, two = await store.claim("oa", limit=2, lease_s=30)
        await store.retry_at(one, time.time() - 1, "503")
        await store.dead_letter(two, "400")
        store_maker.restart()
        assert await store.get_version("acme") == "42"
    async with store_maker.open() as store:
        assert await store.get_version("acme") == "42"
        assert (await store.commit("acme", routed(1))).duplicates == 1
        claimed = await store.claim("oa", limit=10, lease_s=30)
        assert [(d.event, d.attempt) for d in claimed] == [(ev(1), 1), (ev(3), 0)]
        assert [d.reason for d in await store.dead_letters("oa")] == ["400"]


async def test_own_lease_and_heartbeat(store: Store) -> None:
    """An owner takes, renews and releases a lease; its heartbeat makes it live."""
    assert await store.acquire_lease("acme", "r1", 30)
    assert await store.acquire_lease("acme", "r1", 30)
    assert await store.lease_owner("acme") == "r1"
    assert await store.acquire_leases(["acme", "beta"], "r1", 30) == ["acme", "beta"]
    await store.release_lease("acme", "r1")
    assert await store.lease_owner("acme") is None
    await store.heartbeat("r1", 30)
    assert await store.live_owners() == ["r1"]


async def test_release_leases_gives_up_only_the_owners(store: Store) -> None:
    """release_leases frees every lease the owner holds among the names, and no other."""
    assert await store.acquire_leases(["a", "b", "c"], "r1", 30) == ["a", "b", "c"]
    assert await store.acquire_leases(["d"], "r2", 30) == ["d"]
    assert await store.release_leases(["a", "b", "c", "d", "nobody"], "r1") == 3
    assert [await store.lease_owner(t) for t in "abcd"] == [None, None, None, "r2"]
    assert await store.release_leases([], "r1") == 0


async def test_ping(store: Store) -> None:
    """ping answers on an open store."""
    await store.ping()
