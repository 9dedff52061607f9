"""One tenant's listen loop: listen → decode → commit → listen again.

Transient failures back off (capped exponential, full jitter, reset after a healthy poll);
a poll that ends at once with nothing new is paced (bridge/pacing.py), never a hot loop;
bad credentials park the tenant; a `Ver` push triggers a directory sync (bridge/directory.py)
whose event is committed together with the new version, and whose failure never stops
mail; after every gap (the start too) the watched mailboxes' unread counts are reconciled
against the baselines stored with earlier commits. A push read from the socket is
committed before the next one is read, and every push of one read in one transaction
(group commit); if the store fails, the same commit is retried (with backoff) until it
succeeds (bridge/sources/commit.py). A held listen that breaks reconnects at once, once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Protocol

from bridge import baselines, events, globs, metrics
from bridge.backoffs import Backoff
from bridge.config import ExmailSection, TenantConfig
from bridge.directory import DirectoryDelta, DirectorySync
from bridge.errors import (
    CredentialsError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
)
from bridge.events import Event
from bridge.exmail.pushes import Heartbeat, MailPush, Push, UnreadPush, VersionPush
from bridge.exmail.seam import RETRY_AFTER_CAP_S, label_code
from bridge.logs import get_logger
from bridge.pacing import PollPacer
from bridge.routing import Router
from bridge.sources.commit import Committer
from bridge.sources.pending import Pending
from bridge.states import StateBoard
from bridge.store.base import Store
from bridge.supervise import stop_if_cancelled
from bridge.tally import Tally
from bridge.unread import UNREAD_MEMORY, UnreadMemory

__all__ = ["DirectoryDelta", "Listener", "Upstream"]

log = get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]
# Broken held listens that reconnect at once: one line a second for all tenants.
RECONNECTS = Tally("listens_reconnected")


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

    # 10,000 of these live as long as the process: no per-instance dict.
    __slots__ = (
        "_board",
        "_committer",
        "_directory",
        "_gap",
        "_held",
        "_pacer",
        "_router",
        "_settings",
        "_sleep",
        "_store",
        "_unread",
        "_upstream",
        "_wanted",
        "backoff",
        "polls",
        "tenant",
    )

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
        self._unread = UnreadMemory(watch=tenant.watch, max_items=unread_memory)
        self._wanted = globs.matcher(tenant.mailboxes)  # the mailboxes that make events
        self._gap = True  # nothing was heard yet: reconcile after the first poll
        self.polls = 0
        self._held = False  # the current poll's listen was held by the upstream
        self._committer = Committer(
            tenant=tenant.name,
            store=store,
            router=router,
            backoff_base_s=settings.backoff_base_s,
            sleep=sleep,
        )

    @property
    def remembered(self) -> int:
        """How many mailboxes' unread counts are held in memory."""
        return len(self._unread)

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self.tenant.name

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        """Listen until cancelled; never raises an operational error."""
        self._board.set(self.name, "starting")
        try:
            await self._sleep(start_delay_s)
            stored = await self._committer.retrying(lambda: self._store.get_version(self.name))
            self._directory.ver = stored
            while True:
                stop_if_cancelled()
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
        if self._gap:
            await self._reconcile()
        self.polls += 1  # counted once the round is complete, reconcile included
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
        pending = Pending()
        news = False
        for push in batch:
            # Mail first, as plain isinstance tests: a burst is thousands of mail pushes.
            if isinstance(push, MailPush):
                outcome = "push"
                self._note_mail(push, pending)
            elif isinstance(push, UnreadPush):
                outcome = "push"
                self._note_unread(push, pending)
            elif isinstance(push, Heartbeat):
                outcome = "heartbeat" if outcome == "empty" else outcome
            elif isinstance(push, VersionPush):
                outcome = "push"
                news = await self._flush(pending) or news
                news = await self._on_version(push) or news
            else:
                log.warning("push_unknown_shape", tenant=self.name, keys=list(push.keys))
        return outcome, await self._flush(pending) or news

    async def _flush(self, pending: Pending) -> bool:
        if not pending.events:
            return False
        committed = await self._commit(pending.events, counts=pending.counts)
        pending.clear()
        return committed

    def _note_mail(self, push: MailPush, pending: Pending) -> None:
        """Add the event a mail push becomes (none outside the tenant's mailbox filter)."""
        if push.new_count is not None:
            self._unread.remember(push.mailbox, push.new_count)
        if self._wanted(push.mailbox):
            pending.add(self._mail_event(push), self._watched(push.mailbox, push.new_count))

    def _note_unread(self, push: UnreadPush, pending: Pending) -> None:
        """Add the event an unread push becomes (none outside the mailbox filter)."""
        previous = self._unread.note(push.mailbox, push.new_count)
        if self._wanted(push.mailbox):
            event = self._unread_event(push, previous)
            pending.add(event, self._watched(push.mailbox, push.new_count))

    def _mail_event(self, push: MailPush) -> Event:
        return events.mail_received(
            tenant=self.name,
            mailbox=push.mailbox,
            mail_id=push.mail_id,
            sender=push.sender,
            to=push.receiver,
            subject=push.subject,
            summary=push.summary,
            unread_count=push.new_count,
        )

    def _unread_event(self, push: UnreadPush, previous: int | None) -> Event:
        return events.unread_changed(
            tenant=self.name,
            mailbox=push.mailbox,
            unread_count=push.new_count,
            previous=previous,
            reason="push",
        )

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

    def _watched(self, mailbox: str, count: int | None) -> dict[str, int]:
        return baselines.watched_count(self.tenant.watch, mailbox, count)

    async def _reconcile(self) -> None:
        """After a gap: emit `exmail.mail.unread` for watched boxes whose count rose above
        the stored baseline (so mail that arrived while the bridge was down is announced)."""
        stored = await self._committer.retrying(lambda: self._store.get_baselines(self.name))
        counts: dict[str, int] = {}
        for mailbox in baselines.resolve_watch(self.tenant.watch, stored):
            try:
                counts[mailbox] = await self._upstream.newcount(self.tenant, mailbox)
            except UpstreamRejected as exc:
                log.warning("reconcile_skipped", tenant=self.name, mailbox=mailbox, error=str(exc))
        for mailbox, count in counts.items():
            self._unread.note(mailbox, count)
        found = baselines.unread_rises(self.name, counts, stored, reason="reconcile")
        if changed := baselines.changed_counts(counts, stored):
            await self._commit(found, counts=changed)
        self._gap = False

    async def _commit(
        self,
        batch: list[Event],
        new_ver: str | None = None,
        counts: dict[str, int] | None = None,
    ) -> bool:
        """Commit `batch` (the version, and `counts`: the watched mailboxes' new unread
        baselines, stored with the events); True when anything in it was new."""
        result = await self._committer.commit(batch, new_ver, baselines=counts)
        return result.emitted > 0 or new_ver is not None

    async def drain(self) -> None:
        """Wait for a commit that a cancellation left running (shutdown calls this)."""
        await self._committer.drain()

    async def _back_off(self, exc: UpstreamError) -> None:
        reason = _reason(exc)
        metrics.reconnect(reason)
        self._gap = True
        self._board.set(self.name, "backoff")
        if self._held and self._pacer.lasted():
            # Held for a while, then broken: not a failure in a row with whatever came
            # before (a second storm within one hold must not back off).
            self.backoff.reset()
        delay = self.backoff.next_delay_s()
        if self._held and self.backoff.failures == 1:
            # A held listen that broke (a restart, a load balancer, a reconnect storm):
            # reconnect at once, paced only by the shared rate budget. A second failure
            # in a row backs off as usual, so this can never become a hot loop.
            delay = 0.0
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int | float):
            delay = max(delay, min(float(retry_after), RETRY_AFTER_CAP_S))
        # A broken held listen that reconnects at once is routine (a storm breaks 10,000):
        # debug, and counted in one `listens_reconnected` line a second; a failure that
        # backs off is worth a warning of its own.
        if delay == 0.0:
            RECONNECTS.note(reason)
        level = log.debug if delay == 0.0 else log.warning
        level(
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
