"""The SQLite store's blocking operations, each one transaction; run on the store's thread."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["INSERT_OUTBOX", "ClaimedRow", "NewEvent", "add_backlog", "dead_letter_row"]

_T = TypeVar("_T")

_PRUNE_BATCH = 5000
_IN_BATCH = 512  # ids bound in one `IN (...)` list (SQLite allows 32,766 variables)
# A new outbox row from (sink, event, due_at = enqueued_at, mailbox); it joins
# `outbox_line` when its sink is ordered (see sqlite_schema).
INSERT_OUTBOX = (
    "INSERT INTO outbox (sink, event, due_at, enqueued_at, mailbox, in_line)"
    " VALUES (?1, ?2, ?3, ?3, ?4, ?1 IN ordered)"
)


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


def all_versions(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(t): str(v) for t, v in conn.execute("SELECT tenant, ver FROM versions")}


def commit(
    conn: sqlite3.Connection,
    tenant: str,
    events: Sequence[NewEvent],
    new_ver: str | None,
    now: float,
    window_s: float,
    baselines: Sequence[tuple[str, int]] = (),
    nonces: Sequence[str] = (),
    nonces_until: float = 0.0,
) -> tuple[int, int, set[str], set[str]]:
    """Append fresh events, set baselines, remember `nonces` until `nonces_until`; return
    (emitted, duplicates, sinks, replayed). When a nonce is remembered already, nothing is
    written and `replayed` names those nonces.

    A few statements per commit, not per event: one dedupe lookup for the whole batch,
    then one insert each into dedupe and the outbox."""
    with transaction(conn):
        replayed = nonces_seen(conn, nonces, now)
        if replayed:
            return 0, 0, set(), replayed
        conn.executemany(
            "INSERT INTO nonces VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at",
            [(key, nonces_until) for key in nonces],
        )
        fresh = _fresh(conn, events, now - window_s)
        _append(conn, fresh, now)
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
    touched = {sink for e in fresh for sink in e.sinks}
    return len(fresh), len(events) - len(fresh), touched, set()


def _fresh(conn: sqlite3.Connection, events: Sequence[NewEvent], since: float) -> list[NewEvent]:
    """The events not seen since `since`, each id once (a repeat in the batch is a
    duplicate too), in order."""
    seen: set[str] = set()
    ids = [e.event_id for e in events]
    for marks, chunk in _in_lists(ids):
        seen.update(
            row[0]
            for row in conn.execute(
                f"SELECT event_id FROM dedupe WHERE event_id IN ({marks}) AND seen_at > ?",  # noqa: S608
                (*chunk, since),
            )
        )
    fresh = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            fresh.append(event)
    return fresh


def _append(conn: sqlite3.Connection, fresh: Sequence[NewEvent], now: float) -> None:
    """Remember the fresh events' ids and append their deliveries to the outbox."""
    conn.executemany(
        "INSERT OR REPLACE INTO dedupe VALUES (?, ?)", [(e.event_id, now) for e in fresh]
    )
    conn.executemany(
        INSERT_OUTBOX,
        [(sink, e.body, now, e.mailbox) for e in fresh for sink in e.sinks],
    )
    for sink, added in Counter(sink for e in fresh for sink in e.sinks).items():
        add_backlog(conn, sink, added)


def add_backlog(conn: sqlite3.Connection, sink: str, rows: int) -> None:
    """Count `rows` more (fewer, when negative) outbox rows of `sink` in `counts`: every
    statement that inserts or deletes outbox rows is followed by this, once per sink."""
    if rows:
        conn.execute(
            "INSERT INTO counts (sink, backlog) VALUES (?, ?)"
            " ON CONFLICT (sink) DO UPDATE SET backlog = backlog + excluded.backlog",
            (sink, rows),
        )


def _in_lists(items: Sequence[_T]) -> Iterator[tuple[str, list[_T]]]:
    """`items` as `IN (...)` placeholders and values, up to _IN_BATCH at a time. A list
    is padded (repeating its last item, which `IN` ignores) to a power of two, so a few
    statement texts serve every size and stay in the connection's statement cache."""
    for start in range(0, len(items), _IN_BATCH):
        chunk = list(items[start : start + _IN_BATCH])
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += chunk[-1:] * (size - len(chunk))
        yield ", ".join("?" * size), chunk


def _delete_rows(conn: sqlite3.Connection, sink: str, row_ids: Sequence[int]) -> None:
    # One statement run per id: measured cheaper than one `id IN (...)` delete here.
    cur = conn.executemany(
        "DELETE FROM outbox WHERE id = ? AND sink = ?", [(r, sink) for r in row_ids]
    )
    add_backlog(conn, sink, -cur.rowcount)


