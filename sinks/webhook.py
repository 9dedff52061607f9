"""The webhook sink: one Standard Webhooks signed POST per event.

The body is the event's CloudEvent JSON (`application/cloudevents+json`); `webhook-id` is
the event id, so it is the same on every retry, and the timestamp and signatures are made
fresh for each attempt over the exact bytes sent. Every configured secret signs (rotation).

What the answer means (the dispatcher retries, never this sink):

- 2xx: delivered.
- 408, 429, 5xx, a timeout or a connection error: retryable, after `Retry-After` if given.
- 410 Gone: permanent and loud (the receiver says the endpoint is gone for good).
- 401, 403, 404 and 3xx (redirects are not followed): permanent and loud, since they
  mean a wrong secret or URL that every later delivery will hit too.
- any other 4xx: permanent for this event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

import aiohttp
from yarl import URL

from bridge import __version__
from bridge.config import WebhookSinkConfig
from bridge.errors import ConfigError, SinkError
from bridge.events import Event
from bridge.logs import get_logger
from bridge.netfail import connection_reason
from sinks.signing import decode_secret, signed_headers

__all__ = ["CONTENT_TYPE", "WebhookSink", "parse_retry_after"]

log = get_logger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
_RETRYABLE = frozenset({408, 429})
_LOUD = frozenset({401, 403, 404, 410})
KEEPALIVE_S = 30.0  # an idle pooled connection is closed after this


class WebhookSink:
    """POSTs each event to `config.url`, signed with every secret in `config.secret`."""

    def __init__(
        self, *, config: WebhookSinkConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = config.name
        self._config = config
        self._clock = clock
        self._keys = tuple(
            _key(config.name, i, s.get_secret_value()) for i, s in enumerate(config.secret)
        )
        self._url = URL(config.url)
        # The headers every request carries; each send adds its signature headers.
        self._headers = {**config.headers, "content-type": CONTENT_TYPE}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the sink's HTTP session (one connection pool per sink)."""
        if self._session is None:
            # Keep-alive pool sized to the dispatcher's concurrency: every send in flight
            # reuses a warm connection instead of paying a connect (and TLS) per event.
            connector = aiohttp.TCPConnector(
                ssl=self._config.verify_tls,
                limit=self._config.concurrency,
                limit_per_host=self._config.concurrency,
                keepalive_timeout=KEEPALIVE_S,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
                headers={"user-agent": f"exmail-bridge/{__version__}"},
            )

    async def send(self, event: Event) -> None:
        """POST the event; return when the receiver answered 2xx, else raise SinkError."""
        if self._session is None:
            raise RuntimeError("WebhookSink.send() before start()")
        body = event.to_json()  # an event claimed from the outbox: its stored bytes
        headers = self._headers.copy()
        headers.update(signed_headers(self._keys, event.id, int(self._clock()), body))
        status, retry_after = await self._post(self._session, body, headers)
        _check_status(self.name, status, retry_after, self._clock())

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        # The session's total timeout (`timeout_s`) bounds the whole exchange.
        try:
            async with session.post(
                self._url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return resp.status, None  # delivered: no header to look up
                return resp.status, resp.headers.get("retry-after")
        except TimeoutError as exc:
            raise SinkError(self.name, "timed out", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise SinkError(self.name, connection_reason(exc), retryable=True) from exc


def _key(sink: str, index: int, secret: str) -> bytes:
    try:
        return decode_secret(secret)
    except ValueError as exc:
        raise ConfigError(f"sinks.{sink}.secret[{index}]", str(exc)) from None


def _check_status(sink: str, status: int, retry_after: str | None, now_s: float) -> None:
    if 200 <= status < 300:
        return
    reason = f"HTTP {status}"
    if status in _RETRYABLE or status >= 500:
        wait_s = parse_retry_after(retry_after, now_s)
        raise SinkError(sink, reason, retryable=True, retry_after_s=wait_s)
    loud = status in _LOUD or 300 <= status < 400
    if loud:
        log.error("webhook_rejected", sink=sink, status=status)
    raise SinkError(sink, reason, retryable=False, loud=loud)


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)
