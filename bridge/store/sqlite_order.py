"""The SQLite store's operations for ordered sinks and shared send budgets; each one
transaction, on the store's thread.

A mailbox's deliveries to an ordered sink go out in commit order (`id`), one at a time.
The block that keeps a later delivery back is the data itself: a delivery may be claimed
only when no earlier delivery of its mailbox is still waiting. So the block holds across
processes and past a claim lease with no extra state. A held delivery is deferred to the
earlier one's due time; when the earlier one is acked or dead-lettered, the next one in
line is pulled forward to now.
"""

from __future__ import annotations

import sqlite3

from bridge.store.budget import Grant, Limits, grant, longest_s
from bridge.store.sqlite_ops import ClaimedRow, add_backlog, dead_letter_row, transaction

__all__ = [
    "ack_in_line",
    "advance_mark",
    "claim_in_order",
    "dead_letter_in_line",
    "defer",
    "take_budget",
]


def claim_in_order(
    conn: sqlite3.Connection,
    sink: str,
    limit: int,
    now: float,
    until: float,
    scan: int,
    hold_s: float,
) -> list[ClaimedRow]:
    """Claim up to `limit` due rows that are first in their mailbox's line; defer (with no
    attempt) the due rows held behind an earlier one, so they are not read again before
    that one is due or gone."""
    out: list[ClaimedRow] = []
    with transaction(conn):
        _put_in_line(conn, sink)
        rows = conn.execute(
            "SELECT id, event, attempt, enqueued_at, claims, mailbox FROM outbox"
            " WHERE sink = ? AND due_at <= ? ORDER BY due_at, id LIMIT ?",
            (sink, now, scan),
        ).fetchall()
        for row_id, body, attempt, enqueued_at, claims, mailbox in sorted(rows):
            if len(out) >= limit:
                break
            prev = _earlier(conn, sink, mailbox, row_id)
            if prev is None:
                conn.execute(
                    "UPDATE outbox SET due_at = ?, claims = claims + 1 WHERE id = ?",
                    (until, row_id),
                )
                out.append(ClaimedRow(row_id, body, attempt, enqueued_at, claims + 1))
            else:
                held_until = prev[1] if prev[1] > now else now + hold_s
                conn.execute("UPDATE outbox SET due_at = ? WHERE id = ?", (held_until, row_id))
    return out


def _put_in_line(conn: sqlite3.Connection, sink: str) -> None:
    """Make `sink` ordered: its rows in `outbox_line`, those committed before too."""
    if conn.execute("INSERT OR IGNORE INTO ordered VALUES (?)", (sink,)).rowcount:
        conn.execute("UPDATE outbox SET in_line = 1 WHERE sink = ? AND NOT in_line", (sink,))


def _earlier(
    conn: sqlite3.Connection, sink: str, mailbox: str, row_id: int
) -> tuple[int, float] | None:
    row = conn.execute(
        "SELECT id, due_at FROM outbox WHERE sink = ? AND mailbox = ? AND id < ? AND in_line"
        " ORDER BY id DESC LIMIT 1",
        (sink, mailbox, row_id),
    ).fetchone()
    return None if row is None else (int(row[0]), float(row[1]))


def defer(conn: sqlite3.Connection, row_id: int, claims: int, at: float) -> bool:
    """Move a claimed row's due time to `at`, attempts unchanged (also renews a lease)."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE outbox SET due_at = ? WHERE id = ? AND claims = ?", (at, row_id, claims)
        )
    return cur.rowcount == 1


def ack_in_line(conn: sqlite3.Connection, sink: str, mailbox: str, row_id: int, now: float) -> bool:
    """Delete an acked row and pull its line on (`_pull`), in one transaction; whether a
    delivery was made due. Apart, another process could claim the next row (due already)
    in between, and the pull would make that claimed row due again: sent twice."""
    with transaction(conn):
        gone = conn.execute("DELETE FROM outbox WHERE id = ? AND sink = ?", (row_id, sink))
        add_backlog(conn, sink, -gone.rowcount)
        return _pull(conn, sink, mailbox, row_id, now)


def dead_letter_in_line(
    conn: sqlite3.Connection,
    row_id: int,
    claims: int,
    event_id: str,
    reason: str,
    now: float,
    mailbox: str,
) -> tuple[bool, bool]:
    """Dead-letter a row and pull its line on, in one transaction (see `ack_in_line`);
    (whether it moved, whether a delivery was made due)."""
    with transaction(conn):
        sink = conn.execute("SELECT sink FROM outbox WHERE id = ?", (row_id,)).fetchone()
        if sink is None or not dead_letter_row(conn, row_id, claims, event_id, reason, now):
            return False, False
        return True, _pull(conn, str(sink[0]), mailbox, row_id, now)


def _pull(conn: sqlite3.Connection, sink: str, mailbox: str, after_id: int, now: float) -> bool:
    """The line moved on past `after_id`: make the next delivery in it due now."""
    cur = conn.execute(
        "UPDATE outbox SET due_at = ? WHERE id = (SELECT id FROM outbox WHERE sink = ?"
        " AND mailbox = ? AND id > ? AND in_line ORDER BY id LIMIT 1) AND due_at > ?",
        (now, sink, mailbox, after_id, now),
    )
    return cur.rowcount == 1


def take_budget(conn: sqlite3.Connection, key: str, want: int, limits: Limits, now: float) -> Grant:
    """Decide and record a take of `key`'s budget (see bridge.store.budget)."""
    with transaction(conn):
        conn.execute("DELETE FROM budget WHERE at <= ?", (now - longest_s(limits),))
        times = [
            float(row[0])
            for row in conn.execute("SELECT at FROM budget WHERE key = ? ORDER BY at", (key,))
        ]
        decided = grant(times, now, limits, want)
        conn.executemany("INSERT INTO budget VALUES (?, ?)", [(key, now)] * decided.taken)
    return decided


def advance_mark(conn: sqlite3.Connection, key: str, value: str, now: float, ttl_s: float) -> bool:
    """Set the mark unless a greater one is live; True when `value` is the mark now."""
    with transaction(conn):
        conn.execute("DELETE FROM marks WHERE expires_at <= ?", (now,))
        row = conn.execute("SELECT value FROM marks WHERE key = ?", (key,)).fetchone()
        if row is not None and str(row[0]) > value:
            return False
        conn.execute("INSERT OR REPLACE INTO marks VALUES (?, ?, ?)", (key, value, now + ttl_s))
    return True
