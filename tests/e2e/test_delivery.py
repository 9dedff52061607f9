"""The real bridge process delivers what the simulator pushes: ids, retries, dead letters."""

from __future__ import annotations

import pytest

from bridge import events
from bridge.store.base import Store
from tests.e2e.mqtt_watch import MqttWatch
from tests.e2e.process import run_cli
from tests.plugins.e2e import BOTH_STORES, CLIENT_ID, PATIENT_RETRY_S, Harness
from tests.plugins.services import MosquittoServer

MAILBOXES = ["bob@acme.com", "alice@acme.com", "john+news@acme.com", "王芳@acme.com"]
SUBJECTS = [
    "季度报表已上传",
    "Lunch at 12:30?",
    "【告警】生产线 3 号机温度过高",
    "Offer letter: 王芳",
]
DELIVERED = "exmail_bridge_deliveries_total"


@BOTH_STORES
@pytest.mark.timeout(90)
async def test_every_mail_reaches_every_sink_once(
    e2e: Harness, mosquitto_server: MosquittoServer, mqtt_watch: MqttWatch
) -> None:
    """20 mails arrive once per sink, with the same id in webhook-id, CloudEvent and MQTT."""
    config = e2e.write_config(sinks=[e2e.webhook_sink(), e2e.mqtt_sink(mosquitto_server)])
    await e2e.start_bridge(config)
    sent = {
        e2e.mail(MAILBOXES[i % 4], f"{SUBJECTS[i % 4]} #{i}", summary=f"摘要 {i}")
        for i in range(20)
    }
    await e2e.until(lambda: set(e2e.receiver.delivered_ids()) == set(sent), "20 webhooks")
    await e2e.until(lambda: set(mqtt_watch.ids()) == set(sent), "20 MQTT messages")
    await e2e.until(e2e.metric_reaches(DELIVERED, 20, sink="bus", outcome="delivered"), "acks")
    await e2e.until(e2e.metric_reaches(DELIVERED, 20, sink="oa", outcome="delivered"), "acks")
    assert await e2e.metric(DELIVERED, outcome="retry") == 0
    assert list(e2e.receiver.delivered_ids().values()) == [1] * 20
    assert list(mqtt_watch.ids().values()) == [1] * 20
    for hit in e2e.receiver.delivered():
        assert hit.event["id"] == hit.webhook_id
        assert hit.content_type == "application/cloudevents+json"
        data = hit.event["data"]
        assert (data["mailbox"], data["subject"]) == e2e.mails[hit.webhook_id]
    for msg in mqtt_watch.hits:
        assert msg.event["id"] == msg.event_id
        assert msg.content_type == "application/cloudevents+json"
        assert msg.mailbox == msg.event["data"]["mailbox"] == e2e.mails[msg.event_id][0]
        assert not {"+", "#"} & set(msg.topic.split("/")[2])
        assert msg.event["type"] == events.MAIL_RECEIVED
    assert "exmail/acme/john%2Bnews@acme.com/mail" in {m.topic for m in mqtt_watch.hits}


@BOTH_STORES
async def test_server_errors_are_retried_with_the_same_id(e2e: Harness) -> None:
    """A receiver answering 500 for a while gets retries with one webhook-id, then the event."""
    e2e.receiver.answer(500)
    await e2e.start_bridge(e2e.write_config(sinks=[e2e.webhook_sink(retry_s=PATIENT_RETRY_S)]))
    sent = [e2e.mail("bob@acme.com", f"retry me {i}") for i in range(3)]

    def failed_twice() -> bool:
        return all(len(e2e.receiver.attempts(i)) >= 2 for i in sent)

    await e2e.until(failed_twice, "two refused attempts per mail")
    e2e.receiver.answer(204)
    await e2e.until(lambda: set(e2e.receiver.delivered_ids()) == set(sent), "the deliveries")
    await e2e.until(e2e.metric_reaches(DELIVERED, 3, sink="oa", outcome="delivered"), "acks")
    for event_id in sent:
        attempts = e2e.receiver.attempts(event_id)
        assert [h.status for h in attempts][-1] == 204
        assert {h.status for h in attempts[:-1]} == {500}
        assert {h.event["id"] for h in attempts} == {event_id}
    assert await e2e.metric(DELIVERED, sink="oa", outcome="retry") >= 6
    assert await e2e.metric(DELIVERED, sink="oa", outcome="dead") == 0


