"""SQLite counts: every path that adds or removes outbox or dead-letter rows keeps them exact."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.store.base import Routed
from bridge.store.sqlite import SqliteStore
from bridge.store.subscriptions import with_subscriptions
from tests.store.test_contract import ev, routed

_STORED = "SELECT sink, backlog, dead FROM counts WHERE backlog OR dead"
_COUNTED = """
SELECT sink, sum(backlog), sum(dead) FROM (
    SELECT sink, 1 AS backlog, 0 AS dead FROM outbox
    UNION ALL SELECT sink, 0, 1 FROM dead_letters
) GROUP BY sink
"""


def _both(conn: sqlite3.Connection) -> tuple[set[tuple[str, int, int]], set[tuple[str, int, int]]]:
    return set(conn.execute(_STORED)), set(conn.execute(_COUNTED))


async def counted(store: SqliteStore) -> set[tuple[str, int, int]]:
    """(sink, backlog, dead) of every sink, asserted equal to the rows counted one by one."""
    stored, rows = await store._call("test", _both, store._db)
    assert stored == rows
    return stored


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A SQLite store on a fresh file."""
    async with SqliteStore(path=tmp_path / "b.db", dedupe_window_s=3600) as store:
        yield store


async def test_commit_counts_each_sink_once_per_delivery(db: SqliteStore) -> None:
    """A commit fanning out to several sinks counts each delivery; duplicates count nothing."""
    await db.commit("acme", [Routed(ev(1), ("oa", "bus")), Routed(ev(2), ("bus",))])
    await db.commit("acme", [*routed(1, 2, 3), Routed(ev(3), ("bus",))])
    assert await counted(db) == {("oa", 2, 0), ("bus", 2, 0)}


async def test_claim_acks_count_only_rows_they_remove(db: SqliteStore) -> None:
    """Acks carried by a claim count down once, even when repeated or of another sink."""
    await db.commit("acme", routed(1, 2, 3, 4, sinks=("oa", "bus")))
    first = await db.claim("oa", limit=2, lease_s=30)
    await db.claim("oa", limit=1, lease_s=30, acks=first)
    await db.claim("oa", limit=0, lease_s=30, acks=first)  # the same acks again
    bus = await db.claim("bus", limit=1, lease_s=30)
    await db.claim("oa", limit=0, lease_s=30, acks=bus)  # not oa's: nothing removed
    assert await counted(db) == {("oa", 2, 0), ("bus", 4, 0)}


async def test_ack_and_ack_many_count_down_per_sink(db: SqliteStore) -> None:
    """ack and ack_many (two sinks in one call) count each removed row once."""
    await db.commit("acme", routed(1, 2, 3, sinks=("oa", "bus")))
    oa = await db.claim("oa", limit=3, lease_s=30)
    bus = await db.claim("bus", limit=3, lease_s=30)
    await db.ack(oa[0])
    await db.ack(oa[0])
    await db.ack_many([oa[1], bus[0], bus[1], oa[1]])
    assert await counted(db) == {("oa", 1, 0), ("bus", 1, 0)}


async def test_dead_letter_moves_one_count(db: SqliteStore) -> None:
    """A dead letter moves a row's count from backlog to dead; a stale one moves nothing."""
    await db.commit("acme", routed(1, 2))
    [one, two] = await db.claim("oa", limit=2, lease_s=0.001)
    await db.dead_letter(one, "HTTP 410")
    await db.dead_letter(one, "HTTP 410")
    await asyncio.sleep(0.01)  # two's lease is over
    assert await db.claim("oa", limit=2, lease_s=30) != []
    await db.dead_letter(two, "HTTP 410")  # a claimer whose lease had passed
    assert await counted(db) == {("oa", 1, 1)}


async def test_replay_and_purge_move_counts_per_sink(db: SqliteStore) -> None:
    """Replaying dead letters of two sinks counts them back; purging counts them out."""
    await db.commit("acme", routed(1, 2, 3, sinks=("oa", "bus")))
    for sink in ("oa", "bus"):
        for delivery in await db.claim(sink, limit=3, lease_s=30):
            await db.dead_letter(delivery, "HTTP 410")
    assert await db.replay(event_id=ev(1).id) == 2
    assert await db.replay("oa") == 2
    assert await counted(db) == {("oa", 3, 0), ("bus", 1, 2)}
    assert await db.purge("bus", ev(2).id) == 1
    assert await counted(db) == {("oa", 3, 0), ("bus", 1, 1)}


async def test_subscription_resend_and_drop_count(db: SqliteStore) -> None:
    """A resend counts its rows in; dropping a sink's deliveries counts them all out."""
    subs = with_subscriptions(db)
    await db.commit("acme", routed(1, 2, sinks=("sub1", "oa")))
    [claimed, _] = await db.claim("sub1", limit=2, lease_s=30)
    await db.dead_letter(claimed, "HTTP 410")
    assert await subs.enqueue("sub1", [ev(1), ev(3)]) == 2
    assert await counted(db) == {("oa", 2, 0), ("sub1", 3, 1)}
    assert await subs.drop_deliveries("sub1") == 4
    assert await counted(db) == {("oa", 2, 0)}
