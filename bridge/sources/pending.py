"""What one socket read adds up to before its group commit: events and watched baselines."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.events import Event

__all__ = ["Pending"]


@dataclass(slots=True)
class Pending:
    """Events in push order, and the newest unread baseline per watched mailbox."""

    events: list[Event] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, event: Event, counts: dict[str, int]) -> None:
        """One more event; a later push's count of a mailbox replaces an earlier one."""
        self.events.append(event)
        if counts:
            self.counts.update(counts)

    def clear(self) -> None:
        """Committed: start empty again."""
        self.events.clear()
        self.counts.clear()
