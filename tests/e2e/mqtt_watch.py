"""An MQTT 5 subscriber that keeps its session through broker restarts.

It connects with `clean_start = False` and a session expiry, so the broker keeps its
subscription and queues QoS 1 messages while it is away, and it reconnects by itself when
the broker goes down and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import unquote

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["MqttHit", "MqttWatch"]

SESSION_EXPIRY_S = 300


@dataclass(frozen=True, slots=True)
class MqttHit:
    """One message: topic, the `event-id` user property and the CloudEvent payload."""

    topic: str
    event_id: str
    content_type: str
    event: dict[str, Any]

    @property
    def mailbox(self) -> str:
        """The mailbox topic level, decoded."""
        return unquote(self.topic.split("/")[2])


def _connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    return props


def _hit(message: aiomqtt.Message) -> MqttHit:
    props = message.properties
    user = dict(getattr(props, "UserProperty", []) or [])
    return MqttHit(
        topic=str(message.topic),
        event_id=str(user.get("event-id", "")),
        content_type=str(getattr(props, "ContentType", "")),
        event=orjson.loads(bytes(message.payload)),
    )


class MqttWatch:
    """Subscribes to `topic` on 127.0.0.1:`port` until `stop()`; `hits` grows as it hears."""

    def __init__(self, *, port: int, topic: str = "exmail/+/+/mail") -> None:
        self._port = port
        self._topic = topic
        self._identifier = f"e2e-watch-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.hits: list[MqttHit] = []
        self.connects = 0

    async def start(self) -> None:
        """Connect and subscribe (returns once subscribed)."""
        self._task = asyncio.create_task(self._run(), name="e2e-mqtt-watch")
        async with asyncio.timeout(10):
            await self.subscribed.wait()

    async def stop(self) -> None:
        """Disconnect and make the broker forget the session."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A clean start without a session expiry replaces the kept session by one that
        # ends with this connection.
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1",
                self._port,
                identifier=self._identifier,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=True,
                timeout=2,
            ):
                pass

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def ids(self) -> Counter[str]:
        """How many times each event id arrived."""
        return Counter(h.event_id for h in self.hits)

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def _session(self) -> None:
        client = aiomqtt.Client(
            "127.0.0.1",
            self._port,
            identifier=self._identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=_connect_properties(),
            timeout=2,
        )
        async with client:
            self.connects += 1
            await client.subscribe(self._topic, qos=1, timeout=2)
            self.subscribed.set()
            async for message in client.messages:
                self.hits.append(_hit(message))
