"""The "my notifications" part of the store contract, against SQLite and Redis."""

from __future__ import annotations

import asyncio
from datetime import time

from bridge.delivery.preferences import Notice, Preferences
from bridge.store.base import Store
from tests.plugins.store import StoreMaker
from tests.store.test_contract import ev

BOB = "wwcorp/bob"


def notice(n: int, state: str = "delivered") -> Notice:
    return Notice(
        event_id=f"e{n:03d}",
        mailbox="bob@acme.com",
        sender="alice@partner.com",
        subject=f"mail {n}",
        at=1_700_000_000.0 + n,
        state=state,  # type: ignore[arg-type]
    )


async def test_preferences_round_trip_per_member(store: Store) -> None:
    """Saved preferences read back equal, per member; a member who never saved has None."""
    prefs = Preferences(
        mute_until=1_700_000_000.5,
        quiet_start=time(22, 0),
        quiet_end=time(7, 30),
        timezone="Europe/Berlin",
        vip_senders=("boss@acme.com", "*@board.acme.com"),
        muted_senders=("ci@acme.com",),
        muted_keywords=("[CI]", "周报"),
        digest="hourly",
    )
    assert await store.get_preferences(BOB) is None
    await store.set_preferences(BOB, prefs)
    assert await store.get_preferences(BOB) == prefs
    assert await store.get_preferences("wwcorp/carol") is None
    await store.set_preferences(BOB, Preferences())
    assert await store.get_preferences(BOB) == Preferences()


async def test_preferences_written_by_one_replica_are_read_by_another(
    store_maker: StoreMaker,
) -> None:
    """A second store over the same data sees a member's new preferences at once."""
    async with store_maker.open() as one, store_maker.open() as two:
        await one.set_preferences(BOB, Preferences(digest="daily"))
        assert await two.get_preferences(BOB) == Preferences(digest="daily")


async def test_notices_newest_first_upserted_and_trimmed(store: Store) -> None:
    """Notices come newest first; the same event id replaces its line; 50 are kept."""
    for n in range(60):
        await store.record_notice(BOB, notice(n, "held"))
    await store.record_notice(BOB, notice(59, "delivered"))
    newest = await store.notices(BOB, limit=20)
    assert [x.event_id for x in newest] == [f"e{n:03d}" for n in range(59, 39, -1)]
    assert newest[0].state == "delivered"
    assert newest[1].state == "held"
    assert len(await store.notices(BOB, limit=100)) == 50
    assert await store.notices("wwcorp/carol") == []


async def test_holds_are_kept_per_sink_and_member_until_unheld(store: Store) -> None:
    """Held events come back oldest first, once each; unhold forgets exactly those named."""
    await store.hold("chat", BOB, ev(2), held_at=20.0)
    await store.hold("chat", BOB, ev(1), held_at=10.0)
    await store.hold("chat", BOB, ev(1), held_at=30.0)  # the same mail again: one hold
    await store.hold("chat", "wwcorp/carol", ev(3), held_at=5.0)
    await store.hold("other", BOB, ev(4), held_at=5.0)
    held = await store.held("chat", BOB)
    assert [(h.event, h.held_at) for h in held] == [(ev(1), 10.0), (ev(2), 20.0)]
    assert await store.held_members("chat") == ["wwcorp/bob", "wwcorp/carol"]
    assert await store.unhold("chat", BOB, [ev(1).id, "missing"]) == 1
    assert [h.event for h in await store.held("chat", BOB)] == [ev(2)]
    assert await store.unhold("chat", BOB, [ev(2).id]) == 1
    assert await store.held("chat", BOB) == []
    assert await store.held_members("chat") == ["wwcorp/carol"]
    assert [h.event for h in await store.held("other", BOB)] == [ev(4)]


async def test_holds_survive_a_restart(store_maker: StoreMaker) -> None:
    """A held mail is still held after the store (and Redis) restarts."""
    async with store_maker.open() as store:
        await store.hold("chat", BOB, ev(1), held_at=10.0)
    store_maker.restart()
    async with store_maker.open() as store:
        assert [h.event for h in await store.held("chat", BOB)] == [ev(1)]
        assert await store.held_members("chat") == [BOB]


async def test_once_values_are_single_use(store: Store) -> None:
    """take_once returns a value once; a second take, or an unknown name, gets None."""
    await store.put_once("state-1", b"payload", ttl_s=60)
    assert await store.take_once("state-1") == b"payload"
    assert await store.take_once("state-1") is None
    assert await store.take_once("never-put") is None


async def test_once_values_expire(store: Store) -> None:
    """A single-use value past its lifetime is gone."""
    await store.put_once("state-2", b"payload", ttl_s=0.05)
    await asyncio.sleep(0.15)
    assert await store.take_once("state-2") is None
