"""The SQLite store's tables, defined in one place, and how a connection is opened.

Durability: WAL journal with ``synchronous=NORMAL``. A committed transaction is in the
WAL file before `commit()` returns, so it survives the process being killed (SIGKILL,
OOM killer, a crash): that is what we promise. Only a power loss or kernel crash can
lose the last transactions before a checkpoint; set ``synchronous=FULL`` (an fsync per
commit) if that matters more than latency.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.store.subscriptions_sqlite import SCHEMA as SUBSCRIPTIONS_SCHEMA
from bridge.store.upstream_tokens_sqlite import SCHEMA as UPSTREAM_TOKENS_SCHEMA

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sink        TEXT    NOT NULL,
    event       BLOB    NOT NULL,            -- CloudEvent JSON
    attempt     INTEGER NOT NULL DEFAULT 0,  -- attempts made so far
    due_at      REAL    NOT NULL,            -- unix seconds
    claims      INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL    NOT NULL,            -- unix seconds of the commit
    mailbox     TEXT    NOT NULL DEFAULT ''  -- for per-mailbox ordering queries
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, due_at, id);
-- Ordered sinks look up the delivery before this one in its mailbox's line.
CREATE INDEX IF NOT EXISTS outbox_line ON outbox (sink, mailbox, id);

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

-- Backlog and dead-letter counts per sink, kept exact by the triggers below, so the
-- metrics read one row instead of counting a large outbox every few seconds.
CREATE TABLE IF NOT EXISTS counts (
    sink    TEXT PRIMARY KEY,
    backlog INTEGER NOT NULL DEFAULT 0,
    dead    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS outbox_in AFTER INSERT ON outbox BEGIN
    INSERT INTO counts (sink, backlog) VALUES (NEW.sink, 1)
    ON CONFLICT (sink) DO UPDATE SET backlog = backlog + 1;
END;
CREATE TRIGGER IF NOT EXISTS outbox_out AFTER DELETE ON outbox BEGIN
    UPDATE counts SET backlog = backlog - 1 WHERE sink = OLD.sink;
END;
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


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, schema in place, WAL on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")  # the CLI may write while the service runs
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(
        f"BEGIN IMMEDIATE;{_SCHEMA}{_ME_SCHEMA}{SUBSCRIPTIONS_SCHEMA}{UPSTREAM_TOKENS_SCHEMA}"
        f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
    )
    return conn
