"""One tenant's listen loop: listen → decode → commit → listen again.

Transient failures back off (capped exponential, full jitter, reset after a healthy poll);
bad credentials park the tenant; a `Ver` push triggers a directory sync whose event is
committed together with the new version; after every gap (the start too) the watched
mailboxes' unread counts are reconciled against the baselines stored with earlier
commits. A push read from the socket is committed before the next one is read; if the
store fails, the same commit is retried (with backoff) until it succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol, TypeVar

from bridge import baselines, events, metrics
from bridge.backoffs import Backoff
from bridge.config import ExmailSection, TenantConfig
from bridge.errors import (
    CredentialsError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
)
from bridge.events import Event
from bridge.exmail.pushes import Heartbeat, MailPush, Push, UnknownPush, UnreadPush, VersionPush
from bridge.logs import get_logger
from bridge.routing import Router
from bridge.sources.commit import Committer
from bridge.states import StateBoard
from bridge.store.base import Store

__all__ = ["DirectoryDelta", "Listener", "Upstream"]

log = get_logger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class DirectoryDelta(Protocol):
    """What `user/list` answers: the new version and who changed."""

    @property
    def ver(self) -> str: ...
    @property
    def added(self) -> Sequence[str]: ...
    @property
    def removed(self) -> Sequence[str]: ...
    @property
    def modified(self) -> Sequence[str]: ...


class Upstream(Protocol):
    """The part of the Exmail client a listener uses."""

    def listen(self, tenant: TenantConfig, ver: str) -> AsyncIterator[Push]: ...
    async def user_list(self, tenant: TenantConfig, ver: str) -> DirectoryDelta: ...
    async def newcount(self, tenant: TenantConfig, mailbox: str) -> int: ...


def _reason(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol"
    return exc.code or "unavailable"


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
    ) -> None:
        self.tenant = tenant
        self._upstream = upstream
        self._store = store
        self._router = router
        self._settings = settings
        self._board = board
        self._sleep = sleep
        self.backoff = Backoff(base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
        self._ver = "0"
        self._unread: dict[str, int] = {}
        self._gap = True  # nothing was heard yet: reconcile after the first poll
        self.polls = 0
        self._committer = Committer(
            tenant=tenant.name,
            store=store,
            router=router,
            backoff_base_s=settings.backoff_base_s,
            sleep=sleep,
        )

    @property
    def name(self) -> str:
        """The tenant's name."""
        return self.tenant.name

    async def run(self, *, start_delay_s: float = 0.0) -> None:
        """Listen until cancelled; never raises an operational error."""
        self._board.set(self.name, "starting")
        try:
            await self._sleep(start_delay_s)
            self._ver = await self._committer.retrying(lambda: self._store.get_version(self.name))
            while True:
                await self._round()
        finally:
            self._board.drop(self.name)

    async def _round(self) -> None:
        try:
            await self._poll()
        except CredentialsError as exc:
            await self._park(exc)
        except UpstreamError as exc:
            await self._back_off(exc)

    async def _poll(self) -> None:
        if self._board.get(self.name) != "connected":
            self._board.set(self.name, "connecting")
        outcome = "empty"
        async for push in self._upstream.listen(self.tenant, self._ver):
            self._board.set(self.name, "connected")
            outcome = await self._handle(push, outcome)
        self._board.set(self.name, "connected")
        metrics.poll_finished(outcome)
        self.backoff.reset()
        if self._gap:
            await self._reconcile()
        self.polls += 1  # counted once the round is complete, reconcile included

    async def _handle(self, push: Push, outcome: str) -> str:
        match push:
            case Heartbeat():
                return "heartbeat" if outcome == "empty" else outcome
            case MailPush():
                await self._on_mail(push)
            case UnreadPush():
                await self._on_unread(push)
            case VersionPush():
                await self._on_version(push)
            case UnknownPush(keys=keys):
                log.warning("push_unknown_shape", tenant=self.name, keys=list(keys))
                return outcome
        return "push"

    def _wanted(self, mailbox: str) -> bool:
        return any(fnmatchcase(mailbox.lower(), p.lower()) for p in self.tenant.mailboxes)

    async def _on_mail(self, push: MailPush) -> None:
        if push.new_count is not None:
            self._unread[push.mailbox] = push.new_count
        if not self._wanted(push.mailbox):
            return
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
        await self._commit([event], counts=self._watched(push.mailbox, push.new_count))

    async def _on_unread(self, push: UnreadPush) -> None:
        previous = self._unread.get(push.mailbox)
        self._unread[push.mailbox] = push.new_count
        if not self._wanted(push.mailbox):
            return
        event = events.unread_changed(
            tenant=self.name,
            mailbox=push.mailbox,
            unread_count=push.new_count,
            previous=previous,
            reason="push",
        )
        await self._commit([event], counts=self._watched(push.mailbox, push.new_count))

    async def _on_version(self, push: VersionPush) -> None:
        if int(push.ver) <= int(self._ver):
            return  # an old or repeated version: nothing new to sync
        delta = await self._upstream.user_list(self.tenant, self._ver)
        new_ver = delta.ver if int(delta.ver) >= int(push.ver) else push.ver
        event = events.directory_changed(
            tenant=self.name,
            version=new_ver,
            added=list(delta.added),
            removed=list(delta.removed),
            modified=list(delta.modified),
        )
        await self._commit([event], new_ver=new_ver)
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
        self._unread.update(counts)
        found = baselines.unread_rises(self.name, counts, stored, reason="reconcile")
        if changed := baselines.changed_counts(counts, stored):
            await self._commit(found, counts=changed)
        self._gap = False

    async def _commit(
        self,
        batch: list[Event],
        new_ver: str | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        # `counts` are the watched mailboxes' new unread baselines, stored with the events.
        await self._committer.commit(batch, new_ver, baselines=counts)
        if new_ver is not None:
            self._ver = new_ver

    async def drain(self) -> None:
        """Wait for a commit that a cancellation left running (shutdown calls this)."""
        await self._committer.drain()

    async def _back_off(self, exc: UpstreamError) -> None:
        reason = _reason(exc)
        metrics.reconnect(reason)
        self._gap = True
        self._board.set(self.name, "backoff")
        delay = self.backoff.next_delay_s()
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int | float):
            delay = max(delay, float(retry_after))
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
