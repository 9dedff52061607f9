"""The webhook sink against a real local aiohttp receiver that verifies signatures."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from standardwebhooks.webhooks import Webhook

from bridge import __version__
from bridge.config import WebhookSinkConfig
from bridge.errors import SinkError
from bridge.events import Event
from sinks.signing import verify
from sinks.webhook import WebhookSink, parse_retry_after
from tests.plugins.services import free_port
from tests.sinks.helpers import mail_event

MakeSink = Callable[..., Awaitable[WebhookSink]]
SECRET_A = "whsec_" + base64.b64encode(b"first secret key for tests 00000").decode()
SECRET_B = "whsec_" + base64.b64encode(b"second secret key for tests 1111").decode()


@dataclass
class Received:
    """One request the receiver got."""

    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Receiver:
    """A local webhook endpoint; `status` and `headers` shape its next answers."""

    url: str = ""
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request, then answer (or hang until released)."""
        self.requests.append(Received(request.headers, await request.read()))
        if self.hang:
            await self.release.wait()
        return web.Response(status=self.status, headers=self.headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver on a free port."""
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recv.url = f"http://127.0.0.1:{port}/hook"
    yield recv
    recv.release.set()
    await runner.cleanup()


@pytest.fixture
async def make_sink() -> AsyncIterator[MakeSink]:
    """Build and start webhook sinks; close them at the end."""
    sinks: list[WebhookSink] = []

    async def make(
        url: str, clock: Callable[[], float] = time.time, **overrides: Any
    ) -> WebhookSink:
        fields = {"name": "oa", "type": "webhook", "url": url, "secret": SECRET_A, **overrides}
        sink = WebhookSink(config=WebhookSinkConfig(**fields), clock=clock)
        await sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


async def _failure(sink: WebhookSink, event: Event | None = None) -> SinkError:
    with pytest.raises(SinkError) as caught:
        await sink.send(event or mail_event())
    return caught.value


async def test_post_is_signed_cloudevent_verifiable_with_each_rotated_secret(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    """The body is the CloudEvent and every configured secret yields a valid signature."""
    sink = await make_sink(receiver.url, secret=[SECRET_A, SECRET_B], headers={"x-team": "ops"})
    event = mail_event()
    await sink.send(event)
    (got,) = receiver.requests
    assert got.body == event.to_json()
    assert Event.from_json(got.body) == event
    headers = dict(got.headers)
    for secret in (SECRET_A, SECRET_B):
        Webhook(secret).verify(got.body, headers)
    assert len(got.headers["webhook-signature"].split()) == 2
    assert got.headers["webhook-id"] == event.id
    assert got.headers["content-type"] == "application/cloudevents+json"
    assert got.headers["user-agent"] == f"exmail-bridge/{__version__}"
    assert got.headers["x-team"] == "ops"
    assert verify([SECRET_B], got.headers, got.body)


async def test_webhook_id_is_stable_across_retries(receiver: Receiver, make_sink: MakeSink) -> None:
    """A retry carries the same webhook-id and a fresh valid signature."""
    sink = await make_sink(receiver.url)
    event = mail_event()
    receiver.status = 503
    await _failure(sink, event)
    receiver.status = 200
    await sink.send(event)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.id
    for got in (first, second):
        Webhook(SECRET_A).verify(got.body, dict(got.headers))


def test_own_verifier_rejects_tampering_and_stale_timestamps() -> None:
    """signing.verify refuses a changed body, a wrong secret and an old timestamp."""
    wh = Webhook(SECRET_A)
    now = int(time.time())
    body = mail_event().to_json()
    headers = CIMultiDict(
        {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(now),
            "webhook-signature": wh.sign("msg_1", _utc(now), body.decode()),
        }
    )
    assert verify([SECRET_A], headers, body, now_s=now)
    assert not verify([SECRET_A], headers, body + b" ", now_s=now)
    assert not verify([SECRET_B], headers, body, now_s=now)
    assert not verify([SECRET_A], headers, body, now_s=now + 301)


@pytest.mark.parametrize(
    ("status", "retry_after", "retryable", "wait_s", "loud"),
    [
        (408, None, True, None, False),
        (429, "7", True, 7.0, False),
        (500, None, True, None, False),
        (503, "DATE+120", True, 120.0, False),
        (400, None, False, None, False),
        (422, None, False, None, False),
        (401, None, False, None, True),
        (410, None, False, None, True),
    ],
)
async def test_status_maps_to_sink_error(
    receiver: Receiver,
    make_sink: MakeSink,
    status: int,
    retry_after: str | None,
    retryable: bool,
    wait_s: float | None,
    loud: bool,
) -> None:
    """Each HTTP status class gives the right retryable / retry_after_s / loud."""
    now = float(int(time.time()))
    sink = await make_sink(receiver.url, clock=lambda: now)
    receiver.status = status
    if retry_after:
        receiver.headers = {"retry-after": retry_after.replace("DATE+120", _http_date(now + 120))}
    error = await _failure(sink)
    assert (error.retryable, error.retry_after_s, error.loud) == (retryable, wait_s, loud)
    assert error.sink == "oa"


async def test_gone_is_logged_loudly_without_secrets(
    receiver: Receiver, make_sink: MakeSink, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 410 logs an error line naming the sink, and never the secret or signature."""
    sink = await make_sink(receiver.url)
    receiver.status = 410
    await _failure(sink)
    out = "".join(capsys.readouterr())
    assert "webhook_rejected" in out
    assert "oa" in out
    assert SECRET_A.removeprefix("whsec_") not in out
    assert receiver.requests[0].headers["webhook-signature"] not in out


async def test_2xx_is_delivered(receiver: Receiver, make_sink: MakeSink) -> None:
    """Any 2xx answer means delivered."""
    sink = await make_sink(receiver.url)
    for status in (200, 202, 204):
        receiver.status = status
        await sink.send(mail_event())
    assert len(receiver.requests) == 3


async def test_timeout_is_retryable(receiver: Receiver, make_sink: MakeSink) -> None:
    """A receiver slower than timeout_s gives a retryable error."""
    sink = await make_sink(receiver.url, timeout_s=0.2)
    receiver.hang = True
    error = await _failure(sink)
    assert error.retryable


async def test_connection_refused_is_retryable(make_sink: MakeSink) -> None:
    """Nothing listening gives a retryable error that says so, without the URL's query."""
    sink = await make_sink(f"http://127.0.0.1:{free_port()}/hook?token=t0k3n")
    error = await _failure(sink)
    assert error.retryable
    assert error.reason == "connection failed: Connection refused (ClientConnectorError)"


async def test_unknown_host_says_so(make_sink: MakeSink) -> None:
    """A receiver host that does not resolve is named as such in the retry reason."""
    sink = await make_sink("http://receiver.invalid/hook")
    error = await _failure(sink)
    assert error.retryable
    assert error.reason.startswith("connection failed: ")
    assert error.reason.endswith(" (ClientConnectorDNSError)")
    assert error.reason != "connection failed: ClientConnectorDNSError"


def test_retry_after_parsing() -> None:
    """Retry-After accepts delta seconds and HTTP dates; junk means no hint."""
    assert parse_retry_after("30", 0.0) == 30.0
    assert parse_retry_after(_http_date(1_000_060.0), 1_000_000.0) == 60.0
    assert parse_retry_after(_http_date(1_000_000.0), 1_000_060.0) == 0.0
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
