"""One tenant's listen loop: listen → decode → commit → listen again.

Transient failures back off (capped exponential, full jitter, reset after a healthy poll);
a poll that ends at once with nothing new is paced (bridge/pacing.py), never a hot loop;
bad credentials park the tenant; a `Ver` push triggers a directory sync (bridge/directory.py)
whose event is committed together with the new version, and whose failure never stops
mail; after every gap the watched mailboxes' unread counts are reconciled. A push read
from the socket is committed before the next one is read; if the store fails, the same
commit is retried (with backoff) until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol, TypeVar

from bridge import events, metrics
from bridge.backoffs import Backoff
from bridge.bounded import LruDict
from bridge.config import ExmailSection, TenantConfig
from bridge.directory import DirectoryDelta, DirectorySync
from bridge.errors import (
    CredentialsError,
    StoreError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
)
from bridge.events import Event
from bridge.exmail.pushes import Heartbeat, MailPush, Push, UnknownPush, UnreadPush, VersionPush
from bridge.exmail.seam import RETRY_AFTER_CAP_S, label_code
from bridge.logs import get_logger
from bridge.pacing import PollPacer
from bridge.routing import Router
from bridge.states import StateBoard
from bridge.store.base import CommitResult, Routed, Store

__all__ = ["DirectoryDelta", "Listener", "Upstream"]

log = get_logger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
# Unread counts remembered per tenant (for an event's `previous`): the most recent ones.
# Watched mailboxes are kept apart and never forgotten (reconcile needs their baseline).
UNREAD_MEMORY = 1000


class Upstream(Protocol):
    """The part of the Exmail client a listener uses."""

    def listen_batches(self, tenant: TenantConfig, ver: str) -> AsyncGenerator[list[Push], None]:
        """An empty batch once the listen is held, then the pushes of each socket read."""

    async def user_list(self, tenant: TenantConfig, ver: str) -> DirectoryDelta: ...
    async def newcount(self, tenant: TenantConfig, mailbox: str) -> int: ...


def _reason(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol"
    return label_code(exc.code) if exc.code else "unavailable"


class Listener:
    """Runs one tenant's listen loop until cancelled."""

    def __init__(
        self,
        *,
        tenant: TenantConfig,
        upstream: Upstream,
        store: Store,
        router: Router,
        settings: ExmailSection,
        board: StateBoard,
        sleep: Sleep = asyncio.sleep,
        unread_memory: int = UNREAD_MEMORY,
    ) -> None:
        self.tenant = tenant
        self._upstream = upstream
        self._store = store
        self._router = router
        self._settings = settings
        self._board = board
        self._sleep = sleep
        self.backoff = Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
        self._pacer = PollPacer(min_interval_s=settings.min_poll_interval_s, backoff=self.backoff)
        self._directory = DirectorySync(tenant=tenant, upstream=upstream, settings=settings)
        self._unread: LruDict[str, int] = LruDict(unread_memory)
        self._watched: dict[str, int] = {}
        self._gap = True  # nothing was heard yet: reconcile after the first poll
        self.polls = 0
        self._pending: asyncio.Future[CommitResult] | None = None
        self._held = False  # the current poll's listen was held by the upstream

    @property
    def remembered(self) -> int:
        """How many mailboxes' unread counts are held in memory."""
        return len(self._unread) + len(self._watched)

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self.tenant.name

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        """Listen until cancelled; never raises an operational error."""
        self._board.set(self.name, "starting")
        try:
            await self._sleep(start_delay_s)
            stored = await self._retrying(lambda: self._store.get_version(self.name))
            self._directory.ver = stored
            while True:
                await self._round()
        finally:
            self._board.drop(self.name)

    async def _round(self) -> None:
        try:
            if self._directory.due():
                await self._sync_directory()
            await self._poll()
        except CredentialsError as exc:
            await self._park(exc)
        except UpstreamError as exc:
            await self._back_off(exc)

    async def _poll(self) -> None:
        if self._board.get(self.name) != "connected":
            self._board.set(self.name, "connecting")
        outcome, news = "empty", False
        self._held = False
        self._pacer.started()
        # aclosing: the response is released at once, whatever ends the loop.
        listen = self._upstream.listen_batches(self.tenant, self._directory.listen_ver)
        async with contextlib.aclosing(listen) as batches:
            async for batch in batches:
                self._held = True
                self._board.set(self.name, "connected")  # the first, empty batch: held
                outcome, fresh = await self._handle_batch(batch, outcome)
                news = news or fresh
        metrics.poll_finished(outcome)
        self.polls += 1
        if self._gap:
            await self._reconcile()
        await self._pace(news)

    async def _pace(self, news: bool) -> None:
        delay_s = self._pacer.finished(news=news)
        if delay_s > 0:
            metrics.reconnect("hollow")
            log.info("listen_hollow", tenant=self.name, retry_in_s=round(delay_s, 3))
            await self._sleep(delay_s)

    async def _handle_batch(self, batch: Sequence[Push], outcome: str) -> tuple[str, bool]:
        """Group commit: the events of every push from one socket read go to the store in
        one transaction, before the next read. A `Ver` push commits what came before it,
        then syncs the directory. The poll's outcome so far, and whether anything was new."""
        pending: list[Event] = []
        news = False
        for push in batch:
            match push:
                case Heartbeat():
                    outcome = "heartbeat" if outcome == "empty" else outcome
                case MailPush() | UnreadPush():
                    outcome = "push"
                    pending += self._event_of(push)
                case VersionPush():
                    outcome = "push"
                    news = await self._flush(pending) or news
                    news = await self._on_version(push) or news
                case UnknownPush(keys=keys):
                    log.warning("push_unknown_shape", tenant=self.name, keys=list(keys))
        return outcome, await self._flush(pending) or news

    async def _flush(self, pending: list[Event]) -> bool:
        if not pending:
            return False
        committed = await self._commit(pending)
        pending.clear()
        return committed

    def _event_of(self, push: MailPush | UnreadPush) -> list[Event]:
        """The event a push becomes (none for a mailbox outside the tenant's filter)."""
        if isinstance(push, MailPush):
            return self._mail_event(push)
        return self._unread_event(push)

    def _wanted(self, mailbox: str) -> bool:
        return any(fnmatchcase(mailbox.lower(), p.lower()) for p in self.tenant.mailboxes)

    def _remember(self, mailbox: str, count: int) -> int | None:
        """Note `mailbox`'s unread count; the one noted before."""
        counts = self._watched if mailbox in self.tenant.watch else self._unread
        previous = counts.get(mailbox)
        counts[mailbox] = count
        return previous

    def _mail_event(self, push: MailPush) -> list[Event]:
        if push.new_count is not None:
            self._remember(push.mailbox, push.new_count)
        if not self._wanted(push.mailbox):
            return []
        event = events.mail_received(
            tenant=self.name,
            mailbox=push.mailbox,
            mail_id=push.mail_id,
            sender=push.sender,
            to=push.receiver,
            subject=push.subject,
            summary=push.summary,
            unread_count=push.new_count,
        )
        return [event]

    def _unread_event(self, push: UnreadPush) -> list[Event]:
        previous = self._remember(push.mailbox, push.new_count)
        if not self._wanted(push.mailbox):
            return []
        event = events.unread_changed(
            tenant=self.name,
            mailbox=push.mailbox,
            unread_count=push.new_count,
            previous=previous,
            reason="push",
        )
        return [event]

    async def _on_version(self, push: VersionPush) -> bool:
        if not self._directory.hear(push.ver):
            return False  # an old or repeated version: nothing new to sync
        await self._sync_directory()
        return True

    async def _sync_directory(self) -> None:
        """Sync now; a failure is logged and retried later, and mail goes on meanwhile."""
        fetched = await self._directory.fetch()
        if fetched is None:
            return
        delta, new_ver = fetched
        event = events.directory_changed(
            tenant=self.name,
            version=new_ver,
            added=list(delta.added),
            removed=list(delta.removed),
            modified=list(delta.modified),
        )
        await self._commit([event], new_ver=new_ver)
        self._directory.synced(new_ver)
        log.info("directory_synced", tenant=self.name, version=new_ver)

    async def _reconcile(self) -> None:
        """After a gap: emit `exmail.mail.unread` for watched boxes whose count rose."""
        found: list[Event] = []
        for mailbox in self.tenant.watch:
            try:
                count = await self._upstream.newcount(self.tenant, mailbox)
            except UpstreamRejected as exc:
                log.warning("reconcile_skipped", tenant=self.name, mailbox=mailbox, error=str(exc))
                continue
            previous = self._remember(mailbox, count)
            if previous is not None and count > previous:
                found.append(
                    events.unread_changed(
                        tenant=self.name,
                        mailbox=mailbox,
                        unread_count=count,
                        previous=previous,
                        reason="reconcile",
                    )
                )
        if found:
            await self._commit(found)
        self._gap = False

    async def _commit(self, batch: list[Event], new_ver: str | None = None) -> bool:
        """Commit `batch` (and the version); True when any event in it was new."""
        routed = self._router.route(batch)
        # Shielded: a shutdown that cancels the listener never cuts a commit in half.
        result = await self._retrying(lambda: self._shielded_commit(routed, new_ver))
        if result.emitted == len(batch):
            for event in batch:
                metrics.events_committed(event.type)
        elif result.emitted:  # a partly duplicate batch: counted under its first type
            metrics.events_committed(batch[0].type, result.emitted)
        if result.duplicates:
            metrics.events_deduplicated(result.duplicates)
            log.info("events_deduplicated", tenant=self.name, count=result.duplicates)
        return result.emitted > 0 or new_ver is not None

    async def _shielded_commit(self, routed: list[Routed], new_ver: str | None) -> CommitResult:
        pending = asyncio.ensure_future(self._store.commit(self.name, routed, new_ver))
        self._pending = pending
        return await asyncio.shield(pending)

    async def drain(self) -> None:
        """Wait for a commit that a cancellation left running (shutdown calls this)."""
        if self._pending is not None and not self._pending.done():
            with contextlib.suppress(Exception):
                await self._pending

    async def _retrying(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a store operation until it succeeds: a full disk must not lose a push."""
        store_backoff = Backoff(base_s=self._settings.backoff_base_s, cap_s=30.0)
        while True:
            try:
                return await op()
            except StoreError as exc:
                delay = store_backoff.next_delay_s()
                log.error("store_failed", tenant=self.name, error=str(exc), retry_in_s=delay)
                await self._sleep(delay)

    async def _back_off(self, exc: UpstreamError) -> None:
        reason = _reason(exc)
        metrics.reconnect(reason)
        self._gap = True
        self._board.set(self.name, "backoff")
        delay = self.backoff.next_delay_s()
        if self._held and self.backoff.failures == 1:
            # A held listen that broke (a restart, a load balancer, a reconnect storm):
            # reconnect at once, paced only by the shared rate budget. A second failure
            # in a row backs off as usual, so this can never become a hot loop.
            delay = 0.0
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int | float):
            delay = max(delay, min(float(retry_after), RETRY_AFTER_CAP_S))
        log.warning(
            "listen_failed",
            tenant=self.name,
            reason=reason,
            error=str(exc),
            failures=self.backoff.failures,
            retry_in_s=round(delay, 3),
        )
        await self._sleep(delay)

    async def _park(self, exc: CredentialsError) -> None:
        self._gap = True
        self._board.set(self.name, "parked")
        metrics.reconnect("credentials")
        log.error(
            "tenant_parked", tenant=self.name, error=str(exc), retry_in_s=self._settings.park_s
        )
        await self._sleep(self._settings.park_s)
