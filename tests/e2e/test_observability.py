"""/metrics of a real run: every metric is there, counts match what happened, promtool agrees."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge import __version__, events
from bridge.metrics import REGISTRY
from tests.e2e.mqtt_watch import MqttWatch
from tests.e2e.process import Scrape
from tests.plugins.e2e import CLIENT_ID, TENANT, Harness
from tests.plugins.services import MosquittoServer

P = "exmail_bridge_"
MAILBOXES = ["bob@acme.com", "john+news@acme.com", "legal@acme.com"]


def _families(text: str) -> dict[str, int]:
    """Metric family name -> how many samples it has."""
    return {f.name: len(f.samples) for f in text_string_to_metric_families(text)}


async def _promtool(text: str) -> tuple[int, str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    proc = await asyncio.create_subprocess_exec(
        exe,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        out, _ = await proc.communicate(text.encode())
    return proc.returncode or 0, out.decode()


async def _run_scenario(e2e: Harness, mosquitto_server: MosquittoServer) -> list[str]:
    """Six mails (two to a sink answering 410), a re-push, an odd push and a listen 5xx."""
    e2e.receiver.answer(410, "/hooks/gone")
    sinks = [e2e.webhook_sink(), e2e.mqtt_sink(mosquitto_server), e2e.webhook_sink("gone")]
    routes = [
        {"sinks": ["oa", "bus"]},
        {"mailboxes": ["legal@acme.com"], "events": [events.MAIL_RECEIVED], "sinks": ["gone"]},
    ]
    await e2e.start_bridge(e2e.write_config(sinks=sinks, routes=routes))
    sent = [e2e.mail(MAILBOXES[i % 3], f"指标 metrics {i}") for i in range(6)]
    await e2e.until(e2e.metric_reaches(f"{P}events_total", 6), "the commits")
    state = e2e.sim.state
    state.repush(CLIENT_ID, next(iter(state.tenant(CLIENT_ID).mails)))
    state.push_raw(CLIENT_ID, {"Surprise": 1})
    await e2e.until(e2e.metric_reaches(f"{P}push_decode_errors_total", 1), "the odd push")
    state.set_faults(http_5xx=1.0, endpoints=frozenset({"listen"}), times=1)
    await e2e.until(e2e.metric_reaches(f"{P}listen_reconnects_total", 1), "the reconnect")
    return sent


async def _settled(e2e: Harness) -> bool:
    scrape = await e2e.scrape()
    return (
        scrape.value(f"{P}deliveries_total", outcome="delivered") == 12
        and scrape.value(f"{P}dead_letters", sink="gone") == 2
        and scrape.value(f"{P}outbox_backlog") == 0
        and scrape.value(f"{P}tenants", state="listening") == 1
    )


def _assert_counts(scrape: Scrape) -> None:
    v = scrape.value
    assert v(f"{P}events_total", type=events.MAIL_RECEIVED) == 6
    assert v(f"{P}events_total") == 6
    assert v(f"{P}events_deduplicated_total") == 1
    for sink in ("oa", "bus"):
        assert v(f"{P}deliveries_total", sink=sink, outcome="delivered") == 6
        assert v(f"{P}delivery_duration_seconds_count", sink=sink) == 6
        assert v(f"{P}event_latency_seconds_count", sink=sink) == 6
        assert v(f"{P}dead_letters", sink=sink) == 0
    assert v(f"{P}deliveries_total", sink="gone", outcome="dead") == 2
    assert v(f"{P}deliveries_total", outcome="retry") == 0
    assert v(f"{P}sink_permanent_failures_total", sink="gone") == 2
    assert v(f"{P}upstream_errors_total", endpoint="listen", code="503") == 1
    assert v(f"{P}listen_reconnects_total", reason="503") == 1
    assert v(f"{P}push_decode_errors_total", kind="shape") == 1
    assert v(f"{P}listen_polls_total", outcome="push") >= 1
    assert v(f"{P}token_refreshes_total", provider="exmail", outcome="ok") >= 1
    assert v(f"{P}token_refreshes_total", outcome="error") == 0
    assert v(f"{P}listen_connections") == 1
    assert v(f"{P}tenants", state="listening") == 1
    assert v(f"{P}tenants") == 1
    assert v(f"{P}build_info", version=__version__) == 1


async def test_metrics_match_what_happened(
    e2e: Harness, mosquitto_server: MosquittoServer, mqtt_watch: MqttWatch
) -> None:
    """Every metric in bridge/metrics.py is scraped, counts match the run, promtool agrees."""
    sent = await _run_scenario(e2e, mosquitto_server)
    await e2e.until(lambda: set(mqtt_watch.ids()) == set(sent), "the MQTT deliveries")
    await e2e.until(lambda: _settled(e2e), "the deliveries and store gauges", timeout_s=40)
    scrape = await e2e.scrape()
    _assert_counts(scrape)
    scraped = _families(scrape.text)
    # Every family is exposed; which have samples depends on what happened (a legacy run
    # polls no unread counts, no dispatcher restarted): _assert_counts pins those.
    for name in _families(generate_latest(REGISTRY).decode()):
        assert name in scraped, f"{name} is missing"
    names = {TENANT, CLIENT_ID, *MAILBOXES}
    for sample in scrape.samples:
        for value in sample.labels.values():
            assert value not in names, sample
            assert "@" not in value, sample
    code, out = await _promtool(scrape.text)
    assert code == 0, out
