"""The sink behind one subscription: the webhook sink's signed POST, with the secrets and
URL read from the subscription at each attempt, and every attempt recorded.

It reads the subscription through `lookup` at every send, so a PATCH or a rotation made on
any replica applies from the next attempt after the registry's refresh, without restarting
anything. A subscription that is gone (deleted) makes `send` return at once: the delivery
is acked and so dropped. Each attempt goes to the `AttemptLog`, which writes attempts in
batches and has a subscription that failed every attempt for `disable_after_s` disabled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bridge.config_api import ApiSection
from bridge.delivery.attempt_log import AttemptLog
from bridge.delivery.subscription_model import Attempt, Subscription, new_id
from bridge.errors import SinkError
from bridge.events import Event
from sinks.signing import decode_secret, signed_headers
from sinks.webhook import CONTENT_TYPE, _check_status

__all__ = ["PostOutcome", "SubscriptionSink", "post_event"]

Lookup = Callable[[str], Subscription | None]


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """What a receiver answered to one POST (status None: no answer)."""

    status_code: int | None
    duration_ms: int
    error: str
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


async def post_event(
    session: aiohttp.ClientSession, sub: Subscription, event: Event, *, timeout_s: float
) -> PostOutcome:
    """POST `event` to the subscription, signed with each of its current secrets."""
    body = event.to_json()
    keys = [decode_secret(s) for s in sub.signing_secrets(time.time())]
    headers = signed_headers(keys, event.id, int(time.time()), body)
    headers["content-type"] = CONTENT_TYPE
    started = time.monotonic()
    try:
        async with (
            asyncio.timeout(timeout_s),
            session.post(sub.url, data=body, headers=headers, allow_redirects=False) as resp,
        ):
            status, retry_after = resp.status, resp.headers.get("retry-after")
    except TimeoutError:
        return PostOutcome(None, _ms_since(started), "timed out")
    except (aiohttp.ClientError, OSError) as exc:
        return PostOutcome(None, _ms_since(started), f"connection failed: {type(exc).__name__}")
    except ValueError:  # a URL aiohttp cannot use (bad IDNA host, ...): no request was sent
        return PostOutcome(None, _ms_since(started), "invalid url")
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    return PostOutcome(status, _ms_since(started), error, retry_after)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def attempt_of(sub: Subscription, event: Event, outcome: PostOutcome, trigger: str) -> Attempt:
    """The attempt record of one POST."""
    now = time.time()
    return Attempt(
        id=new_id("att", now),
        subscription_id=sub.id,
        event_id=event.id,
        event_type=event.type,
        at=now,
        status="succeeded" if outcome.ok else "failed",
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        trigger=trigger,
    )


class SubscriptionSink:
    """A `Sink` named by the subscription id; the dispatcher drives it like any sink."""

    def __init__(
        self,
        *,
        sub_id: str,
        lookup: Lookup,
        attempts: AttemptLog,
        session: aiohttp.ClientSession,
        settings: ApiSection,
    ) -> None:
        self.name = sub_id
        self._lookup = lookup
        self._attempts = attempts
        self._session = session
        self._settings = settings

    async def start(self) -> None:
        """Nothing to open: the registry owns the shared HTTP session."""

    async def aclose(self) -> None:
        """Nothing to close: the registry owns the shared HTTP session."""

    async def send(self, event: Event) -> None:
        """POST the event; record the attempt; raise SinkError unless it was 2xx."""
        sub = self._lookup(self.name)
        if sub is None:
            return  # deleted: acking drops the delivery
        if sub.disabled:
            raise SinkError(self.name, "subscription disabled", retryable=True, retry_after_s=60)
        outcome = await post_event(self._session, sub, event, timeout_s=self._settings.timeout_s)
        self._attempts.add(attempt_of(sub, event, outcome, "delivery"), event)
        if outcome.status_code is None:
            raise SinkError(self.name, outcome.error, retryable=True)
        _check_status(self.name, outcome.status_code, outcome.retry_after, time.time())
