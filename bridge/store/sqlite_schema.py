"""The SQLite store's tables, defined in one place, and how a connection is opened.

Durability: WAL journal with ``synchronous=NORMAL``. A committed transaction is in the
WAL file before `commit()` returns, so it survives the process being killed (SIGKILL,
OOM killer, a crash): that is what we promise. Only a power loss or kernel crash can
lose the last transactions before a checkpoint; set ``synchronous=FULL`` (an fsync per
commit) if that matters more than latency.

Versions (`PRAGMA user_version`): 2 keeps only ordered sinks' rows in `outbox_line` and the
backlog counts in the store's own statements instead of triggers; a version 1 database is
migrated when it is opened (`_to_v2`), its rows in flight keeping their order and counts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bridge.store.sqlite_ops import transaction
from bridge.store.subscriptions_sqlite import SCHEMA as SUBSCRIPTIONS_SCHEMA
from bridge.store.upstream_tokens_sqlite import SCHEMA as UPSTREAM_TOKENS_SCHEMA

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 2

_SCHEMA = """
-- Each tenant's newest listen version, advanced in the same transaction as its events.
CREATE TABLE IF NOT EXISTS versions (
    tenant TEXT PRIMARY KEY,
    ver    TEXT NOT NULL
) WITHOUT ROWID;

-- One row per (event, sink) delivery still to be made. `id` is the commit order.
-- `due_at` is when the row may next be claimed: its due time, or while it is claimed the
-- end of the claim lease, so an expired lease makes it claimable again with no sweeper.
-- `claims` counts claims; a Delivery's ref carries it, fencing a retry or dead-letter
-- from a claimer whose lease had already passed.
-- `in_line` is 1 when the row is in `outbox_line`: every row of an ordered sink (and any
-- row written without naming it), 0 for a row of a sink never claimed in order.
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sink        TEXT    NOT NULL,
    event       BLOB    NOT NULL,            -- CloudEvent JSON
    attempt     INTEGER NOT NULL DEFAULT 0,  -- attempts made so far
    due_at      REAL    NOT NULL,            -- unix seconds
    claims      INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL    NOT NULL,            -- unix seconds of the commit
    mailbox     TEXT    NOT NULL DEFAULT '', -- for per-mailbox ordering queries
    in_line     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, due_at, id);
