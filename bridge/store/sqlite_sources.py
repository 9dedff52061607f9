"""The SQLite store's operations for what sources remember: baselines, directory walks.

Blocking functions, each one statement or transaction; run on the store's thread.
"""

from __future__ import annotations

import sqlite3

__all__ = ["get_baselines", "get_directory", "put_directory"]


def get_baselines(conn: sqlite3.Connection, tenant: str) -> dict[str, int]:
    rows = conn.execute("SELECT mailbox, unread FROM baselines WHERE tenant = ?", (tenant,))
    return {str(mailbox): int(unread) for mailbox, unread in rows}


def get_directory(conn: sqlite3.Connection, tenant: str) -> tuple[str, bytes] | None:
    row = conn.execute(
        "SELECT version, members FROM directories WHERE tenant = ?", (tenant,)
    ).fetchone()
    return None if row is None else (str(row[0]), bytes(row[1]))


def put_directory(conn: sqlite3.Connection, tenant: str, version: str, members: bytes) -> None:
    conn.execute(
        "INSERT INTO directories VALUES (?, ?, ?) ON CONFLICT (tenant)"
        " DO UPDATE SET version = excluded.version, members = excluded.members",
        (tenant, version, members),
    )
