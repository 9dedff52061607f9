"""The SQLite store's subscriptions and attempts (`SubscriptionStore`, with `SqliteTokens`).

`SqliteSubscriptions` is a mixin of `SqliteStore`: it runs its operations, each one
transaction, on the store's one thread through `_call`. Its tables, and the tokens'
(`tokens_sqlite`), are `SCHEMA`, created with the rest in `sqlite_schema.connect`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bridge.delivery.subscription_model import Attempt, Subscription, id_floor
from bridge.events import Event
from bridge.store.sqlite_ops import INSERT_OUTBOX, add_backlog, transaction
from bridge.store.subscriptions import AttemptQuery

__all__ = ["SCHEMA", "SqliteSubscriptions"]

_T = TypeVar("_T")
_PRUNE_BATCH = 200

SCHEMA = """
-- Subscriptions (webhook sinks kept in the store), one JSON record each.
CREATE TABLE IF NOT EXISTS subscriptions (
    id     TEXT PRIMARY KEY,
    record BLOB NOT NULL
) WITHOUT ROWID;

-- Counters other processes poll: `subscriptions` moves on every subscription change.
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- Since when each subscription has failed every attempt (NULL: its last one succeeded).
CREATE TABLE IF NOT EXISTS sub_health (
    id            TEXT PRIMARY KEY,
    failing_since REAL
) WITHOUT ROWID;

-- Scoped API tokens, by the SHA-256 of the token (the token itself is never stored).
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    record     BLOB NOT NULL
) WITHOUT ROWID;

