"""The subscription feature's parts, built once for `app.serve`: the registry (routing and
dispatchers), the router that includes it, and the `/v1/` face."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bridge.config import Config
from bridge.delivery.subscription_replay import Replays
from bridge.delivery.subscription_router import SubscriptionRouter
from bridge.delivery.subscription_service import SubscriptionService
from bridge.delivery.subscriptions import SubscriptionRegistry
from bridge.delivery.targets import own_origins
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.routing import Router
from bridge.store.base import Store
from bridge.store.subscriptions import with_subscriptions
from bridge.web.api import SubscriptionApi
from bridge.web.api_auth import Authenticator, RateLimits

__all__ = ["Subscriptions", "subscriptions"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """What the rest of the bridge uses: a router for the sources, the API face, and the
    registry to run."""

    router: SubscriptionRouter
    face: SubscriptionApi
    registry: SubscriptionRegistry


def service_for(config: Config, store: Store) -> SubscriptionService:
    """The subscription service over `store` (also what the CLI uses)."""
    listens = (config.bridge.http_listen, config.bridge.public_listen)
    return SubscriptionService(
        store=with_subscriptions(store),
        settings=config.api,
        own=own_origins(config.bridge.public_url, listens),
    )


@contextlib.asynccontextmanager
async def subscriptions(config: Config, store: Store) -> AsyncIterator[Subscriptions]:
    """Build the parts, load the subscriptions once (so the first commits route to them)
    and keep them fresh; stop the dispatchers and recovery jobs at the end."""
    names = [s.name for s in config.sinks]
    static = Router(routes=config.routes, sinks=names)
    service = service_for(config, store)
    registry = SubscriptionRegistry(store=service.store, settings=config.api, announce_to=static)
    face = SubscriptionApi(
        service=service,
        replays=Replays(service=service, session=registry.session, attempts=registry.attempts),
        auth=Authenticator(settings=config.api, store=service.store),
        limits=RateLimits(rate_per_s=config.api.rate_per_s, burst=config.api.rate_burst),
    )
    with contextlib.suppress(StoreError):  # the registry's loop retries
        await registry.refresh()
    router = SubscriptionRouter(routes=config.routes, sinks=names, registry=registry)
    refresher = asyncio.create_task(registry.run(), name="subscriptions")
    recorder = asyncio.create_task(registry.attempts.run(), name="subscription-attempts")
    try:
        yield Subscriptions(router=router, face=face, registry=registry)
    finally:
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)
        await face.aclose()
        await registry.stop()
        recorder.cancel()  # after the dispatchers: it flushes their last attempts
        await asyncio.gather(recorder, return_exceptions=True)
