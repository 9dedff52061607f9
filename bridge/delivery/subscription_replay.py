"""Sending again: a test ping, a resend of one event, and a recovery of a time window.

All three keep the original event ids (the `webhook-id`), so a receiver that already has
an event recognises it. Resends and recoveries go through the outbox (the dispatcher's
retry ladder applies); the test ping is sent at once and its answer returned.
"""

from __future__ import annotations

import time
import uuid

import aiohttp

from bridge.delivery.attempt_log import AttemptLog
from bridge.delivery.subscription_model import Subscription, new_id
from bridge.delivery.subscription_service import Principal, SubscriptionService
from bridge.delivery.subscription_sink import PostOutcome, attempt_of, post_event
from bridge.delivery.subscriptions import BRIDGE_TENANT
from bridge.errors import ApiError
from bridge.events import Event, now_iso
from bridge.logs import get_logger
from bridge.store.subscriptions import AttemptQuery

__all__ = ["PING", "Replays"]

log = get_logger(__name__)
PING = "exmail.ping"


def ping_event(sub: Subscription) -> Event:
    """A fresh `exmail.ping` for one subscription."""
    return Event(
        id=str(uuid.uuid4()),
        type=PING,
        tenant=BRIDGE_TENANT,
        mailbox="",
        time=now_iso(),
        data={"subscription_id": sub.id},
    )


class Replays:
    """Test, resend and recover, on top of the service's scope checks."""

    def __init__(
        self, *, service: SubscriptionService, session: aiohttp.ClientSession, attempts: AttemptLog
    ) -> None:
        self._service = service
        self._attempts = attempts
        self._store = service.store
        self._settings = service.settings
        self._session = session

    async def flush_attempts(self) -> None:
        """Write this replica's queued attempt records, so a read sees them."""
        await self._attempts.flush()

    async def test(self, who: Principal, sub_id: str) -> tuple[Event, PostOutcome]:
        """Send a signed ping now; the receiver's answer (also kept as an attempt)."""
        sub = await self._service.get(who, sub_id)
        event = ping_event(sub)
        outcome = await post_event(self._session, sub, event, timeout_s=self._settings.timeout_s)
        await self._store.record_attempt(
            attempt_of(sub, event, outcome, "test"),
            event,
            keep_s=self._settings.attempts_retention_s,
            keep_max=self._settings.attempts_max,
        )
        return event, outcome

    async def resend(self, who: Principal, sub_id: str, event_id: str) -> None:
        """Queue one event again for this subscription, under its original id."""
        sub = await self._service.get(who, sub_id)
        await self.flush_attempts()
        event = await self._store.event_body(event_id)
        if event is None or (sub.scope is not None and event.tenant not in sub.scope):
            raise ApiError(404, "Not Found", f"no event {event_id} within the retention")
        await self._store.enqueue(sub.id, [event])

    async def start_recover(
        self, who: Principal, sub_id: str, since: float, until: float
    ) -> tuple[str, Subscription]:
        """Check the request; the job id to run `recover` under."""
        if until < since:
            raise ApiError(422, "Unprocessable Content", "until: must not be before since")
        return new_id("job"), await self._service.get(who, sub_id)

    async def recover(self, job_id: str, sub: Subscription, since: float, until: float) -> int:
        """Resend every event whose attempts in [since, until] failed and that was not
        delivered later: dead letters go back to the outbox, others are queued again."""
        await self.flush_attempts()
        latest: dict[str, bool] = {}
        failed_in_window: set[str] = set()
        query = AttemptQuery(sub.id, since=since, limit=self._settings.attempts_max)
        for attempt in await self._store.attempts(query):  # newest first
            latest.setdefault(attempt.event_id, attempt.status == "succeeded")
            if attempt.status == "failed" and attempt.at <= until and attempt.trigger != "test":
                failed_in_window.add(attempt.event_id)
        resent = 0
        for event_id in sorted(failed_in_window):
            if not latest[event_id]:
                resent += await self._resend_one(sub.id, event_id)
        log.info("subscription_recovered", job=job_id, subscription=sub.id, resent=resent)
        return resent

    async def _resend_one(self, sub_id: str, event_id: str) -> int:
        if await self._store.replay(sink=sub_id, event_id=event_id):
            return 1
        event = await self._store.event_body(event_id)
        return 0 if event is None else await self._store.enqueue(sub_id, [event])


def window_end(until: float | None) -> float:
    """The end of a recovery window: `until`, or now."""
    return time.time() if until is None else until
