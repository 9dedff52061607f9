"""SQLite schema version 2: a version 1 file migrates at open, rows in flight keep their
order and counts; only ordered sinks' rows enter the mailbox-line index."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.store.base import Delivery
from bridge.store.sqlite import SqliteStore
from bridge.store.sqlite_schema import SCHEMA_VERSION
from tests.store.test_contract import ev
from tests.store.test_order import mails, numbers
from tests.store.test_sqlite_counts import counted

_V1 = (Path(__file__).parent / "sqlite_v1.sql").read_text(encoding="utf-8")
_V1_INSERT = (
    "INSERT INTO outbox (sink, event, due_at, claims, enqueued_at, mailbox)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _write_v1(path: Path, now: float) -> None:
    """A version 1 file with deliveries in flight, written as version 1 wrote them: bob's
    first mail to the ordered `oa` claimed by a process that died (lease over), his second
    waiting behind it, amy's due; two for `bus`; one dead letter of `bus`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"BEGIN;{_V1}PRAGMA user_version=1;COMMIT;")
    rows = [
        ("oa", 1, now - 1, 1, "bob@x"),
        ("oa", 2, now, 0, "bob@x"),
        ("oa", 3, now, 0, "amy@x"),
        ("bus", 1, now, 0, "bob@x"),
        ("bus", 2, now, 0, "amy@x"),
    ]
    for sink, n, due_at, claims, mailbox in rows:
        body = ev(n, mailbox=mailbox).to_json()
        conn.execute(_V1_INSERT, (sink, body, due_at, claims, now, mailbox))
    conn.execute(
        "INSERT INTO dead_letters (sink, event_id, event, attempts, reason, failed_at,"
        " enqueued_at, mailbox) VALUES ('bus', ?, ?, 3, 'HTTP 410', ?, ?, 'cat@x')",
        (ev(9).id, ev(9).to_json(), now, now),
    )
    conn.close()


def _schema(path: Path) -> tuple[int, set[str], str]:
    """(user_version, trigger names, the outbox_line index's SQL) of the file."""
    conn = sqlite3.connect(path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        triggers = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", ("trigger",))
        }
        [(line,)] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox_line'")
        return version, triggers, str(line)
    finally:
        conn.close()


async def test_a_version_1_file_migrates_with_its_rows_in_flight(tmp_path: Path) -> None:
    """Opening a version 1 file migrates it: counts kept, ordered lines kept, claims work."""
    path = tmp_path / "v1.db"
    _write_v1(path, time.time())
    async with SqliteStore(path=path, dedupe_window_s=3600) as store:
        assert await counted(store) == {("oa", 3, 0), ("bus", 2, 1)}
        first = await store.claim_in_order("oa", limit=10, lease_s=30)
        assert numbers(first) == [1, 3]  # bob's second waits behind his first
        for delivery in first:
            await store.ack(delivery)
        assert numbers(await store.claim_in_order("oa", limit=10, lease_s=30)) == [2]
        assert numbers(await store.claim("bus", limit=10, lease_s=30)) == [1, 2]
        assert await store.replay("bus") == 1
        assert await counted(store) == {("oa", 1, 0), ("bus", 3, 0)}
    version, triggers, line = _schema(path)
    assert (version, triggers) == (SCHEMA_VERSION, {"dead_in", "dead_out"})
    assert line.endswith("WHERE in_line")


async def test_a_version_1_binary_in_between_is_undone(tmp_path: Path) -> None:
    """A version 1 binary that opened the file and wrote to it: the next open recounts."""
    path = tmp_path / "b.db"
    async with SqliteStore(path=path, dedupe_window_s=3600) as store:
        await store.commit("acme", mails((1, "bob@x"), (2, "bob@x")))
    _write_v1(path, time.time())  # its schema script, its version and its rows
    async with SqliteStore(path=path, dedupe_window_s=3600) as store:
        assert await counted(store) == {("oa", 5, 0), ("bus", 2, 1)}
        assert numbers(await store.claim_in_order("oa", limit=10, lease_s=30)) == [1, 3]
    version, triggers, _ = _schema(path)
    assert (version, triggers) == (SCHEMA_VERSION, {"dead_in", "dead_out"})