def prune(conn: sqlite3.Connection, before: float, now: float) -> int:
    """Delete up to one batch of dedupe rows older than `before`, and one of expired
    nonces; how many dedupe rows."""
    with transaction(conn):
        cur = conn.execute(
            "DELETE FROM dedupe WHERE event_id IN"
            " (SELECT event_id FROM dedupe WHERE seen_at < ? LIMIT ?)",
            (before, _PRUNE_BATCH),
        )
        conn.execute(
            "DELETE FROM nonces WHERE key IN"
            " (SELECT key FROM nonces WHERE expires_at <= ? LIMIT ?)",
            (now, _PRUNE_BATCH),
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
        _delete_rows(conn, sink, acked)
        rows = conn.execute(
            "SELECT id, event, attempt, enqueued_at, claims + 1 FROM outbox"
            " WHERE sink = ? AND due_at <= ? ORDER BY due_at, id LIMIT ?",
            (sink, now, limit),
        ).fetchall()
        for marks, chunk in _in_lists([row[0] for row in rows]):
            conn.execute(
                f"UPDATE outbox SET due_at = ?, claims = claims + 1 WHERE id IN ({marks})",  # noqa: S608
                (until, *chunk),
            )
    return [ClaimedRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def next_due(conn: sqlite3.Connection, sink: str) -> float | None:
    row = conn.execute("SELECT MIN(due_at) FROM outbox WHERE sink = ?", (sink,)).fetchone()
    return None if row[0] is None else float(row[0])


def ack(conn: sqlite3.Connection, sink: str, row_id: int) -> None:
    with transaction(conn):
        _delete_rows(conn, sink, (row_id,))


def ack_many(conn: sqlite3.Connection, row_ids: Mapping[str, Sequence[int]]) -> None:
    """Delete the rows of each sink's ids, in one transaction."""
    with transaction(conn):
        for sink, ids in row_ids.items():
            _delete_rows(conn, sink, ids)


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
        return dead_letter_row(conn, row_id, claims, event_id, reason, now)


def dead_letter_row(
    conn: sqlite3.Connection, row_id: int, claims: int, event_id: str, reason: str, now: float
) -> bool:
    """Move the row to the dead letters unless claimed again since (within a transaction)."""
    cur = conn.execute(
        "INSERT INTO dead_letters"
        " (sink, event_id, event, attempts, reason, failed_at, enqueued_at, mailbox)"
        " SELECT sink, ?, event, attempt + 1, ?, ?, enqueued_at, mailbox"
        " FROM outbox WHERE id = ? AND claims = ?",
        (event_id, reason, now, row_id, claims),
    )
    if cur.rowcount == 1:
        [(sink,)] = conn.execute("DELETE FROM outbox WHERE id = ? RETURNING sink", (row_id,))
        add_backlog(conn, sink, -1)
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
        moving = conn.execute(
            f"SELECT sink, count(*) FROM dead_letters WHERE {clause} GROUP BY sink",  # noqa: S608
            params,
        ).fetchall()
        conn.execute(
            "INSERT INTO outbox (sink, event, due_at, enqueued_at, mailbox, in_line)"  # noqa: S608
            " SELECT sink, event, ?, enqueued_at, mailbox, sink IN ordered FROM dead_letters"
            f" WHERE {clause} ORDER BY id",
            (now, *params),
        )
        for name, rows in moving:
            add_backlog(conn, name, rows)
        cur = conn.execute(f"DELETE FROM dead_letters WHERE {clause}", params)  # noqa: S608
    return cur.rowcount, {name for name, _ in moving}


def purge(conn: sqlite3.Connection, sink: str | None, event_id: str | None) -> int:
    clause, params = _where(sink, event_id)
    with transaction(conn):
        cur = conn.execute(f"DELETE FROM dead_letters WHERE {clause}", params)  # noqa: S608
    return cur.rowcount


def counts(conn: sqlite3.Connection, sink: str) -> tuple[int, int]:
    """(backlog, dead) of `sink`, from the counts table."""
    row = conn.execute("SELECT backlog, dead FROM counts WHERE sink = ?", (sink,)).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def get_secret(conn: sqlite3.Connection, name: str, factory: bytes) -> bytes:
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO kv VALUES (?, ?)", (name, factory))
        row = conn.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
    return bytes(row[0])


def nonces_seen(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> set[str]:
    """Those of `keys` remembered and not expired at `now`."""
    query = "SELECT 1 FROM nonces WHERE key = ? AND expires_at > ?"
    return {key for key in keys if conn.execute(query, (key, now)).fetchone() is not None}
