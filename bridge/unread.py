"""Unread counts a listener has seen, bounded, and the reconcile after a gap.

The counts give an `exmail.mail.unread` event its `previous`. They are kept for the most
recent `max_items` mailboxes of a tenant; the `watch` mailboxes are kept apart and never
forgotten, because reconciling after a gap compares against them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from bridge import events
from bridge.bounded import LruDict
from bridge.config import TenantConfig
from bridge.errors import UpstreamRejected
from bridge.events import Event
from bridge.logs import get_logger

__all__ = ["UNREAD_MEMORY", "NewCounts", "UnreadMemory", "reconcile"]

log = get_logger(__name__)
UNREAD_MEMORY = 1000


class NewCounts(Protocol):
    """The part of the Exmail client a reconcile uses."""

    async def newcount(self, tenant: TenantConfig, mailbox: str) -> int: ...


class UnreadMemory:
    """The last count seen per mailbox: watched ones always, others the most recent."""

    def __init__(self, *, watch: Collection[str], max_items: int = UNREAD_MEMORY) -> None:
        self._watch = frozenset(watch)
        self._recent: LruDict[str, int] = LruDict(max_items)
        self._watched: dict[str, int] = {}

    def note(self, mailbox: str, count: int) -> int | None:
        """Remember `mailbox`'s count; the one remembered before, if any."""
        counts = self._watched if mailbox in self._watch else self._recent
        previous = counts.get(mailbox)
        counts[mailbox] = count
        return previous

    def __len__(self) -> int:
        return len(self._recent) + len(self._watched)


async def reconcile(tenant: TenantConfig, upstream: NewCounts, memory: UnreadMemory) -> list[Event]:
    """After a gap: an `exmail.mail.unread` event for each watched box whose count rose."""
    found: list[Event] = []
    for mailbox in tenant.watch:
        try:
            count = await upstream.newcount(tenant, mailbox)
        except UpstreamRejected as exc:
            log.warning("reconcile_skipped", tenant=tenant.name, mailbox=mailbox, error=str(exc))
            continue
        previous = memory.note(mailbox, count)
        if previous is not None and count > previous:
            found.append(
                events.unread_changed(
                    tenant=tenant.name,
                    mailbox=mailbox,
                    unread_count=count,
                    previous=previous,
                    reason="reconcile",
                )
            )
    return found