async def test_only_ordered_sinks_rows_are_in_line(tmp_path: Path) -> None:
    """Rows enter the line index once their sink is claimed in order, earlier rows too."""
    path = tmp_path / "b.db"

    def in_line(conn: sqlite3.Connection) -> list[tuple[str, int]]:
        return conn.execute("SELECT sink, in_line FROM outbox ORDER BY id").fetchall()

    async with SqliteStore(path=path, dedupe_window_s=3600) as store:
        await store.commit("acme", mails((1, "bob@x")))
        assert await store._call("test", in_line, store._db) == [("oa", 0)]
        [first] = await store.claim_in_order("oa", limit=10, lease_s=30)
        await store.commit("acme", mails((2, "bob@x")))
        assert await store._call("test", in_line, store._db) == [("oa", 1), ("oa", 1)]
        assert await store.claim_in_order("oa", limit=10, lease_s=30) == []
        await store.ack(first)
        assert numbers(await store.claim_in_order("oa", limit=10, lease_s=30)) == [2]


async def test_a_replay_by_another_process_joins_the_line(tmp_path: Path) -> None:
    """A dead letter replayed by the CLI comes back in its mailbox's line of an ordered sink."""
    path = tmp_path / "b.db"
    async with SqliteStore(path=path, dedupe_window_s=3600, exclusive=True) as bridge:
        await bridge.commit("acme", mails((1, "bob@x")))
        [first] = await bridge.claim_in_order("oa", limit=10, lease_s=30)
        await bridge.dead_letter(first, "HTTP 410")
        async with SqliteStore(path=path, dedupe_window_s=3600) as cli:
            assert await cli.replay("oa") == 1
        await bridge.commit("acme", mails((2, "bob@x")))
        [again] = await bridge.claim_in_order("oa", limit=10, lease_s=30)
        assert numbers([again]) == [1]
        assert await bridge.claim_in_order("oa", limit=10, lease_s=30) == []
        await bridge.ack(again)
        assert numbers(await bridge.claim_in_order("oa", limit=10, lease_s=30)) == [2]


async def test_a_version_1_service_writing_after_a_cli_migrated_is_recounted(
    tmp_path: Path,
) -> None:
    """The bridge's open recounts what a v1 bridge wrote after a CLI migrated under it."""
    path, now = tmp_path / "v1.db", time.time()
    _write_v1(path, now)
    old_bridge = sqlite3.connect(path, isolation_level=None)
    async with SqliteStore(path=path, dedupe_window_s=3600) as cli:
        assert await counted(cli) == {("oa", 3, 0), ("bus", 2, 1)}
    old_bridge.execute("DELETE FROM outbox WHERE sink = 'bus'")  # acked by version 1
    old_bridge.execute(_V1_INSERT, ("oa", ev(4).to_json(), now, 0, now, "amy@x"))
    old_bridge.close()
    async with SqliteStore(path=path, dedupe_window_s=3600, exclusive=True) as bridge:
        assert await counted(bridge) == {("oa", 4, 0), ("bus", 0, 1)}


async def test_an_ack_moves_the_line_on_in_its_own_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail claimed by another process during an ack is not made due again by it."""
    path = tmp_path / "b.db"
    async with (
        SqliteStore(path=path, dedupe_window_s=3600) as one,
        SqliteStore(path=path, dedupe_window_s=3600) as two,
    ):
        await one.commit("acme", mails((1, "bob@x"), (2, "bob@x")))
        [first] = await one.claim_in_order("oa", limit=1, lease_s=30)
        taken: list[Delivery] = []
        real_call = one._call

        async def claim_after_ack(op: str, fn: Callable[..., Any], *args: Any) -> Any:
            result = await real_call(op, fn, *args)
            if op == "ack":
                taken.extend(await two.claim_in_order("oa", limit=10, lease_s=30))
            return result

        monkeypatch.setattr(one, "_call", claim_after_ack)
        await one.ack(first)
        assert numbers(taken) == [2]
        assert await two.claim_in_order("oa", limit=10, lease_s=30) == []