-- Ordered sinks look up the delivery before this one in its mailbox's line. Unordered
-- sinks never do, so their rows stay out of it (a third of a delivery's row work).
CREATE INDEX IF NOT EXISTS outbox_line ON outbox (sink, mailbox, id) WHERE in_line;

-- Sinks that have been claimed in order (`sqlite_order.claim_in_order` adds its sink and
-- puts the sink's rows in line): rows inserted for them get `in_line = sink IN ordered`.
CREATE TABLE IF NOT EXISTS ordered (
    sink TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Ids of committed events; a row older than the dedupe window no longer counts and is
-- pruned in small batches on the commit path.
CREATE TABLE IF NOT EXISTS dedupe (
    event_id TEXT PRIMARY KEY,
    seen_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_seen ON dedupe (seen_at);

-- Deliveries that exhausted their retries or failed permanently, oldest first by id.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sink        TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    event       BLOB    NOT NULL,
    attempts    INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    failed_at   REAL    NOT NULL,
    enqueued_at REAL    NOT NULL,
    mailbox     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dead_sink ON dead_letters (sink, id);
CREATE INDEX IF NOT EXISTS dead_event ON dead_letters (event_id);

-- Sends per budget key (a WeCom member of one app), so rate limits hold for every
-- process on this file; rows older than the longest window are pruned on every take.
CREATE TABLE IF NOT EXISTS budget (
    key TEXT NOT NULL,
    at  REAL NOT NULL  -- unix seconds of one send
);
CREATE INDEX IF NOT EXISTS budget_key ON budget (key, at);
CREATE INDEX IF NOT EXISTS budget_at ON budget (at);

-- Newest value published per key (e.g. the time of a retained unread count), so an
-- older retry never overwrites a newer state; expired rows are pruned on every advance.
CREATE TABLE IF NOT EXISTS marks (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at REAL NOT NULL  -- unix seconds
) WITHOUT ROWID;

-- Generated secrets (click-through signing key, ...), written once.
CREATE TABLE IF NOT EXISTS kv (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- The last unread count committed per watched mailbox: sources reconcile against it
-- after every gap. Written in the same transaction as the events that announce a change.
CREATE TABLE IF NOT EXISTS baselines (
    tenant  TEXT    NOT NULL,
    mailbox TEXT    NOT NULL,
    unread  INTEGER NOT NULL,
    PRIMARY KEY (tenant, mailbox)
) WITHOUT ROWID;

-- Each tenant's last directory walk (new API: no versions upstream, so walks are diffed):
-- `version` is the walk's content hash, `members` a JSON object member -> fingerprint.
CREATE TABLE IF NOT EXISTS directories (
    tenant  TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    members BLOB NOT NULL
) WITHOUT ROWID;

-- Callbacks' (signature, nonce) keys, remembered to refuse replays; expired rows no longer
-- count and are pruned in batches with the dedupe rows (every 10 s, on commit).
CREATE TABLE IF NOT EXISTS nonces (
    key        TEXT PRIMARY KEY,
    expires_at REAL NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);

-- Backlog and dead-letter counts per sink, so the metrics read one row instead of
-- counting a large outbox every few seconds. `backlog` is kept exact by every statement
-- that inserts or deletes outbox rows (one update per sink and transaction,
-- `sqlite_ops.add_backlog`: a trigger ran once per row); `dead` by the triggers below
-- (a dead letter is written or removed a few at a time).
CREATE TABLE IF NOT EXISTS counts (
    sink    TEXT PRIMARY KEY,
    backlog INTEGER NOT NULL DEFAULT 0,
    dead    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS dead_in AFTER INSERT ON dead_letters BEGIN
    INSERT INTO counts (sink, dead) VALUES (NEW.sink, 1)
    ON CONFLICT (sink) DO UPDATE SET dead = dead + 1;
END;
CREATE TRIGGER IF NOT EXISTS dead_out AFTER DELETE ON dead_letters BEGIN
    UPDATE counts SET dead = dead - 1 WHERE sink = OLD.sink;
END;
"""

# The "my notifications" page (bridge.store.sqlite_me).
_ME_SCHEMA = """
-- Each member's preferences (JSON). member = "<corp_id>/<userid>". No expiry.
CREATE TABLE IF NOT EXISTS preferences (
    member TEXT PRIMARY KEY,
    body   BLOB NOT NULL
) WITHOUT ROWID;

-- The newest notices per member (JSON), trimmed to NOTICES_KEPT on every write.
CREATE TABLE IF NOT EXISTS notices (
    member   TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at       REAL NOT NULL,              -- unix seconds the mail arrived
    body     BLOB NOT NULL,
    PRIMARY KEY (member, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notices_at ON notices (member, at);

-- Mails held back for a member (quiet hours, mute, digest) until one digest card
-- releases them; removed only after that digest is committed to the outbox.
CREATE TABLE IF NOT EXISTS holds (
    sink     TEXT NOT NULL,
    member   TEXT NOT NULL,
    event_id TEXT NOT NULL,
    held_at  REAL NOT NULL,              -- unix seconds
    event    BLOB NOT NULL,              -- CloudEvent JSON
    PRIMARY KEY (sink, member, event_id)
) WITHOUT ROWID;

-- Single-use values (sign-in states); expired rows are pruned on every insert.
CREATE TABLE IF NOT EXISTS once (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at REAL NOT NULL             -- unix seconds
) WITHOUT ROWID;
"""


# Version 1 -> 2, each step safe to run again (a version 1 binary opening a version 2 file
# puts the row triggers back and the version down to 1; the next open here undoes that).
_TO_V2 = (
    "DROP INDEX IF EXISTS outbox_line",  # made again by _SCHEMA, partial
    "DROP TRIGGER IF EXISTS outbox_in",
    "DROP TRIGGER IF EXISTS outbox_out",
)
_RECOUNT = (
    "UPDATE counts SET backlog = (SELECT count(*) FROM outbox WHERE outbox.sink = counts.sink)",
    "INSERT OR IGNORE INTO counts (sink, backlog)"
    " SELECT sink, count(*) FROM outbox WHERE true GROUP BY sink",
)


def connect(path: Path, recount: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, schema in place, WAL on; the
    backlog counts recounted when `recount` (the running bridge's open: a version 1
    process still writing after another one migrated the file left them uncounted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")  # the CLI may write while the service runs
    conn.execute("PRAGMA foreign_keys=ON")
    script = f"{_SCHEMA}{_ME_SCHEMA}{SUBSCRIPTIONS_SCHEMA}{UPSTREAM_TOKENS_SCHEMA}"
    with transaction(conn):  # one transaction: no other process sees half a migration
        migrated = _to_v2(conn)
        for statement in _statements(script):
            conn.execute(statement)
        for statement in _RECOUNT if migrated or recount else ():
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return conn


def _to_v2(conn: sqlite3.Connection) -> bool:
    """Migrate an outbox written by version 1 (then recount its backlog): rows keep their
    ids and all enter `outbox_line` (whether their sink is ordered is not known), and the
    row triggers go. Whether it did."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    if not columns or conn.execute("PRAGMA user_version").fetchone()[0] >= 2:
        return False
    if "in_line" not in columns:
        conn.execute("ALTER TABLE outbox ADD COLUMN in_line INTEGER NOT NULL DEFAULT 1")
    for statement in _TO_V2:
        conn.execute(statement)
    return True


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of `script`, one at a time (a trigger body's `;` included)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
