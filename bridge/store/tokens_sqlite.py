"""The SQLite store's scoped API tokens (the token half of `SubscriptionStore`).

`SqliteTokens` is a mixin of `SqliteStore`: each operation is one transaction on the
store's one thread, through `_call`. The table, `api_tokens`, is in
`subscriptions_sqlite.SCHEMA`. Every lookup reads the table, so a token deleted by any
process (the CLI, another replica's API) stops authenticating at its next request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from bridge.delivery.subscription_model import ApiToken
from bridge.store.sqlite_ops import transaction

__all__ = ["SqliteTokens"]


def _put(conn: sqlite3.Connection, token: ApiToken) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO api_tokens VALUES (?, ?, ?)",
            (token.token_hash, token.id, token.to_record()),
        )


def _by_hash(conn: sqlite3.Connection, token_hash: str) -> bytes | None:
    sql = "SELECT record FROM api_tokens WHERE token_hash = ?"
    row = conn.execute(sql, (token_hash,)).fetchone()
    return None if row is None else bytes(row[0])


def _all(conn: sqlite3.Connection) -> list[bytes]:
    return [bytes(row[0]) for row in conn.execute("SELECT record FROM api_tokens ORDER BY id")]


def _delete(conn: sqlite3.Connection, token_id: str) -> bool:
    with transaction(conn):
        cur = conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
    return cur.rowcount == 1


class SqliteTokens:
    """The token operations of `SqliteStore`."""

    _call: Callable[..., Any]

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError  # provided by SqliteStore

    async def put_token(self, token: ApiToken) -> None:
        """Store a scoped token."""
        await self._call("put_token", _put, self._db, token)

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None."""
        raw = await self._call("token_by_hash", _by_hash, self._db, token_hash)
        return None if raw is None else ApiToken.from_record(raw)

    async def list_tokens(self) -> list[ApiToken]:
        """Every token, by id."""
        rows = await self._call("list_tokens", _all, self._db)
        return [ApiToken.from_record(raw) for raw in rows]

    async def delete_token(self, token_id: str) -> bool:
        """Forget the token; False when there was none."""
        return bool(await self._call("delete_token", _delete, self._db, token_id))
