"""What the MQTT sink publishes for an event, and where: topics, payloads, v5 properties.

Topic levels are built from data we do not control (mailbox addresses), so each value is
percent-encoded before it replaces its `{placeholder}`: `%` itself, `+`, `#`, `/` and NUL
always, and `$` when it would start the level (a leading `$` names broker topics). So
`john+news/#x@acme.com` becomes `john%2Bnews%2F%23x@acme.com`; a consumer decodes a level
with `urllib.parse.unquote`. Everything else, including non-ASCII, is kept as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.config import MqttSinkConfig
from bridge.events import DIRECTORY_CHANGED, MAIL_RECEIVED, Event

__all__ = [
    "EVENT_CONTENT_TYPE",
    "Publication",
    "encode_level",
    "publications",
    "render",
    "v5_properties",
]

EVENT_CONTENT_TYPE = "application/cloudevents+json"
_ALWAYS = frozenset("%+#/\x00")


@dataclass(frozen=True, slots=True)
class Publication:
    """One PUBLISH: where, what, whether the broker retains it, and its metadata."""

    topic: str
    payload: bytes
    retain: bool
    content_type: str
    event_id: str


def encode_level(value: str) -> str:
    """`value` made safe to be (part of) one topic level; see the module docstring."""
    out = []
    for i, char in enumerate(value):
        if char in _ALWAYS or (i == 0 and char == "$"):
            out.append("".join(f"%{b:02X}" for b in char.encode()))
        else:
            out.append(char)
    return "".join(out)


def render(template: str, *, tenant: str = "", mailbox: str = "", instance: str = "") -> str:
    """Fill `{tenant}`, `{mailbox}` and `{instance}` in a topic template, each encoded."""
    return (
        template.replace("{tenant}", encode_level(tenant))
        .replace("{mailbox}", encode_level(mailbox))
        .replace("{instance}", encode_level(instance))
    )


def publications(event: Event, config: MqttSinkConfig) -> list[Publication]:
    """What to publish for `event`.

    - `exmail.mail.received` → the CloudEvent on `topic` (not retained);
    - `exmail.directory.changed` → the CloudEvent on `directory_topic` (not retained);
    - any event whose data has an integer `unread_count` (received mail, and
      `exmail.mail.unread`, which has no other publication) → the count, retained, on
      `unread_topic`: a state, so a new subscriber learns it at once.
    """
    out: list[Publication] = []
    where = {MAIL_RECEIVED: config.topic, DIRECTORY_CHANGED: config.directory_topic}
    if template := where.get(event.type):
        topic = render(template, tenant=event.tenant, mailbox=event.mailbox)
        out.append(Publication(topic, event.to_json(), False, EVENT_CONTENT_TYPE, event.id))
    count = event.data.get("unread_count")
    if isinstance(count, int) and not isinstance(count, bool):
        topic = render(config.unread_topic, tenant=event.tenant, mailbox=event.mailbox)
        payload = orjson.dumps({"unread_count": count, "time": event.time})
        out.append(Publication(topic, payload, True, "application/json", event.id))
    return out


def v5_properties(*, content_type: str, event_id: str = "", expiry_s: int = 0) -> Properties:
    """PUBLISH properties: content type, UTF-8 payload, expiry and the `event-id`."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    props.PayloadFormatIndicator = 1
    if expiry_s > 0:
        props.MessageExpiryInterval = expiry_s
    if event_id:
        props.UserProperty = [("event-id", event_id)]
    return props
