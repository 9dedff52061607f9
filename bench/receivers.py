"""What the latency bench listens with: a verifying webhook receiver and an MQTT subscriber.

Both note, per sink, when each mail (keyed by its subject) first arrived; the injector
notes when it asked the simulator for it. Same process, same monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiomqtt
import orjson
from aiohttp import web

from sinks.signing import verify

__all__ = ["Recorder", "mqtt_subscriber", "percentiles", "webhook_receiver"]


@dataclass
class Recorder:
    """Injection and arrival times of the mails of one run."""

    sent_at: dict[str, float] = field(default_factory=dict)  # subject -> monotonic
    latency_s: dict[str, dict[str, float]] = field(default_factory=dict)  # sink -> subject -> s
    duplicates: dict[str, int] = field(default_factory=dict)
    bad_signatures: int = 0
    arrival: asyncio.Event = field(default_factory=asyncio.Event)  # set on every arrival

    def arrived(self, sink: str, subject: str) -> None:
        """`sink` delivered the mail `subject` now."""
        started = self.sent_at.get(subject)
        seen = self.latency_s.setdefault(sink, {})
        self.arrival.set()
        if started is None:
            return  # a mail of an earlier run, delivered late: not ours to time
        if subject in seen:
            self.duplicates[sink] = self.duplicates.get(sink, 0) + 1
            return
        seen[subject] = time.monotonic() - started

    def reset(self) -> None:
        """Forget everything noted so far (after the warm-up)."""
        self.sent_at, self.latency_s, self.duplicates = {}, {}, {}
        self.bad_signatures = 0

    def complete(self, sinks: list[str]) -> bool:
        """Whether every injected mail reached every sink."""
        return all(len(self.latency_s.get(s, {})) >= len(self.sent_at) for s in sinks)


def _subject(body: bytes) -> str:
    doc = orjson.loads(body)
    return str(doc["data"].get("subject", ""))


@contextlib.asynccontextmanager
async def webhook_receiver(
    recorder: Recorder, *, port: int, path: str, secrets: list[str]
) -> AsyncIterator[None]:
    """Serve `path` on 127.0.0.1:`port`, verifying each Standard Webhooks signature."""

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(secrets, request.headers, body):
            recorder.bad_signatures += 1
            return web.Response(status=400)
        recorder.arrived("webhook", _subject(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(path, hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def mqtt_subscriber(
    recorder: Recorder, *, port: int, topic: str, subscribed: asyncio.Event
) -> None:
    """Subscribe (QoS 1) on the private broker and note every mail until cancelled."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-subscriber") as client:
        await client.subscribe(topic, qos=1)
        subscribed.set()
        async for message in client.messages:
            recorder.arrived("mqtt", _subject(bytes(message.payload)))


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """count, p50, p90, p99 and max of `values` (seconds), in milliseconds."""
    if not values:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
    }
