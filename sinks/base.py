"""The sink interface: send one event, or a batch; raise SinkError, never retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from bridge.errors import SinkError
from bridge.events import Event

__all__ = ["BatchSink", "Sink", "SinkError"]


@runtime_checkable
class Sink(Protocol):
    """A configured destination. `send` raises SinkError(retryable=...) on failure."""

    name: str

    async def start(self) -> None:
        """Open connections; called once before the first send."""

    async def send(self, event: Event) -> None:
        """Deliver one event, or raise SinkError."""

    async def aclose(self) -> None:
        """Release connections; called once at shutdown."""


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink that wants to see all due events at once (e.g. to fold a burst into a digest)."""

    async def send_batch(self, events: Sequence[Event]) -> list[SinkError | None]:
        """Deliver what it can; one result per event, in order: None = delivered."""
