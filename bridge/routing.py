"""Which named sinks an event goes to, decided once, at commit."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from bridge.config import RouteConfig
from bridge.events import Event
from bridge.store.base import Routed

__all__ = ["Router"]


def _any(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatchcase(value.lower(), pattern.lower()) for pattern in patterns)


class Router:
    """Routes match tenants, mailbox globs and event types; no routes = every sink."""

    def __init__(self, *, routes: Sequence[RouteConfig], sinks: Sequence[str]) -> None:
        self._routes = tuple(routes)
        self._all = tuple(sinks)

    def sinks_for(self, event: Event) -> tuple[str, ...]:
        """The sink names for `event`, in configuration order, without repeats."""
        if not self._routes:
            return self._all
        chosen: dict[str, None] = {}
        for route in self._routes:
            if (
                _any(route.tenants, event.tenant)
                and _any(route.mailboxes, event.mailbox)
                and _any(route.events, event.type)
            ):
                chosen.update(dict.fromkeys(route.sinks))
        return tuple(chosen)

    def route(self, events: Sequence[Event]) -> list[Routed]:
        """Pair each event with its sinks; an event no route wants is still committed
        (for dedupe and the version) but goes nowhere."""
        return [Routed(event=e, sinks=self.sinks_for(e)) for e in events]
