"""The SQLite store's part for the "my notifications" page (`PreferenceStore`).

Tables are in `sqlite_schema` (`_ME_SCHEMA`); each operation is one transaction on the
store's thread, like every other SQLite operation.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bridge.delivery.preferences import Held, Notice, Preferences
from bridge.events import Event
from bridge.store.preferences_base import NOTICES_KEPT
from bridge.store.sqlite_ops import transaction

__all__ = ["SqlitePreferencesMixin"]

_T = TypeVar("_T")


class SqlitePreferencesMixin:
    """`PreferenceStore` for `SqliteStore`: uses its `_call` and `_db`."""

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError  # provided by SqliteStore

    async def _call(self, op: str, fn: Callable[..., _T], *args: Any) -> _T:
        raise NotImplementedError  # provided by SqliteStore

    async def get_preferences(self, member: str) -> Preferences | None:
        """The member's preferences, None when they never saved any."""
        raw = await self._call("get_preferences", _get_preferences, self._db, member)
        return None if raw is None else Preferences.from_json(raw)

    async def set_preferences(self, member: str, prefs: Preferences) -> None:
        """Replace the member's preferences."""
        await self._call("set_preferences", _set_preferences, self._db, member, prefs.to_json())

    async def record_notice(self, member: str, notice: Notice) -> None:
        """Upsert the notice by event id; keep the newest `NOTICES_KEPT`."""
        await self._call("record_notice", _record_notice, self._db, member, notice)

    async def notices(self, member: str, limit: int = 20) -> list[Notice]:
        """The member's newest notices, newest first."""
        rows = await self._call("notices", _notices, self._db, member, limit)
        return [Notice.from_json(row) for row in rows]

    async def hold(self, sink: str, member: str, event: Event, held_at: float) -> None:
        """Keep `event` back for `member`."""
        args = (sink, member, event.id, held_at, event.to_json())
        await self._call("hold", _hold, self._db, *args)

    async def held(self, sink: str, member: str) -> list[Held]:
        """The member's held events, oldest first."""
        rows = await self._call("held", _held, self._db, sink, member)
        return [Held(event=Event.from_json(body), held_at=at) for body, at in rows]

    async def held_members(self, sink: str) -> list[str]:
        """Members with held events for `sink`."""
        return await self._call("held_members", _held_members, self._db, sink)

    async def unhold(self, sink: str, member: str, event_ids: Sequence[str]) -> int:
        """Forget these held events."""
        return await self._call("unhold", _unhold, self._db, sink, member, list(event_ids))

    async def put_once(self, name: str, value: bytes, ttl_s: float) -> None:
        """Store a single-use value for `ttl_s` seconds."""
        await self._call("put_once", _put_once, self._db, name, value, time.time() + ttl_s)

    async def take_once(self, name: str) -> bytes | None:
        """Take the value under `name` (None when absent or expired)."""
        return await self._call("take_once", _take_once, self._db, name, time.time())


def _get_preferences(conn: sqlite3.Connection, member: str) -> bytes | None:
    row = conn.execute("SELECT body FROM preferences WHERE member = ?", (member,)).fetchone()
    return None if row is None else bytes(row[0])


def _set_preferences(conn: sqlite3.Connection, member: str, body: bytes) -> None:
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO preferences VALUES (?, ?)", (member, body))


def _record_notice(conn: sqlite3.Connection, member: str, notice: Notice) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO notices VALUES (?, ?, ?, ?)",
            (member, notice.event_id, notice.at, notice.to_json()),
        )
        conn.execute(
            "DELETE FROM notices WHERE member = ? AND event_id NOT IN (SELECT event_id FROM"
            " notices WHERE member = ? ORDER BY at DESC, event_id DESC LIMIT ?)",
            (member, member, NOTICES_KEPT),
        )


def _notices(conn: sqlite3.Connection, member: str, limit: int) -> list[bytes]:
    rows = conn.execute(
        "SELECT body FROM notices WHERE member = ? ORDER BY at DESC, event_id DESC LIMIT ?",
        (member, limit),
    ).fetchall()
    return [bytes(row[0]) for row in rows]


def _hold(
    conn: sqlite3.Connection, sink: str, member: str, event_id: str, at: float, body: bytes
) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO holds VALUES (?, ?, ?, ?, ?)", (sink, member, event_id, at, body)
        )


def _held(conn: sqlite3.Connection, sink: str, member: str) -> list[tuple[bytes, float]]:
    rows = conn.execute(
        "SELECT event, held_at FROM holds WHERE sink = ? AND member = ? ORDER BY held_at, event_id",
        (sink, member),
    ).fetchall()
    return [(bytes(body), float(at)) for body, at in rows]


def _held_members(conn: sqlite3.Connection, sink: str) -> list[str]:
    rows = conn.execute("SELECT DISTINCT member FROM holds WHERE sink = ?", (sink,)).fetchall()
    return sorted(str(row[0]) for row in rows)


def _unhold(conn: sqlite3.Connection, sink: str, member: str, event_ids: list[str]) -> int:
    with transaction(conn):
        gone = 0
        for event_id in event_ids:
            gone += conn.execute(
                "DELETE FROM holds WHERE sink = ? AND member = ? AND event_id = ?",
                (sink, member, event_id),
            ).rowcount
    return gone


def _put_once(conn: sqlite3.Connection, name: str, value: bytes, expires_at: float) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM once WHERE expires_at <= ?", (time.time(),))
        conn.execute("INSERT OR REPLACE INTO once VALUES (?, ?, ?)", (name, value, expires_at))


def _take_once(conn: sqlite3.Connection, name: str, now: float) -> bytes | None:
    with transaction(conn):
        row = conn.execute(
            "DELETE FROM once WHERE name = ? RETURNING value, expires_at", (name,)
        ).fetchone()
    if row is None or float(row[1]) <= now:
        return None
    return bytes(row[0])
