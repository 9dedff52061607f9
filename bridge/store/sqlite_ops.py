"""The SQLite store's blocking operations, each one transaction; run on the store's thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["ClaimedRow", "NewEvent"]

_PRUNE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event of a commit, already serialised."""

    event_id: str
    body: bytes
    mailbox: str
    sinks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """One outbox row handed to a claimer."""

    row_id: int
    body: bytes
    attempt: int
    enqueued_at: float
    claims: int


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; any failure (a full disk at COMMIT too) rolls back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def get_version(conn: sqlite3.Connection, tenant: str) -> str | None:
    row = conn.execute("SELECT ver FROM versions WHERE tenant = ?", (tenant,)).fetchone()
    return None if row is None else str(row[0])


def commit(
    conn: sqlite3.Connection,
    tenant: str,
    events: Sequence[NewEvent],
    new_ver: str | None,
    now: float,
    window_s: float,
    baselines: Sequence[tuple[str, int]] = (),
) -> tuple[int, int, set[str]]:
    """Append fresh events (and set baselines); return (emitted, duplicates, sinks)."""
    emitted, touched = 0, set[str]()
    with transaction(conn):
        for event in events:
            if _seen(conn, event.event_id, now - window_s):
                continue
            conn.execute("INSERT OR REPLACE INTO dedupe VALUES (?, ?)", (event.event_id, now))
            conn.executemany(
                "INSERT INTO outbox (sink, event, due_at, enqueued_at, mailbox)"
                " VALUES (?, ?, ?, ?, ?)",
                [(sink, event.body, now, now, event.mailbox) for sink in event.sinks],
            )
            emitted += 1
            touched.update(event.sinks)
        if new_ver is not None:
            conn.execute(
                "INSERT INTO versions VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET ver = ?",
                (tenant, new_ver, new_ver),
            )
        conn.executemany(
            "INSERT INTO baselines VALUES (?, ?, ?)"
            " ON CONFLICT (tenant, mailbox) DO UPDATE SET unread = excluded.unread",
            [(tenant, mailbox, unread) for mailbox, unread in baselines],
        )
    return emitted, len(events) - emitted, touched


def _seen(conn: sqlite3.Connection, event_id: str, since: float) -> bool:
    row = conn.execute("SELECT seen_at FROM dedupe WHERE event_id = ?", (event_id,)).fetchone()
    return row is not None and float(row[0]) > since


def prune_dedupe(conn: sqlite3.Connection, before: float) -> int:
    """Delete up to one batch of dedupe rows older than `before`."""
    with transaction(conn):
        cur = conn.execute(
            "DELETE FROM dedupe WHERE event_id IN"
            " (SELECT event_id FROM dedupe WHERE seen_at < ? LIMIT ?)",
            (before, _PRUNE_BATCH),
        )
    return cur.rowcount


def claim(
    conn: sqlite3.Connection,
    sink: str,
    limit: int,
    now: float,
    until: float,
    acked: Sequence[int] = (),
) -> list[ClaimedRow]:
    """Delete the `acked` rows, then take up to `limit` due rows, oldest first, and push
    their `due_at` to `until`."""
    with transaction(conn):
        if acked:
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(r,) for r in acked])
        rows = conn.execute(
            "SELECT id, event, attempt, enqueued_at, claims + 1 FROM outbox"
            " WHERE sink = ? AND due_at <= ? ORDER BY due_at, id LIMIT ?",
            (sink, now, limit),
        ).fetchall()
        conn.executemany(
            "UPDATE outbox SET due_at = ?, claims = claims + 1 WHERE id = ?",
            [(until, row[0]) for row in rows],
        )
    return [ClaimedRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def next_due(conn: sqlite3.Connection, sink: str) -> float | None:
    row = conn.execute("SELECT MIN(due_at) FROM outbox WHERE sink = ?", (sink,)).fetchone()
    return None if row[0] is None else float(row[0])


def ack(conn: sqlite3.Connection, row_id: int) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))


def ack_many(conn: sqlite3.Connection, row_ids: Sequence[int]) -> None:
    with transaction(conn):
        conn.executemany("DELETE FROM outbox WHERE id = ?", [(r,) for r in row_ids])


