"""Routing at commit for configured sinks and subscriptions alike."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.config import RouteConfig
from bridge.delivery.subscriptions import SubscriptionRegistry
from bridge.events import Event
from bridge.routing import Router

__all__ = ["SubscriptionRouter"]


class SubscriptionRouter(Router):
    """The configured routes' sinks, then the ids of the subscriptions the event matches."""

    def __init__(
        self, *, routes: Sequence[RouteConfig], sinks: Sequence[str], registry: SubscriptionRegistry
    ) -> None:
        super().__init__(routes=routes, sinks=sinks)
        self._registry = registry

    def sinks_for(self, event: Event) -> tuple[str, ...]:
        """Configured sinks first (in configuration order), then subscriptions (by id)."""
        return super().sinks_for(event) + self._registry.sinks_for(event)
