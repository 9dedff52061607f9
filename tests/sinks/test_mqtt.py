"""The MQTT sink against a real Mosquitto: topics, QoS, properties, status, will, reconnects."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import orjson
import pytest

from bridge.config import MqttSinkConfig
from bridge.errors import SinkError
from bridge.events import Event, directory_changed, unread_changed
from bridge.store.base import Store
from sinks.mqtt import MqttSink
from sinks.mqtt_marks import LocalMarks, Marks, StoreMarks
from tests.plugins.services import MosquittoServer, free_port
from tests.sinks.helpers import TcpProxy, mail_event, subscriber

SinkMaker = Callable[..., MqttSink]


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix unique to this test."""
    return "test/" + re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)


@pytest.fixture
async def make_sink(mosquitto_server: MosquittoServer, prefix: str) -> AsyncIterator[SinkMaker]:
    """Build (not start) MQTT sinks on this test's topics; close them all at the end."""
    sinks: list[MqttSink] = []

    def make(*, marks: Marks | None = None, **overrides: Any) -> MqttSink:
        fields: dict[str, Any] = {
            "name": "bus",
            "type": "mqtt",
            "url": mosquitto_server.url,
            "topic": prefix + "/{tenant}/{mailbox}/mail",
            "unread_topic": prefix + "/{tenant}/{mailbox}/unread",
            "directory_topic": prefix + "/{tenant}/_directory",
            "status_topic": prefix + "/status/{instance}",
            "timeout_s": 3.0,
            **overrides,
        }
        sink = MqttSink(
            config=MqttSinkConfig(**fields),
            instance_id="node-1",
            backoff_base_s=0.05,
            backoff_cap_s=0.2,
            marks=marks,
        )
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.aclose()


@asynccontextmanager
async def proxy_to(port: int, *, refuse_v5: bool = False) -> AsyncIterator[TcpProxy]:
    """A running TcpProxy to 127.0.0.1:`port`."""
    proxy = TcpProxy(port, refuse_v5=refuse_v5)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()


def _user_props(message: aiomqtt.Message) -> dict[str, str]:
    return dict(getattr(message.properties, "UserProperty", []))


