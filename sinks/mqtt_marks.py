"""Retained states only move forward: the newest event time published per unread topic.

The unread count is retained, so the last publish wins on the broker. A retry of an older
event after a newer one went out would set the count back. Before publishing a retained
count, the sink advances the topic's mark to the event's time; an older event finds a newer
mark and skips its retained count (its other publications still go out).

`StoreMarks` keeps marks in the store: they survive a restart and are shared by replicas;
the bridge uses it. `LocalMarks` keeps at most `max_topics` in this process (tests, tools).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from bridge.store.base import Store

__all__ = ["LocalMarks", "Marks", "StoreMarks"]

MARK_TTL_S = 7 * 86400.0  # longer than the default retry ladder (~30 h) with room to spare


class Marks(Protocol):
    """Newest value published per topic."""

    async def advance(self, topic: str, value: str) -> bool:
        """True (and remember `value`) unless a greater value was published on `topic`."""


class StoreMarks:
    """Marks in the store under one sink's name."""

    def __init__(self, *, store: Store, scope: str) -> None:
        self._store = store
        self._scope = scope

    async def advance(self, topic: str, value: str) -> bool:
        """One store round trip, atomic across replicas."""
        return await self._store.advance_mark(f"mqtt:{self._scope}:{topic}", value, MARK_TTL_S)


class LocalMarks:
    """Marks in this process, the least recently advanced forgotten first."""

    def __init__(self, *, max_topics: int = 100_000) -> None:
        self._max = max_topics
        self._marks: OrderedDict[str, str] = OrderedDict()

    async def advance(self, topic: str, value: str) -> bool:
        """Compare and remember, with no await in between."""
        current = self._marks.get(topic)
        if current is not None and current > value:
            return False
        self._marks[topic] = value
        self._marks.move_to_end(topic)
        while len(self._marks) > self._max:
            self._marks.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._marks)
