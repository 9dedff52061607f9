"""The live set of subscriptions on this replica: routing at commit, one dispatcher each.

Every `refresh_s` (1 s by default) the registry reads the store's change counter and,
when it moved, reloads the subscriptions: so a subscription made, changed or deleted on
any replica (or by the CLI) is routed and delivered here within about a second, with no
restart. Each enabled subscription gets a `Dispatcher` (the configured sinks' own: retry
ladder, dead letters, metrics under the bounded `sink="subscription"` label).

A deleted subscription's deliveries are dropped by the delete itself; a replica that was
still routing to it until its own refresh drops what it added then, and once more on the
refresh after, so nothing stays queued for a subscription that no longer exists.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp

from bridge import __version__
from bridge.config_api import ApiSection
from bridge.delivery.attempt_log import AttemptLog
from bridge.delivery.subscription_model import Subscription, rfc3339
from bridge.delivery.subscription_sink import SubscriptionSink
from bridge.delivery.targets import GuardedResolver, redacted_url
from bridge.dispatch import Dispatcher
from bridge.errors import StoreError
from bridge.events import Event, event_id, now_iso
from bridge.logs import get_logger
from bridge.routing import Router
from bridge.store.base import Routed
from bridge.store.subscriptions import OutboxWithSubscriptions
from bridge.supervise import stop_if_cancelled

__all__ = ["BRIDGE_TENANT", "METRICS_LABEL", "SUBSCRIPTION_DISABLED", "SubscriptionRegistry"]

log = get_logger(__name__)
METRICS_LABEL = "subscription"
SUBSCRIPTION_DISABLED = "exmail.subscription.disabled"
# The `tenant` of events about the bridge itself (source `exmail://_bridge`).
BRIDGE_TENANT = "_bridge"
_DROP_AGAIN = 2  # refreshes that drop a deleted subscription's stragglers


class SubscriptionRegistry:
    """Loads subscriptions from the store, routes events to them, runs their dispatchers."""

    def __init__(
        self, *, store: OutboxWithSubscriptions, settings: ApiSection, announce_to: Router
    ) -> None:
        self._store = store
        self._settings = settings
        self._announce_to = announce_to
        self._subs: dict[str, Subscription] = {}
        self._routable: tuple[Subscription, ...] = ()
        self._running: dict[str, tuple[Dispatcher, asyncio.Task[None]]] = {}
        self._deleted: dict[str, int] = {}
        self._seen = -1
        self._stopped = False
        self._session: aiohttp.ClientSession | None = None
        self.attempts = AttemptLog(store=store, settings=settings, on_failing=self.auto_disable)
        self.loaded = asyncio.Event()

    def get(self, sub_id: str) -> Subscription | None:
        """The subscription as last loaded, or None."""
        return self._subs.get(sub_id)

    def sinks_for(self, event: Event) -> tuple[str, ...]:
        """Ids of the enabled subscriptions `event` goes to."""
        return tuple(s.id for s in self._routable if s.matches(event))

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session every subscription's deliveries share."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(allow_private=self._settings.allow_private_targets),
                limit=0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"user-agent": f"exmail-bridge/{__version__}"}
            )
        return self._session

    async def run(self) -> None:
        """Refresh until cancelled; store errors are logged and retried at the next tick."""
        while True:
            stop_if_cancelled()
            try:
                await self.refresh()
            except StoreError as exc:
                log.error("subscriptions_refresh_failed", error=str(exc))
            await asyncio.sleep(self._settings.refresh_s)

    async def refresh(self) -> None:
        """Reload when the store's change counter moved; start and stop dispatchers."""
        await self._drop_stragglers()
        seen = await self._store.subscriptions_changed()
        if seen == self._seen:
            return
        subs = {s.id: s for s in await self._store.list_subscriptions()}
        for gone in self._subs.keys() - subs.keys():
            self._deleted[gone] = _DROP_AGAIN
        self._subs, self._seen = subs, seen
        self._routable = tuple(s for s in subs.values() if not s.disabled)
        await self._reconcile()
        self.loaded.set()

    async def _drop_stragglers(self) -> None:
        for sub_id, left in list(self._deleted.items()):
            await self._store.drop_deliveries(sub_id)
            if left <= 1:
                del self._deleted[sub_id]
            else:
                self._deleted[sub_id] = left - 1

    async def _reconcile(self) -> None:
        if self._stopped:
            return  # a refresh that raced `stop()` starts nothing new
        wanted = {s.id for s in self._routable}
        for sub_id in self._running.keys() - wanted:
            await self._stop_one(sub_id)
        for sub_id in wanted - self._running.keys():
            self._start_one(sub_id)

    def _start_one(self, sub_id: str) -> None:
        sink = SubscriptionSink(
            sub_id=sub_id,
            lookup=self.get,
            attempts=self.attempts,
            session=self.session,
            settings=self._settings,
        )
        dispatcher = Dispatcher(
            sink=sink,
            store=self._store,
            retry_s=self._settings.retry_s,
            concurrency=self._settings.concurrency,
            timeout_s=self._settings.timeout_s,
            metrics_label=METRICS_LABEL,
        )
        task = asyncio.create_task(dispatcher.run(), name=f"dispatch[{sub_id}]")
        self._running[sub_id] = (dispatcher, task)

    async def _stop_one(self, sub_id: str) -> None:
        await self._stop_all([self._running.pop(sub_id)])

    async def _stop_all(self, running: list[tuple[Dispatcher, asyncio.Task[None]]]) -> None:
        """Let in-flight sends finish (bounded by the send timeout), then cancel."""
        for dispatcher, _ in running:
            dispatcher.stop()
        tasks = {task for _, task in running}
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self._settings.timeout_s + 2)
        for task in late:
            task.cancel()

    async def stop(self) -> None:
        """Stop every dispatcher (in-flight sends finish) and close the session."""
        self._stopped = True
        running, self._running = list(self._running.values()), {}
        await self._stop_all(running)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def auto_disable(self, sub_id: str, failing_since: float) -> None:
        """Disable a subscription that failed every attempt since `failing_since`, say so
        in the log, and tell the configured sinks with an `exmail.subscription.disabled`."""
        current = await self._store.get_subscription(sub_id)
        if current is None or current.disabled:
            return
        reason = f"failed every attempt since {rfc3339(failing_since)}"
        await self._store.put_subscription(replace(current, disabled=True, disabled_reason=reason))
        log.warning(
            "subscription_disabled",
            subscription=sub_id,
            url=redacted_url(current.url),
            reason=reason,
        )
        event = disabled_event(current, reason, failing_since)
        await self._store.commit(
            BRIDGE_TENANT, [Routed(event=event, sinks=self._announce_to.sinks_for(event))]
        )


def disabled_event(sub: Subscription, reason: str, failing_since: float) -> Event:
    """The `exmail.subscription.disabled` event; its id is stable, so replicas that
    disable the same subscription at once emit it once."""
    return Event(
        id=event_id(BRIDGE_TENANT, SUBSCRIPTION_DISABLED, sub.id, repr(failing_since)),
        type=SUBSCRIPTION_DISABLED,
        tenant=BRIDGE_TENANT,
        mailbox="",
        time=now_iso(),
        data={
            "subscription_id": sub.id,
            "url": redacted_url(sub.url),
            "reason": reason,
            "failing_since": rfc3339(failing_since),
            "scope": list(sub.scope) if sub.scope is not None else None,
        },
    )
