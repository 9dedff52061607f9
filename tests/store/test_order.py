"""The contract of ordered claims, `defer` and `renew`; every test runs against both stores."""

from __future__ import annotations

import asyncio
import time

from bridge.store.base import Delivery, Routed, Store
from tests.plugins.store import StoreMaker
from tests.store.test_contract import ev


def mails(*pairs: tuple[int, str]) -> list[Routed]:
    """One routed event per (n, mailbox), to sink `oa`."""
    return [Routed(event=ev(n, mailbox=mailbox), sinks=("oa",)) for n, mailbox in pairs]


def numbers(deliveries: list[Delivery]) -> list[int]:
    """The `n` of each claimed event."""
    return [int(d.event.data["n"]) for d in deliveries]


async def test_ordered_claim_takes_a_mailbox_line_in_commit_order(store: Store) -> None:
    """An ordered claim hands out one delivery per mailbox; an ack moves the line on at once."""
    await store.commit("acme", mails((1, "bob@x"), (2, "amy@x"), (3, "bob@x"), (4, "bob@x")))
    first = await store.claim_in_order("oa", limit=10, lease_s=30)
    assert numbers(first) == [1, 2]
    for delivery in first:
        await store.ack(delivery)
    [second] = await store.claim_in_order("oa", limit=10, lease_s=30)
    assert numbers([second]) == [3]
    await store.ack(second)
    assert numbers(await store.claim_in_order("oa", limit=10, lease_s=30)) == [4]


async def test_claimed_delivery_blocks_its_mailbox_for_other_claimers(
    store_maker: StoreMaker,
) -> None:
    """While bob's first mail is claimed, a second store sees amy's mail but not bob's next."""
    async with store_maker.open() as one, store_maker.open() as two:
        await one.commit("acme", mails((1, "bob@x")))
        [first] = await one.claim_in_order("oa", limit=10, lease_s=30)
        await one.commit("acme", mails((2, "bob@x"), (3, "amy@x")))
        assert numbers(await two.claim_in_order("oa", limit=10, lease_s=30)) == [3]
        await one.ack(first)
        assert numbers(await two.claim_in_order("oa", limit=10, lease_s=30)) == [2]


async def test_retry_blocks_the_mailbox_until_it_is_due(store: Store) -> None:
    """A rescheduled first mail keeps later mails of its mailbox back, past the claim lease."""
    await store.commit("acme", mails((1, "bob@x"), (2, "bob@x")))
    got = await store.claim_in_order("oa", limit=1, lease_s=0.05)
    assert numbers(got) == [1]
    await store.retry_at(got[0], time.time() + 0.3, "http 503")
    await asyncio.sleep(0.1)  # the claim lease has passed; the block has not
    assert await store.claim_in_order("oa", limit=10, lease_s=30) == []
    await asyncio.sleep(0.3)
    [again] = await store.claim_in_order("oa", limit=10, lease_s=30)
    assert (numbers([again]), again.attempt) == ([1], 1)
    await store.ack(again)
    [second] = await store.claim_in_order("oa", limit=10, lease_s=30)
    assert (numbers([second]), second.attempt) == ([2], 0)


async def test_expired_claim_comes_back_first_in_line(store: Store) -> None:
    """A claimer that died: after its lease the same first mail is handed out, then the rest."""
    await store.commit("acme", mails((1, "bob@x"), (2, "bob@x")))
    assert numbers(await store.claim_in_order("oa", limit=1, lease_s=0.05)) == [1]
    await asyncio.sleep(0.1)
    assert numbers(await store.claim_in_order("oa", limit=10, lease_s=30)) == [1]


async def test_dead_letter_opens_the_line(store: Store) -> None:
    """After the first mail is dead-lettered, the next one of the mailbox may go."""
    await store.commit("acme", mails((1, "bob@x"), (2, "bob@x")))
    [first] = await store.claim_in_order("oa", limit=1, lease_s=30)
    await store.dead_letter(first, "http 400")
    assert numbers(await store.claim_in_order("oa", limit=10, lease_s=30)) == [2]


async def test_defer_does_not_count_an_attempt(store: Store) -> None:
    """defer hides the delivery until `at` and returns it with the same attempt count."""
    await store.commit("acme", mails((1, "bob@x")))
    [held] = await store.claim("oa", limit=1, lease_s=30)
    await store.defer(held, time.time() + 0.1)
    assert await store.claim("oa", limit=1, lease_s=30) == []
    await asyncio.sleep(0.15)
    [again] = await store.claim("oa", limit=1, lease_s=30)
    assert again.attempt == 0


async def test_stale_claimer_cannot_defer(store: Store) -> None:
    """A defer from a claimer whose lease passed and was taken over is ignored."""
    await store.commit("acme", mails((1, "bob@x")))
    [stale] = await store.claim("oa", limit=1, lease_s=0.05)
    await asyncio.sleep(0.1)
    [current] = await store.claim("oa", limit=1, lease_s=0.2)
    await store.defer(stale, time.time() + 3600)
    await asyncio.sleep(0.3)
    [third] = await store.claim("oa", limit=1, lease_s=30)
    assert third.event == current.event


async def test_renew_keeps_the_claim_past_its_first_lease(store: Store) -> None:
    """A renewed claim is not handed out again; the renewed handle can still retry it."""
    await store.commit("acme", mails((1, "bob@x")))
    [claimed] = await store.claim("oa", limit=1, lease_s=0.1)
    renewed = await store.renew(claimed, 30)
    assert renewed is not None
    await asyncio.sleep(0.15)
    assert await store.claim("oa", limit=1, lease_s=30) == []
    await store.retry_at(renewed, time.time() - 1, "http 503")
    [again] = await store.claim("oa", limit=1, lease_s=30)
    assert again.attempt == 1


async def test_renew_of_a_lost_claim_says_so(store: Store) -> None:
    """Renewing a claim that expired and was taken over returns None."""
    await store.commit("acme", mails((1, "bob@x")))
    [stale] = await store.claim("oa", limit=1, lease_s=0.05)
    await asyncio.sleep(0.1)
    await store.claim("oa", limit=1, lease_s=30)
    assert await store.renew(stale, 30) is None


async def test_many_held_mails_do_not_hide_other_mailboxes(store: Store) -> None:
    """A long line held behind a retry is deferred, so a later mailbox's mail is still found."""
    await store.commit("acme", mails((0, "bob@x")))
    [head] = await store.claim_in_order("oa", limit=1, lease_s=30)
    await store.retry_at(head, time.time() + 60, "http 503")
    await store.commit("acme", mails(*((n, "bob@x") for n in range(1, 200))))
    await store.commit("acme", mails((500, "amy@x")))
    found: list[int] = []
    for _ in range(5):
        found += numbers(await store.claim_in_order("oa", limit=4, lease_s=30))
    assert found == [500]
