"""Unread counts a listener has seen, bounded (the reconcile after a gap compares against
the store's baselines: bridge/baselines.py).

The counts give an `exmail.mail.unread` event its `previous`. They are kept for the most
recent `max_items` mailboxes of a tenant; the `watch` mailboxes are kept apart and never
forgotten, so their events always carry it.
"""

from __future__ import annotations

from collections.abc import Collection

from bridge.bounded import LruDict

__all__ = ["UNREAD_MEMORY", "UnreadMemory"]

UNREAD_MEMORY = 1000
_NONE: frozenset[str] = frozenset()


class UnreadMemory:
    """The last count seen per mailbox: watched ones always, others the most recent."""

    __slots__ = ("_recent", "_watch", "_watched")

    def __init__(self, *, watch: Collection[str], max_items: int = UNREAD_MEMORY) -> None:
        self._watch = frozenset(watch) if watch else _NONE  # most tenants watch none
        self._recent: LruDict[str, int] = LruDict(max_items)
        self._watched: dict[str, int] = {}

    def note(self, mailbox: str, count: int) -> int | None:
        """Remember `mailbox`'s count; the one remembered before, if any."""
        counts = self._watched if mailbox in self._watch else self._recent
        previous = counts.get(mailbox)
        counts[mailbox] = count
        return previous

    def remember(self, mailbox: str, count: int) -> None:
        """Remember `mailbox`'s count (`note` without reading the one before)."""
        if mailbox in self._watch:
            self._watched[mailbox] = count
        else:
            self._recent[mailbox] = count

    def __len__(self) -> int:
        return len(self._recent) + len(self._watched)
