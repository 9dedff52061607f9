"""The SQLite store: the embedded default, one file, one process.

All sqlite3 work runs on one dedicated thread holding the one connection, so writes are
serialised and the event loop never blocks on disk. Tables and durability promises are
in `sqlite_schema`; each operation is one transaction in `sqlite_ops`. `wait` wakes on
an in-process asyncio.Event per sink, set by commit, retry and replay (a replay run by
another process, the CLI, is seen at the waiter's next timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from bridge.errors import StoreError, StoreFullError
from bridge.events import Event
from bridge.logs import get_logger
from bridge.store import sqlite_ops as ops
from bridge.store import sqlite_order, sqlite_sources
from bridge.store.base import (
    HOLD_S,
    CommitResult,
    DeadLetter,
    Delivery,
    DirectorySnapshot,
    Routed,
    scan_size,
)
from bridge.store.budget import Grant, Limits
from bridge.store.space import SpaceWatch
from bridge.store.sqlite_me import SqlitePreferencesMixin
from bridge.store.sqlite_schema import connect
from bridge.store.store_thread import StoreThread
from bridge.store.subscriptions_sqlite import SqliteSubscriptions
from bridge.store.tokens_sqlite import SqliteTokens
from bridge.store.upstream_tokens_sqlite import SqliteUpstreamTokens

__all__ = ["SqliteStore"]

log = get_logger(__name__)
_BACKEND = "sqlite"
_IN_LINE = "@line"  # ref mark of an ordered claim: acking it moves its mailbox's line on
_PRUNE_EVERY_S = 10.0
# Calls that wait behind the others on the store's thread (see store_thread): a burst's
# commits queue up by the hundred, and a dispatcher's claim or ack must not wait for them.
# Closing queues too, so it never overtakes a commit queued before it. A `defer` (a first
# try held back by `retry_s[0]`, a reserve given back at stop) is on no send's path: it
# queues too, so a sink with a delayed first rung does not starve the commits (callbacks
# answered 0.69-0.71 x the bare handler with it urgent, 0.78-0.86 x queued).
_QUEUED = frozenset({"commit", "prune", "close", "defer"})
_T = TypeVar("_T")


def _hold_run_lock(path: Path) -> int:
    """An exclusive lock on `<db>.run.lock`, held while its descriptor is open.

    The SQLite store serves one process: a second `run` on the same file would listen for
    every tenant a second time. The kernel drops the lock when the process dies, however.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"another bridge is running on {path} (one process per SQLite store;"
            " several replicas need the Redis store)",
            backend=_BACKEND,
            op="lock",
        ) from None
    return fd


