"""Batched acks (both stores): many deliveries forgotten in one transaction or round trip."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from tests.store.test_contract import routed


async def test_ack_many_forgets_exactly_the_given_deliveries(store: Store) -> None:
    """Acking three of five claimed deliveries leaves the other two, and nothing else."""
    await store.commit("acme", routed(1, 2, 3, 4, 5, sinks=("oa", "bus")))
    claimed = await store.claim("oa", limit=10, lease_s=30)
    await store.ack_many(claimed[:3])
    assert await store.backlog("oa") == 2
    assert await store.backlog("bus") == 5  # the other sink's copies are untouched
    await store.ack_many([])
    await store.ack_many(claimed[:3])  # acking again is harmless
    assert await store.backlog("oa") == 2


async def test_acked_deliveries_are_never_claimed_again(store: Store) -> None:
    """After ack_many, an expired lease brings back only what was not acked."""
    await store.commit("acme", routed(1, 2, 3))
    claimed = await store.claim("oa", limit=10, lease_s=0.001)
    await store.ack_many(claimed[:2])
    await asyncio.sleep(0.01)  # the claims' leases are over
    again = await store.claim("oa", limit=10, lease_s=30)
    assert [d.event.id for d in again] == [claimed[2].event.id]


async def test_a_claim_forgets_the_acks_it_carries(store: Store) -> None:
    """claim(acks=...) acks those deliveries and claims others in the same call."""
    await store.commit("acme", routed(1, 2, 3, 4, 5, 6, sinks=("oa", "bus")))
    first = await store.claim("oa", limit=3, lease_s=30)
    second = await store.claim("oa", limit=10, lease_s=30, acks=first)
    assert len(second) == 3
    assert {d.event.id for d in first}.isdisjoint(d.event.id for d in second)
    assert await store.backlog("oa") == 3
    assert await store.backlog("bus") == 6  # the other sink's copies are untouched
