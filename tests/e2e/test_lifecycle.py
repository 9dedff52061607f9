"""The bridge process's life: health and readiness endpoints, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import orjson

from bridge import events
from tests.e2e.mqtt_watch import MqttWatch
from tests.plugins.e2e import BOTH_STORES, GRACE_S, Harness
from tests.plugins.services import MosquittoServer

EXIT_MARGIN_S = 4.0  # interpreter start-up is before the signal; this covers its exit


@BOTH_STORES
async def test_sigterm_exits_zero_within_grace(
    e2e: Harness, mosquitto_server: MosquittoServer, mqtt_watch: MqttWatch
) -> None:
    """SIGTERM with a delivery stuck in flight still exits 0 within grace_s."""
    sinks = [e2e.webhook_sink(timeout_s=30), e2e.mqtt_sink(mosquitto_server)]
    bridge = await e2e.start_bridge(e2e.write_config(sinks=sinks))
    e2e.receiver.hang(60)
    event_id = e2e.mail("bob@acme.com", "stuck in flight")
    await e2e.until(lambda: event_id in mqtt_watch.ids(), "the MQTT delivery")
    await e2e.until(lambda: e2e.receiver.holding == 1, "the webhook delivery in flight")
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit(GRACE_S + EXIT_MARGIN_S) == 0
    names = [line.get("event") for line in bridge.log_events()]
    assert "shutdown_grace_exceeded" in names
    assert "bridge_stopped" in names


async def test_sigterm_lets_the_delivery_in_flight_finish(e2e: Harness) -> None:
    """SIGTERM during a slow delivery waits for its answer and acks it before exiting 0."""
    bridge = await e2e.start_bridge(e2e.write_config(sinks=[e2e.webhook_sink()]))
    e2e.receiver.hang(1.0)
    event_id = e2e.mail("bob@acme.com", "slow receiver")
    await e2e.until(lambda: e2e.receiver.holding == 1, "the delivery in flight")
    bridge.signal(signal.SIGTERM)
    assert await bridge.wait_exit(GRACE_S + EXIT_MARGIN_S) == 0
    assert e2e.receiver.delivered_ids() == {event_id: 1}
    assert "shutdown_grace_exceeded" not in [line.get("event") for line in bridge.log_events()]
    async with e2e.store.open() as store:
        assert await store.backlog("oa") == 0  # acked before the exit, not only sent


async def _ready(e2e: Harness) -> tuple[int, list[str]]:
    async with asyncio.timeout(5), e2e.http.get(f"{e2e.public_url}/readyz") as resp:
        return resp.status, orjson.loads(await resp.read())["problems"]


async def test_health_and_readiness(e2e: Harness) -> None:
    """/healthz is 200; /readyz is 200, then 503 naming the sink after a 410, then 200 again."""
    await e2e.start_bridge(e2e.write_config(sinks=[e2e.webhook_sink()]))
    assert await e2e.bridge.get_status(e2e.http, "/healthz") == 200
    assert await _ready(e2e) == (200, [])
    e2e.receiver.answer(410)
    gone = e2e.mail("bob@acme.com", "to a receiver that is gone")
    await e2e.until(lambda: len(e2e.receiver.attempts(gone)) == 1, "the refused delivery")
    await e2e.until(lambda: _status_is(e2e, 503), "readyz 503")
    assert await _ready(e2e) == (503, ["sink oa failing permanently: HTTP 410"])
    assert await e2e.bridge.get_status(e2e.http, "/healthz") == 200  # alive, just not ready
    e2e.receiver.answer(204)
    back = e2e.mail("bob@acme.com", "the receiver is back")
    await e2e.until(lambda: back in e2e.receiver.delivered_ids(), "the next delivery")
    await e2e.until(lambda: _status_is(e2e, 200), "readyz 200 again")
    assert await e2e.metric("exmail_bridge_sink_permanent_failures_total", sink="oa") == 1
    assert e2e.receiver.attempts(gone)[0].event["type"] == events.MAIL_RECEIVED


async def _status_is(e2e: Harness, status: int) -> bool:
    return (await _ready(e2e))[0] == status