class SqliteStore(SqlitePreferencesMixin, SqliteSubscriptions, SqliteTokens, SqliteUpstreamTokens):
    """`Store` in one SQLite file; open with `async with SqliteStore(path=...)`."""

    backend = _BACKEND

    def __init__(self, *, path: Path, dedupe_window_s: float, exclusive: bool = False) -> None:
        self._path = path
        self._exclusive = exclusive  # the running bridge: one per database
        self._lock_fd: int | None = None
        self._window_s = dedupe_window_s
        self._thread = StoreThread(name="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._wake: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._next_prune = 0.0
        self._leases: dict[str, str] = {}
        self._replicas: dict[str, float] = {}
        self._space = SpaceWatch()
        self._members = asyncio.Event()
        # The running bridge is the only writer of its database (the run lock), so it reads
        # every stored version once instead of one thread hop per tenant start: what was
        # stored before it started, and what it committed itself since.
        self._stored_versions: asyncio.Future[dict[str, str]] | None = None
        self._committed_versions: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        try:
            if self._exclusive:
                self._lock_fd = await self._call("lock", _hold_run_lock, self._path)
            self._conn = await self._call("open", connect, self._path, self._exclusive)
        except BaseException:
            self._release_lock()
            self._thread.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call("close", conn.close)
        self._thread.close()
        self._release_lock()

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock

    async def _call(self, op: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run `fn` on the store's thread; the one place sqlite3 errors become ours."""
        try:
            result = await self._thread.call(fn, *args, urgent=op not in _QUEUED)
        except OSError as exc:  # the database's folder cannot be made
            raise StoreError(f"{exc.strerror}: {exc.filename}", backend=_BACKEND, op=op) from exc
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code == sqlite3.SQLITE_FULL:
                full = StoreFullError(str(exc), backend=_BACKEND, op=op)
                self._space.refused(op, str(full))
                raise full from exc
            raise StoreError(str(exc), backend=_BACKEND, op=op) from exc
        self._space.succeeded(op)
        return result

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is not open", backend=_BACKEND, op="use")
        return self._conn

    def _notify(self, sinks: set[str]) -> None:
        for sink in sinks:
            self._wake[sink].set()

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        await self._call("ping", self._db.execute, "SELECT 1")

    def full(self) -> str | None:
        """Why writes are refused for want of disk now, or None."""
        return self._space.problem()

    async def get_version(self, tenant: str) -> str:
        """The tenant's stored version, "0" when none."""
        if not self._exclusive:  # the CLI beside a running bridge: read what is there now
            return await self._call("get_version", ops.get_version, self._db, tenant) or "0"
        if tenant in self._committed_versions:
            return self._committed_versions[tenant]
        return (await self._all_stored_versions()).get(tenant, "0")

    async def _all_stored_versions(self) -> dict[str, str]:
        """Every version stored when the bridge started: one read, shared by all callers."""
        if self._stored_versions is None:
            load = self._call("get_versions", ops.all_versions, self._db)
            self._stored_versions = asyncio.ensure_future(load)
        try:
            return await asyncio.shield(self._stored_versions)
        except StoreError:
            self._stored_versions = None  # read again by the next caller
            raise

    async def commit(
        self,
        tenant: str,
        routed: Sequence[Routed],
        new_ver: str | None = None,
        baselines: Mapping[str, int] | None = None,
        *,
        nonces: Sequence[str] = (),
        nonce_ttl_s: float = 0.0,
    ) -> CommitResult:
        """Append new events, set the version and the baselines, remember the nonces,
        atomically; nothing at all when a nonce is remembered already."""
        events = [
            ops.NewEvent(r.event.id, r.event.to_json(), r.event.mailbox, r.sinks) for r in routed
        ]
        now, counts = time.time(), list((baselines or {}).items())
        args = (self._db, tenant, events, new_ver, now, self._window_s, counts)
        emitted, duplicates, sinks, replayed = await self._call(
            "commit", ops.commit, *args, list(nonces), now + nonce_ttl_s
        )
        if new_ver is not None and self._exclusive:
            self._committed_versions[tenant] = new_ver
        self._notify(sinks)
        if now >= self._next_prune:
            self._next_prune = now + _PRUNE_EVERY_S
            # housekeeping: the commit has landed, so its failure must not fail the commit
            try:
                await self._call("prune", ops.prune, self._db, now - self._window_s, now)
            except StoreError as exc:
                log.warning("store_prune_failed", error=str(exc))
        return CommitResult(emitted=emitted, duplicates=duplicates, replayed=frozenset(replayed))

    async def claim(
        self, sink: str, *, limit: int, lease_s: float, acks: Sequence[Delivery] = ()
    ) -> list[Delivery]:
        """Forget `acks`, then up to `limit` due deliveries, oldest first, each leased for
        `lease_s`; one transaction."""
        now = time.time()
        done = [_split_ref(d.ref)[0] for d in acks]
        rows = await self._call("claim", ops.claim, self._db, sink, limit, now, now + lease_s, done)
        return [_delivery(sink, row) for row in rows]

    async def claim_in_order(self, sink: str, *, limit: int, lease_s: float) -> list[Delivery]:
        """Up to `limit` due deliveries, each first in its mailbox's line (see sqlite_order)."""
        now = time.time()
        rows = await self._call(
            "claim_in_order",
            sqlite_order.claim_in_order,
            self._db,
            sink,
            limit,
            now,
            now + lease_s,
            scan_size(limit),
            HOLD_S,
        )
        return [_delivery(sink, row, _IN_LINE) for row in rows]

    async def defer(self, delivery: Delivery, at: float) -> None:
        """Try the delivery again at unix time `at`, attempts unchanged."""
        row_id, claims = _split_ref(delivery.ref)
        if await self._call("defer", sqlite_order.defer, self._db, row_id, claims, at):
            self._notify({delivery.sink})

    async def renew(self, delivery: Delivery, lease_s: float) -> Delivery | None:
        """Extend the delivery's claim by `lease_s` from now; None when it was lost."""
        row_id, claims = _split_ref(delivery.ref)
        at = time.time() + lease_s
        kept = await self._call("renew", sqlite_order.defer, self._db, row_id, claims, at)
        return delivery if kept else None

    async def take_budget(self, key: str, want: int, limits: Limits, now: float) -> Grant:
        """Take slots of `key`'s send budget, all-or-one (see bridge.store.budget)."""
        return await self._call(
            "take_budget", sqlite_order.take_budget, self._db, key, want, limits, now
        )

    async def advance_mark(self, key: str, value: str, ttl_s: float) -> bool:
        """Set `key`'s mark to `value` unless it is greater already."""
        args = (self._db, key, value, time.time(), ttl_s)
        return await self._call("advance_mark", sqlite_order.advance_mark, *args)

    async def wait(self, sink: str, timeout_s: float) -> None:
        """Return when something may be due for `sink`, or after `timeout_s`."""
        wake = self._wake[sink]
        if not wake.is_set():
            due = await self._call("wait", ops.next_due, self._db, sink)
            delay_s = timeout_s if due is None else min(timeout_s, due - time.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay_s, 0.0)):
                    await wake.wait()
        wake.clear()

    async def ack(self, delivery: Delivery) -> None:
        """Forget a delivered delivery."""
        row_id, _ = _split_ref(delivery.ref)
        if not delivery.ref.endswith(_IN_LINE):
            await self._call("ack", ops.ack, self._db, delivery.sink, row_id)
            return
        args = (self._db, delivery.sink, delivery.event.mailbox, row_id, time.time())
        if await self._call("ack", sqlite_order.ack_in_line, *args):
            self._notify({delivery.sink})

    async def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Forget several delivered deliveries in one transaction."""
        by_sink: dict[str, list[int]] = {}
        for delivery in deliveries:
            by_sink.setdefault(delivery.sink, []).append(_split_ref(delivery.ref)[0])
        if by_sink:
            await self._call("ack_many", ops.ack_many, self._db, by_sink)

    async def retry_at(self, delivery: Delivery, at: float, reason: str) -> None:
        """Reschedule the delivery at unix time `at` with one more attempt."""
        row_id, claims = _split_ref(delivery.ref)
        if await self._call("retry_at", ops.retry_at, self._db, row_id, claims, at):
            self._notify({delivery.sink})

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the delivery to the sink's dead letters."""
        row_id, claims = _split_ref(delivery.ref)
        args = (self._db, row_id, claims, delivery.event.id, reason, time.time())
        if not delivery.ref.endswith(_IN_LINE):
            await self._call("dead_letter", ops.dead_letter, *args)
            return
        mailbox = delivery.event.mailbox
        _, pulled = await self._call(
            "dead_letter", sqlite_order.dead_letter_in_line, *args, mailbox
        )
        if pulled:
            self._notify({delivery.sink})

    async def dead_letters(self, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first, of one sink or all."""
        rows = await self._call("dead_letters", ops.dead_letters, self._db, sink, limit)
        return [
            DeadLetter(sink=name, event=Event.from_json(body), attempts=n, reason=why, failed_at=at)
            for name, body, n, why, at in rows
        ]

    async def replay(self, sink: str | None = None, event_id: str | None = None) -> int:
        """Move matching dead letters back into the outbox, due now."""
        moved, sinks = await self._call("replay", ops.replay, self._db, sink, event_id, time.time())
        self._notify(sinks)
        return moved

    async def purge(self, sink: str | None = None, event_id: str | None = None) -> int:
        """Delete matching dead letters."""
        return await self._call("purge", ops.purge, self._db, sink, event_id)

    async def backlog(self, sink: str) -> int:
        """Deliveries waiting for `sink` (one row read)."""
        return (await self._call("backlog", ops.counts, self._db, sink))[0]

    async def dead_count(self, sink: str) -> int:
        """Dead letters of `sink` (one row read)."""
        return (await self._call("dead_count", ops.counts, self._db, sink))[1]

    async def get_secret(self, name: str, factory: bytes) -> bytes:
        """The secret under `name`, stored from `factory` the first time."""
        return await self._call("get_secret", ops.get_secret, self._db, name, factory)

    async def get_baselines(self, tenant: str) -> dict[str, int]:
        """The last unread count committed per mailbox of `tenant`."""
        return await self._call("get_baselines", sqlite_sources.get_baselines, self._db, tenant)

    async def get_directory(self, tenant: str) -> DirectorySnapshot | None:
        """The tenant's last stored directory walk, or None."""
        row = await self._call("get_directory", sqlite_sources.get_directory, self._db, tenant)
        return None if row is None else DirectorySnapshot.from_json(row[1])

    async def put_directory(self, tenant: str, snapshot: DirectorySnapshot) -> None:
        """Replace the tenant's stored directory walk."""
        raw = snapshot.to_json()
        await self._call(
            "put_directory", sqlite_sources.put_directory, self._db, tenant, snapshot.version, raw
        )

    # One process owns the file: leases are always granted, membership is this process.

    async def acquire_leases(self, tenants: Sequence[str], owner: str, ttl_s: float) -> list[str]:
        """Grant every lease to `owner`."""
        self._leases.update(dict.fromkeys(tenants, owner))
        return list(tenants)

    async def acquire_lease(self, tenant: str, owner: str, ttl_s: float) -> bool:
        """Grant the lease to `owner`."""
        self._leases[tenant] = owner
        return True

    async def release_lease(self, tenant: str, owner: str) -> None:
        """Forget the lease if `owner` holds it."""
        await self.release_leases([tenant], owner)

    async def release_leases(self, tenants: Sequence[str], owner: str) -> int:
        """Forget each lease `owner` holds among `tenants`; how many."""
        mine = [t for t in tenants if self._leases.get(t) == owner]
        for tenant in mine:
            del self._leases[tenant]
        return len(mine)

    async def lease_owner(self, tenant: str) -> str | None:
        """The owner last granted the tenant's lease in this process, or None."""
        return self._leases.get(tenant)

    async def heartbeat(self, owner: str, ttl_s: float) -> None:
        """Remember `owner` as alive for `ttl_s` seconds."""
        self._replicas[owner] = time.monotonic() + ttl_s

    async def live_owners(self) -> list[str]:
        """Owners whose heartbeat has not expired."""
        now = time.monotonic()
        return sorted(o for o, until in self._replicas.items() if until > now)

    async def leave(self, owner: str) -> None:
        """Forget `owner`'s heartbeat and wake membership waiters."""
        self._replicas.pop(owner, None)
        self._members.set()

    async def announce(self) -> None:
        """Wake membership waiters (in this process: the only one on the file)."""
        self._members.set()

    async def wait_members(self, timeout_s: float) -> None:
        """Return when membership was announced to change, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._members.wait()
        self._members.clear()


def _split_ref(ref: str) -> tuple[int, int]:
    row_id, claims, *_ = ref.split("@")
    return int(row_id), int(claims)


def _delivery(sink: str, row: ops.ClaimedRow, mark: str = "") -> Delivery:
    return Delivery(
        sink=sink,
        event=Event.from_json(row.body),
        attempt=row.attempt,
        ref=f"{row.row_id}@{row.claims}{mark}",
        enqueued_at=row.enqueued_at,
    )
