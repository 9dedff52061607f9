"""The MQTT sink: QoS 1 publishes through one long-lived broker connection.

What goes where (decided here; topics in `sinks.mqtt_topics`):

- `exmail.mail.received` → the CloudEvent on `topic` (default `exmail/{tenant}/{mailbox}/mail`).
- `exmail.directory.changed` → the CloudEvent on `directory_topic`
  (default `exmail/{tenant}/_directory`), a key of its own so it never collides with a mailbox.
- every event with an integer `data.unread_count` → `{"unread_count": n, "time": ...}`,
  retained, on `unread_topic`. `exmail.mail.unread` events publish only that (a state).
  A count older than one already published on its topic is skipped (`sinks.mqtt_marks`),
  so a retried old event never sets the retained count back.
- `online`, retained, on `status_topic` after each connect; `offline`, retained, as the
  Will (the broker sends it when the connection dies) and published before a clean close.

Mailboxes are percent-encoded before they become a topic level (see `sinks.mqtt_topics`).
Events are never retained. With MQTT 5 each publish carries a content type, payload format
indicator 1, message expiry (`expiry_s`, 0 = none) and the user property `event-id`; with
3.1.1 the same metadata is inside the CloudEvent payload. `protocol = "auto"` tries 5 and
falls back to 3.1.1 for the sink's lifetime when the broker refuses the protocol version.

aiomqtt does not reconnect, so a task `mqtt[<name>]` holds the connection in a loop with
capped, jittered backoff. `send()` waits up to `timeout_s` for a connection and for the
PUBACKs; either timing out is a retryable SinkError. A publish in flight when the
connection drops is not failed early by aiomqtt: it times out after `timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config import MqttSinkConfig
from bridge.errors import SinkError
from bridge.events import Event
from bridge.logs import get_logger
from bridge.supervise import crash_fields
from sinks.mqtt_marks import LocalMarks, Marks
from sinks.mqtt_topics import Publication, publications, render, v5_properties

__all__ = ["MqttSink"]

log = get_logger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
# CONNACK codes that mean "this protocol version is not spoken here": 3.1.1's 1, v5's 0x84.
_BAD_PROTOCOL = frozenset({1, 0x84})
_TOPIC_LOCKS = 64


class MqttSink:
    """Publishes events to an MQTT broker; see the module docstring for the topic layout."""

    def __init__(
        self,
        *,
        config: MqttSinkConfig,
        instance_id: str,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        marks: Marks | None = None,
    ) -> None:
        self.name = config.name
        self._config = config
        self.status_topic = render(config.status_topic, instance=instance_id)
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._v5 = config.protocol != "3.1.1"
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()
        self._connected_once = False  # set by a session that connected; resets the backoff
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._marks = marks or LocalMarks()
        # Mark-then-publish of one topic must not interleave with another send's.
        self._topic_locks = [asyncio.Lock() for _ in range(_TOPIC_LOCKS)]

    @property
    def connected(self) -> bool:
        """True while a broker connection is up and `online` was published."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Start the connection task; it connects, and reconnects, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt[{self.name}]")

    async def send(self, event: Event) -> None:
        """Publish what `event` maps to, each acknowledged (QoS 1), or raise SinkError."""
        try:
            async with asyncio.timeout(self._config.timeout_s):
                client = await self._connection()
                for item in publications(event, self._config):
                    if item.retain:
                        await self._publish_state(client, item, event.time)
                    else:
                        await self._publish(client, item)
        except TimeoutError as exc:
            reason = "publish not acknowledged" if self._ready.is_set() else "broker unreachable"
            raise SinkError(self.name, reason, retryable=True) from exc
        except aiomqtt.MqttError as exc:
            raise SinkError(self.name, f"publish failed: {exc}", retryable=True) from exc

    async def aclose(self) -> None:
        """Publish `offline`, disconnect cleanly and stop the connection task."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        if not self._ready.is_set():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(2 * self._config.timeout_s + 1):
                await asyncio.shield(task)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _connection(self) -> aiomqtt.Client:
        while True:
            await self._ready.wait()
            if self._client is not None:
                return self._client

    async def _publish_state(self, client: aiomqtt.Client, item: Publication, at: str) -> None:
        """Publish a retained state unless a newer one of its topic was published."""
        async with self._topic_locks[hash(item.topic) % _TOPIC_LOCKS]:
            if await self._marks.advance(item.topic, at):
                await self._publish(client, item)

    async def _publish(self, client: aiomqtt.Client, item: Publication) -> None:
        props = None
        if self._v5:
            props = v5_properties(
                content_type=item.content_type,
                event_id=item.event_id,
                expiry_s=self._config.expiry_s,
            )
        await client.publish(
            item.topic,
            item.payload,
            qos=1,
            retain=item.retain,
            properties=props,
            timeout=self._config.timeout_s,
        )

    async def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                await self._session()
                attempt = 0
            except aiomqtt.MqttError as exc:
                if self._fall_back(exc):
                    continue
                log.warning("mqtt_disconnected", sink=self.name, error=str(exc))
            except Exception as exc:  # keep the sink alive whatever a bug or library throws
                log.error("mqtt_session_crashed", sink=self.name, **crash_fields(exc))
            # A session that got connected starts the ladder again: each blip is a first one.
            attempt = 1 if self._connected_once else attempt + 1
            self._connected_once = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._delay_s(attempt)):
                    await self._stop.wait()

    async def _session(self) -> None:
        client = self._new_client()
        async with client:
            await client.publish(
                self.status_topic, ONLINE, qos=1, retain=True, timeout=self._config.timeout_s
            )
            self._client = client
            self._ready.set()
            self._connected_once = True
            log.info("mqtt_connected", sink=self.name, v5=self._v5)
            try:
                await self._hold(client)
            finally:
                self._ready.clear()
                self._client = None
            await client.publish(
                self.status_topic, OFFLINE, qos=1, retain=True, timeout=self._config.timeout_s
            )

    async def _hold(self, client: aiomqtt.Client) -> None:
        """Return when asked to stop; raise MqttError when the connection is lost."""
        # The sink subscribes to nothing: iterating the message queue ends only when
        # aiomqtt notices a disconnect, which it reports by raising MqttError.
        lost = asyncio.create_task(_drain(client), name=f"mqtt[{self.name}].watch")
        stop = asyncio.create_task(self._stop.wait(), name=f"mqtt[{self.name}].stop")
        try:
            await asyncio.wait({lost, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not lost.done():
                lost.cancel()
        if lost.done() and not lost.cancelled():
            lost.result()

    def _new_client(self) -> aiomqtt.Client:
        cfg = self._config
        parts = urlsplit(cfg.url)
        tls = parts.scheme == "mqtts"
        return aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if self._v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.status_topic, OFFLINE, qos=1, retain=True),
            timeout=cfg.timeout_s,
            keepalive=cfg.keepalive_s,
            tls_context=ssl.create_default_context() if tls else None,
        )

    def _fall_back(self, exc: aiomqtt.MqttError) -> bool:
        """Switch `auto` to 3.1.1 when the broker refused MQTT 5; True if it did."""
        if self._config.protocol != "auto" or not self._v5:
            return False
        if not isinstance(exc, aiomqtt.MqttCodeError) or _code(exc.rc) not in _BAD_PROTOCOL:
            return False
        log.warning("mqtt_protocol_fallback", sink=self.name, protocol="3.1.1")
        self._v5 = False
        return True

    def _delay_s(self, attempt: int) -> float:
        ceiling = min(self._backoff_cap_s, self._backoff_base_s * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)


async def _drain(client: aiomqtt.Client) -> None:
    async for _ in client.messages:
        pass


def _code(rc: int | ReasonCode | None) -> int | None:
    return rc.value if isinstance(rc, ReasonCode) else rc