@BOTH_STORES
@pytest.mark.timeout(90)
async def test_rejected_events_are_dead_letters_until_replayed(e2e: Harness) -> None:
    """400 dead-letters an event; `dlq list` shows it, `dlq replay` delivers it."""
    e2e.receiver.answer(400)
    config = e2e.write_config(sinks=[e2e.webhook_sink()])
    await e2e.start_bridge(config)
    sent = [e2e.mail("bob@acme.com", "rejected 1"), e2e.mail("john+news@acme.com", "rejected 2")]
    await e2e.until(e2e.metric_reaches(DELIVERED, 2, sink="oa", outcome="dead"), "dead letters")
    assert [len(e2e.receiver.attempts(i)) for i in sent] == [1, 1]  # 4xx: never retried
    listed = await run_cli("dlq", "list", "-c", str(config), cwd=e2e.tmp)
    assert listed.code == 0, listed.err
    assert all(event_id in listed.out for event_id in sent)
    assert "2 dead letter(s)" in listed.out
    assert "HTTP 400" in listed.out
    e2e.receiver.answer(204)
    replayed = await run_cli("dlq", "replay", "-c", str(config), cwd=e2e.tmp)
    assert (replayed.code, replayed.out.strip()) == (0, "replayed 2 dead letter(s)")
    await e2e.until(lambda: set(e2e.receiver.delivered_ids()) == set(sent), "the replays")
    listed = await run_cli("dlq", "list", "-c", str(config), cwd=e2e.tmp)
    assert "0 dead letter(s)" in listed.out


async def test_routes_deliver_only_what_they_match(e2e: Harness) -> None:
    """Two webhook sinks get only the events their routes match (mailbox glob, event type)."""
    routes = [
        {"mailboxes": ["sales-*@acme.com"], "events": [events.MAIL_RECEIVED], "sinks": ["sales"]},
        {"mailboxes": ["*"], "events": [events.MAIL_UNREAD], "sinks": ["audit"]},
    ]
    sinks = [e2e.webhook_sink("sales"), e2e.webhook_sink("audit")]
    await e2e.start_bridge(e2e.write_config(sinks=sinks, routes=routes))
    sales = [e2e.mail("sales-east@acme.com", "RFQ"), e2e.mail("sales-west@acme.com", "询价")]
    other = e2e.mail("bob@acme.com", "not for sales")
    e2e.sim.state.set_unread(CLIENT_ID, "bob@acme.com", 0)
    e2e.sim.state.set_unread(CLIENT_ID, "sales-east@acme.com", 0)
    await e2e.until(lambda: len(e2e.receiver.delivered("/hooks/audit")) == 2, "the unread events")
    await e2e.until(lambda: len(e2e.receiver.delivered("/hooks/sales")) == 2, "the sales mails")
    async with e2e.store.open() as store:
        await e2e.until(lambda: _drained(store, "sales", "audit"), "empty outboxes")
    assert set(e2e.receiver.delivered_ids("/hooks/sales")) == set(sales)
    audit = e2e.receiver.delivered("/hooks/audit")
    assert {h.event["type"] for h in audit} == {events.MAIL_UNREAD}
    assert {h.event["data"]["mailbox"] for h in audit} == {"bob@acme.com", "sales-east@acme.com"}
    assert other not in {h.webhook_id for h in e2e.receiver.hits}
    assert len(e2e.receiver.hits) == 4


async def _drained(store: Store, *sinks: str) -> bool:
    return all([await store.backlog(sink) == 0 for sink in sinks])