def retry_at(conn: sqlite3.Connection, row_id: int, claims: int, at: float) -> bool:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE outbox SET due_at = ?, attempt = attempt + 1 WHERE id = ? AND claims = ?",
            (at, row_id, claims),
        )
    return cur.rowcount == 1


def dead_letter(
    conn: sqlite3.Connection, row_id: int, claims: int, event_id: str, reason: str, now: float
) -> bool:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO dead_letters"
            " (sink, event_id, event, attempts, reason, failed_at, enqueued_at, mailbox)"
            " SELECT sink, ?, event, attempt + 1, ?, ?, enqueued_at, mailbox"
            " FROM outbox WHERE id = ? AND claims = ?",
            (event_id, reason, now, row_id, claims),
        )
        if cur.rowcount == 1:
            conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
    return cur.rowcount == 1


def _where(sink: str | None, event_id: str | None) -> tuple[str, tuple[str, ...]]:
    parts = [(c, v) for c, v in (("sink", sink), ("event_id", event_id)) if v is not None]
    clause = " AND ".join(f"{column} = ?" for column, _ in parts) or "1"
    return clause, tuple(v for _, v in parts)


def dead_letters(
    conn: sqlite3.Connection, sink: str | None, limit: int
) -> list[tuple[str, bytes, int, str, float]]:
    clause, params = _where(sink, None)
    return conn.execute(
        "SELECT sink, event, attempts, reason, failed_at FROM dead_letters"  # noqa: S608
        f" WHERE {clause} ORDER BY failed_at, id LIMIT ?",
        (*params, limit),
    ).fetchall()


def replay(
    conn: sqlite3.Connection, sink: str | None, event_id: str | None, now: float
) -> tuple[int, set[str]]:
    """Move matching dead letters to the outbox, due now, attempts reset."""
    clause, params = _where(sink, event_id)
    with transaction(conn):
        sinks = {
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT sink FROM dead_letters WHERE {clause}",  # noqa: S608
                params,
            )
        }
        conn.execute(
            "INSERT INTO outbox (sink, event, due_at, enqueued_at, mailbox)"  # noqa: S608
            f" SELECT sink, event, ?, enqueued_at, mailbox FROM dead_letters WHERE {clause}"
            " ORDER BY id",
            (now, *params),
        )
        cur = conn.execute(f"DELETE FROM dead_letters WHERE {clause}", params)  # noqa: S608
    return cur.rowcount, sinks


def purge(conn: sqlite3.Connection, sink: str | None, event_id: str | None) -> int:
    clause, params = _where(sink, event_id)
    with transaction(conn):
        cur = conn.execute(f"DELETE FROM dead_letters WHERE {clause}", params)  # noqa: S608
    return cur.rowcount


def counts(conn: sqlite3.Connection, sink: str) -> tuple[int, int]:
    """(backlog, dead) of `sink`, from the trigger-maintained counts table."""
    row = conn.execute("SELECT backlog, dead FROM counts WHERE sink = ?", (sink,)).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def get_secret(conn: sqlite3.Connection, name: str, factory: bytes) -> bytes:
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO kv VALUES (?, ?)", (name, factory))
        row = conn.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
    return bytes(row[0])


def nonces_seen(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> set[str]:
    query = "SELECT 1 FROM nonces WHERE key = ? AND expires_at > ?"
    return {key for key in keys if conn.execute(query, (key, now)).fetchone() is not None}


def remember_nonces(
    conn: sqlite3.Connection, keys: Sequence[str], now: float, ttl_s: float
) -> set[str]:
    new: set[str] = set()
    with transaction(conn):
        conn.execute(
            "DELETE FROM nonces WHERE key IN "
            "(SELECT key FROM nonces WHERE expires_at <= ? LIMIT ?)",
            (now, _PRUNE_BATCH),
        )
        for key in keys:
            conn.execute("DELETE FROM nonces WHERE key = ? AND expires_at <= ?", (key, now))
            cursor = conn.execute(
                "INSERT INTO nonces VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, now + ttl_s)
            )
            if cursor.rowcount == 1:
                new.add(key)
    return new