async def test_mail_event_reaches_encoded_topic_with_v5_metadata(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """A received mail is published at QoS 1, mailbox encoded, with v5 properties."""
    sink = make_sink(expiry_s=600)
    event = mail_event(mailbox="john+news/#x@acme.com")
    async with subscriber(mosquitto_server.port, prefix + "/acme/+/mail") as sub:
        await sink.start()
        await sink.send(event)
        message = await sub.next()
    assert message.topic.value == prefix + "/acme/john%2Bnews%2F%23x@acme.com/mail"
    assert message.qos == 1
    assert message.payload == event.to_json()
    assert message.properties is not None
    assert getattr(message.properties, "ContentType", None) == "application/cloudevents+json"
    assert getattr(message.properties, "PayloadFormatIndicator", None) == 1
    assert 0 < getattr(message.properties, "MessageExpiryInterval", 0) <= 600
    assert _user_props(message) == {"event-id": event.id}


async def test_unread_count_is_retained_and_unread_event_publishes_only_the_count(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """An unread event sets the retained count topic and nothing else."""
    sink = make_sink()
    await sink.start()
    change = unread_changed(
        tenant="acme", mailbox="bob@acme.com", unread_count=3, previous=1, reason="gap"
    )
    async with subscriber(mosquitto_server.port, prefix + "/acme/#") as sub:
        await sink.send(change)
        await sink.send(mail_event(unread=None))
        first, second = await sub.next(), await sub.next()
    assert first.topic.value == prefix + "/acme/bob@acme.com/unread"
    assert second.topic.value == prefix + "/acme/bob@acme.com/mail"
    async with subscriber(mosquitto_server.port, prefix + "/acme/+/unread") as late:
        retained = await late.next()
    assert retained.retain
    assert orjson.loads(retained.payload) == {"unread_count": 3, "time": change.time}


async def test_directory_event_goes_to_directory_topic(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """A directory change is published on the directory topic, not a mailbox topic."""
    sink = make_sink()
    event = directory_changed(
        tenant="acme", version="7", added=["a@acme.com"], removed=[], modified=[]
    )
    async with subscriber(mosquitto_server.port, prefix + "/#") as sub:
        await sink.start()
        await sink.send(event)
        message = await sub.until(lambda m: not m.topic.value.startswith(prefix + "/status"))
    assert message.topic.value == prefix + "/acme/_directory"
    assert message.payload == event.to_json()


async def test_status_is_online_then_offline_after_clean_close(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """The status topic reads online after connect and offline after aclose, both retained."""
    sink = make_sink()
    async with subscriber(mosquitto_server.port, prefix + "/status/node-1") as sub:
        await sink.start()
        assert (await sub.next()).payload == b"online"
        await sink.aclose()
        assert (await sub.next()).payload == b"offline"
    async with subscriber(mosquitto_server.port, prefix + "/status/node-1") as late:
        retained = await late.next()
    assert (retained.payload, retained.retain) == (b"offline", True)


async def test_will_fires_when_connection_dies_and_sink_reconnects(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """An abrupt drop makes the broker publish offline; the sink comes back online alone."""
    async with (
        proxy_to(mosquitto_server.port) as proxy,
        subscriber(mosquitto_server.port, prefix + "/#") as sub,
    ):
        sink = make_sink(url=f"mqtt://127.0.0.1:{proxy.port}")
        await sink.start()
        assert (await sub.next()).payload == b"online"
        proxy.drop()
        assert (await sub.next()).payload == b"offline"
        assert (await sub.next()).payload == b"online"
        await sink.send(mail_event(unread=None))
        assert (await sub.next()).topic.value.endswith("/mail")


async def test_broker_down_send_raises_retryable_within_timeout(make_sink: SinkMaker) -> None:
    """With no broker, send raises a retryable SinkError instead of hanging."""
    sink = make_sink(url=f"mqtt://127.0.0.1:{free_port()}", timeout_s=0.3)
    await sink.start()
    with pytest.raises(SinkError) as caught:
        await sink.send(mail_event())
    assert caught.value.retryable
    assert caught.value.sink == "bus"


async def test_unacknowledged_publish_is_retryable(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker
) -> None:
    """A publish whose PUBACK never arrives fails retryable after timeout_s."""
    async with proxy_to(mosquitto_server.port) as proxy:
        sink = make_sink(url=f"mqtt://127.0.0.1:{proxy.port}", timeout_s=0.5)
        await sink.start()
        await sink.send(mail_event(mail_id="before"))
        proxy.frozen = True
        with pytest.raises(SinkError) as caught:
            await sink.send(mail_event(mail_id="after"))
    assert caught.value.retryable


async def test_sink_reconnects_after_broker_restart(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """After the broker restarts, the sink reconnects by itself and sends succeed again."""
    sink = make_sink(timeout_s=5.0)
    await sink.start()
    await sink.send(mail_event(mail_id="before"))
    await asyncio.to_thread(mosquitto_server.restart)
    event = mail_event(mail_id="after")
    async with subscriber(mosquitto_server.port, prefix + "/acme/+/mail") as sub:
        await sink.send(event)
        message = await sub.next()
    assert message.payload == event.to_json()


async def test_mqtt_311_publishes_cloudevent_without_properties(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """protocol = 3.1.1 works; the event id travels inside the CloudEvent payload."""
    sink = make_sink(protocol="3.1.1")
    event = mail_event()
    async with subscriber(mosquitto_server.port, prefix + "/acme/+/mail") as sub:
        await sink.start()
        await sink.send(event)
        message = await sub.next()
    assert orjson.loads(message.payload)["id"] == event.id
    assert _user_props(message) == {}
    assert getattr(message.properties, "ContentType", None) is None


async def test_auto_falls_back_to_311_when_broker_refuses_v5(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str
) -> None:
    """protocol = auto connects with 3.1.1 after a broker refuses MQTT 5."""
    async with (
        proxy_to(mosquitto_server.port, refuse_v5=True) as proxy,
        subscriber(mosquitto_server.port, prefix + "/acme/+/mail") as sub,
    ):
        sink = make_sink(url=f"mqtt://127.0.0.1:{proxy.port}")
        await sink.start()
        await sink.send(mail_event())
        message = await sub.next()
    assert proxy.v5_refusals == 1
    assert getattr(message.properties, "ContentType", None) is None


# Issue 10: a retained unread count never goes backwards, through a restart too.

NEWER = "2026-11-21T05:00:02.000Z"
OLDER = "2026-11-21T05:00:01.000Z"


def _count(n: int, at: str) -> Event:
    return unread_changed(
        tenant="acme", mailbox="bob@acme.com", unread_count=n, previous=None, reason="x", time=at
    )


async def _retained(server: MosquittoServer, prefix: str) -> dict[str, object]:
    async with subscriber(server.port, prefix + "/acme/+/unread") as late:
        message = await late.next()
    return dict(orjson.loads(message.payload))


async def test_older_count_retried_after_newer_does_not_win(
    mosquitto_server: MosquittoServer, make_sink: SinkMaker, prefix: str, store: Store
) -> None:
    """A retry of an older count, even by a restarted sink, leaves the newer count retained."""
    first = make_sink(marks=StoreMarks(store=store, scope="bus"))
    await first.start()
    await first.send(_count(7, NEWER))
    await first.aclose()
    restarted = make_sink(marks=StoreMarks(store=store, scope="bus"))
    await restarted.start()
    await restarted.send(_count(5, OLDER))
    assert await _retained(mosquitto_server, prefix) == {"unread_count": 7, "time": NEWER}


async def test_local_marks_are_bounded() -> None:
    """The in-process marks keep at most `max_topics`, forgetting the oldest."""
    marks = LocalMarks(max_topics=3)
    for i in range(10):
        assert await marks.advance(f"t{i}", NEWER)
    assert len(marks) == 3
    assert not await marks.advance("t9", OLDER)