-- Delivery attempts; ids sort by time, so "older than" is "id below id_floor(...)".
-- Kept attempts_retention_s and at most attempts_max per subscription.
CREATE TABLE IF NOT EXISTS attempts (
    id     TEXT PRIMARY KEY,
    sub_id TEXT NOT NULL,
    at     REAL NOT NULL,
    status TEXT NOT NULL,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attempts_sub ON attempts (sub_id, id);

-- The body of each event sent to a subscription, for resends; kept attempts_retention_s.
CREATE TABLE IF NOT EXISTS sent_events (
    event_id TEXT PRIMARY KEY,
    body     BLOB NOT NULL,
    at       REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_events_at ON sent_events (at);
"""


def _bump(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO counters VALUES ('subscriptions', 1)"
        " ON CONFLICT (name) DO UPDATE SET value = value + 1"
    )


def _put(conn: sqlite3.Connection, sub_id: str, record: bytes) -> None:
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO subscriptions VALUES (?, ?)", (sub_id, record))
        _bump(conn)


def _delete(conn: sqlite3.Connection, sub_id: str) -> bool:
    with transaction(conn):
        cur = conn.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
        conn.execute("DELETE FROM sub_health WHERE id = ?", (sub_id,))
        conn.execute("DELETE FROM attempts WHERE sub_id = ?", (sub_id,))
        _drop(conn, sub_id)
        _bump(conn)
    return cur.rowcount == 1


def _drop(conn: sqlite3.Connection, sink: str) -> int:
    gone = conn.execute("DELETE FROM outbox WHERE sink = ?", (sink,)).rowcount
    add_backlog(conn, sink, -gone)
    return gone + conn.execute("DELETE FROM dead_letters WHERE sink = ?", (sink,)).rowcount


def _drop_deliveries(conn: sqlite3.Connection, sink: str) -> int:
    with transaction(conn):
        return _drop(conn, sink)


def _enqueue(conn: sqlite3.Connection, sink: str, rows: list[tuple[bytes, str]], now: float) -> int:
    with transaction(conn):
        conn.executemany(
            INSERT_OUTBOX,
            [(sink, body, now, mailbox) for body, mailbox in rows],
        )
        add_backlog(conn, sink, len(rows))
    return len(rows)


def _record_attempts(
    conn: sqlite3.Connection, items: list[tuple[Attempt, bytes]], keep_s: float, keep_max: int
) -> dict[str, float | None]:
    since: dict[str, float | None] = {}
    with transaction(conn):
        for attempt, body in items:
            sub_id, at = attempt.subscription_id, attempt.at
            conn.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?)",
                (attempt.id, sub_id, at, attempt.status, attempt.to_record()),
            )
            conn.execute(
                "INSERT OR REPLACE INTO sent_events VALUES (?, ?, ?)", (attempt.event_id, body, at)
            )
            since[sub_id] = _health(conn, sub_id, attempt)
        newest = max(a.at for a, _ in items)
        for sub_id in since:
            _trim(conn, sub_id, newest - keep_s, keep_max)
    return since


def _health(conn: sqlite3.Connection, sub_id: str, attempt: Attempt) -> float | None:
    if attempt.status == "succeeded":
        conn.execute("INSERT OR REPLACE INTO sub_health VALUES (?, NULL)", (sub_id,))
        return None
    conn.execute(
        "INSERT INTO sub_health VALUES (?, ?) ON CONFLICT (id)"
        " DO UPDATE SET failing_since = COALESCE(failing_since, excluded.failing_since)",
        (sub_id, attempt.at),
    )
    row = conn.execute("SELECT failing_since FROM sub_health WHERE id = ?", (sub_id,)).fetchone()
    return float(row[0])


def _trim(conn: sqlite3.Connection, sub_id: str, cutoff: float, keep_max: int) -> None:
    conn.execute(
        "DELETE FROM attempts WHERE sub_id = ? AND id < ?", (sub_id, id_floor("att", cutoff))
    )
    conn.execute(
        "DELETE FROM attempts WHERE sub_id = ? AND id <= (SELECT id FROM attempts"
        " WHERE sub_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (sub_id, sub_id, keep_max),
    )
    conn.execute(
        "DELETE FROM sent_events WHERE event_id IN"
        " (SELECT event_id FROM sent_events WHERE at < ? LIMIT ?)",
        (cutoff, _PRUNE_BATCH),
    )


def _attempts(conn: sqlite3.Connection, q: AttemptQuery) -> list[bytes]:
    clauses, params = ["sub_id = ?"], [q.subscription_id]
    for sql, value in (
        ("status = ?", q.status),
        ("at >= ?", q.since),
        ("at <= ?", q.until),
        ("id < ?", q.before_id),
    ):
        if value is not None:
            clauses.append(sql)
            params.append(value)  # type: ignore[arg-type]
    where = " AND ".join(clauses)
    sql = f"SELECT record FROM attempts WHERE {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
    return [row[0] for row in conn.execute(sql, (*params, q.limit))]


def _one(conn: sqlite3.Connection, sql: str, key: str) -> Any:
    row = conn.execute(sql, (key,)).fetchone()
    return None if row is None else row[0]


class SqliteSubscriptions:
    """The `SubscriptionStore` half of `SqliteStore`."""

    _call: Callable[..., Any]
    _notify: Callable[[set[str]], None]

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError  # provided by SqliteStore

    async def put_subscription(self, sub: Subscription) -> None:
        """Create or replace `sub`."""
        await self._call("put_subscription", _put, self._db, sub.id, sub.to_record())

    async def get_subscription(self, sub_id: str) -> Subscription | None:
        """The subscription, or None."""
        sql = "SELECT record FROM subscriptions WHERE id = ?"
        raw = await self._call("get_subscription", _one, self._db, sql, sub_id)
        return None if raw is None else Subscription.from_record(raw)

    async def list_subscriptions(self) -> list[Subscription]:
        """Every subscription, by id."""
        sql = "SELECT record FROM subscriptions ORDER BY id"
        rows = await self._call("list_subscriptions", _rows, self._db, sql)
        return [Subscription.from_record(raw) for raw in rows]

    async def delete_subscription(self, sub_id: str) -> bool:
        """Forget the subscription, its pending deliveries and dead letters."""
        return bool(await self._call("delete_subscription", _delete, self._db, sub_id))

    async def subscriptions_changed(self) -> int:
        """The change counter."""
        sql = "SELECT value FROM counters WHERE name = ?"
        return int(
            await self._call("subscriptions_changed", _one, self._db, sql, "subscriptions") or 0
        )

    async def drop_deliveries(self, sink: str) -> int:
        """Delete the sink's pending deliveries and dead letters."""
        return int(await self._call("drop_deliveries", _drop_deliveries, self._db, sink))

    async def enqueue(self, sink: str, events: Sequence[Event]) -> int:
        """Append events to the sink's outbox, due now."""
        rows = [(e.to_json(), e.mailbox) for e in events]
        added = int(await self._call("enqueue", _enqueue, self._db, sink, rows, time.time()))
        self._notify({sink})
        return added

    async def record_attempts(
        self, items: Sequence[tuple[Attempt, Event]], *, keep_s: float, keep_max: int
    ) -> dict[str, float | None]:
        """Keep the attempts and event bodies in one transaction; failing-since per sub."""
        if not items:
            return {}
        rows = [(attempt, event.to_json()) for attempt, event in items]
        return await self._call(  # type: ignore[no-any-return]
            "record_attempts", _record_attempts, self._db, rows, keep_s, keep_max
        )

    async def record_attempt(
        self, attempt: Attempt, event: Event, *, keep_s: float, keep_max: int
    ) -> float | None:
        """One attempt; its subscription's failing-since."""
        found = await self.record_attempts([(attempt, event)], keep_s=keep_s, keep_max=keep_max)
        return found[attempt.subscription_id]

    async def attempts(self, query: AttemptQuery) -> list[Attempt]:
        """Attempts matching `query`, newest first."""
        rows = await self._call("attempts", _attempts, self._db, query)
        return [Attempt.from_record(raw) for raw in rows]

    async def event_body(self, event_id: str) -> Event | None:
        """A sent event's body, or None."""
        sql = "SELECT body FROM sent_events WHERE event_id = ?"
        raw = await self._call("event_body", _one, self._db, sql, event_id)
        return None if raw is None else Event.from_json(raw)


def _rows(conn: sqlite3.Connection, sql: str) -> list[bytes]:
    return [row[0] for row in conn.execute(sql)]
