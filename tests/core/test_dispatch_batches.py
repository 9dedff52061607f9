"""Batched acks: a burst is acknowledged in a few store calls, and nothing is lost."""

from __future__ import annotations

import asyncio

from bridge.store.base import Store
from tests.core.test_dispatch import SINK, Receiver, commit_mails, dispatching
from tests.core.test_group_commit import _scripts_run
from tests.core.test_listener import until
from tests.plugins.store import StoreMaker

BURST = 40


async def _delivered(receiver: Receiver, count: int) -> bool:
    return len(receiver.got) >= count


async def test_burst_is_acked_in_batches(store_maker: StoreMaker) -> None:
    """Forty deliveries in flight eight at a time are all acked in batched store calls."""
    receiver = Receiver(plan=lambda _mailbox, _attempt: (204, {}))
    async with store_maker.open() as store:
        await commit_mails(store, *(f"u{n}@acme.com" for n in range(BURST)))
        before = await _scripts_run(store_maker)
        async with dispatching(store, receiver, retry_s=[0, 1]):
            await until(lambda: _delivered(receiver, BURST))
            await until(lambda: _empty(store))
        scripts = await _scripts_run(store_maker) - before
    assert sorted(mailbox for _, mailbox, _ in receiver.got) == sorted(
        f"u{n}@acme.com" for n in range(BURST)
    )
    if store_maker.redis_server is not None:
        assert scripts < BURST  # claims and acks together, one per delivery would be 40+


async def _empty(store: Store) -> bool:
    return await store.backlog(SINK) == 0


async def test_a_stop_gives_the_unsent_reserve_back_at_once(store_maker: StoreMaker) -> None:
    """Deliveries claimed ahead but never sent are due again at once after a stop, none lost."""
    receiver = Receiver(plan=lambda _mailbox, _attempt: (204, {}))
    gate = asyncio.Event()
    mailboxes = [f"u{n}@acme.com" for n in range(20)]
    receiver.gates = dict.fromkeys(mailboxes, gate)
    async with store_maker.open() as store:
        await commit_mails(store, *mailboxes)
        async with dispatching(store, receiver, retry_s=[0, 1]) as dispatcher:
            await until(lambda: _waiting(receiver, 8))  # every slot busy, a reserve in hand
            dispatcher.stop()
            gate.set()
        left = await store.claim(SINK, limit=100, lease_s=30)
    sent = [mailbox for _, mailbox, _ in receiver.got]
    assert sorted(sent + [d.event.mailbox for d in left]) == sorted(mailboxes)
    assert len(left) > 20 - 16  # more than the deliveries the dispatcher never claimed


async def _waiting(receiver: Receiver, count: int) -> bool:
    return receiver.waiting >= count
