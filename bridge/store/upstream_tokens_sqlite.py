"""The SQLite store's upstream tokens (`UpstreamTokenStore`).

`SqliteUpstreamTokens` is a mixin of `SqliteStore`: each operation is one transaction on
the store's one thread, through `_call`. Its table is `SCHEMA`, created with the rest in
`sqlite_schema.connect`. Expired rows are pruned by every save (an index range, so a cold
start's 10,000 saves stay cheap) and never loaded.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from bridge.store.sqlite_ops import transaction
from bridge.store.upstream_tokens import LOAD_CHUNK

__all__ = ["SCHEMA", "SqliteUpstreamTokens"]

SCHEMA = """
-- Upstream access tokens, sealed (AES-GCM, a key derived from the credential's secret,
-- which is never stored); pruned at expires_at (unix seconds) by every save.
CREATE TABLE IF NOT EXISTS upstream_tokens (
    key        TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS upstream_tokens_expiry ON upstream_tokens (expires_at);
"""


def _load(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for at in range(0, len(keys), LOAD_CHUNK):
        chunk = list(keys[at : at + LOAD_CHUNK])
        marks = ",".join("?" * len(chunk))  # placeholders only: the keys are bound
        sql = f"SELECT key, sealed FROM upstream_tokens WHERE key IN ({marks}) AND expires_at > ?"  # noqa: S608
        # A row whose `sealed` is not a BLOB was not written here: absent, as if expired
        # (bytes() of a forged number would allocate that many zero bytes).
        found.update((k, v) for k, v in conn.execute(sql, (*chunk, now)) if isinstance(v, bytes))
    return found


def _save(conn: sqlite3.Connection, key: str, sealed: bytes, expires_at: float, now: float) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM upstream_tokens WHERE expires_at <= ?", (now,))
        conn.execute(
            "INSERT INTO upstream_tokens VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at",
            (key, sealed, expires_at),
        )


class SqliteUpstreamTokens:
    """The upstream token operations of `SqliteStore`."""

    _call: Callable[..., Any]

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError  # provided by SqliteStore

    async def load_upstream_tokens(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The unexpired sealed tokens among `keys`: one thread hop, `IN (...)` chunks."""
        if not keys:
            return {}
        found: dict[str, bytes] = await self._call(
            "load_upstream_tokens", _load, self._db, list(keys), time.time()
        )
        return found

    async def save_upstream_token(self, key: str, sealed: bytes, expires_at: float) -> None:
        """Replace the sealed token under `key`, pruning expired ones."""
        args = (self._db, key, sealed, expires_at, time.time())
        await self._call("save_upstream_token", _save, *args)
