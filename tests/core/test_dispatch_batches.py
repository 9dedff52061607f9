"""Batched acks: a burst is acknowledged in a few store calls, and nothing is lost."""

from __future__ import annotations

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
