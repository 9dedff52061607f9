"""The sink registry: `type` → sink class, with the bridge's context passed where needed."""

from __future__ import annotations

import base64
from unittest.mock import patch

import pytest

from bridge.config import Config, parse_config
from bridge.errors import ConfigError
from bridge.events import Event
from sinks import SINK_TYPES, Sink, build_sink
from sinks.mqtt import MqttSink
from sinks.webhook import WebhookSink
from sinks.wecom import WecomSink

SECRET = "whsec_" + base64.b64encode(b"registry test key").decode()


def _config() -> Config:
    return parse_config(
        {
            "bridge": {"instance_id": "node-7", "public_url": "http://bridge.test:9464"},
            "sinks": [
                {"name": "oa", "type": "webhook", "url": "http://127.0.0.1:1/h", "secret": SECRET},
                {"name": "bus", "type": "mqtt", "status_topic": "s/{instance}"},
                {
                    "name": "chat",
                    "type": "wecom",
                    "corp_id": "ww1",
                    "corp_secret": "cs",
                    "agent_id": 1000002,
                },
            ],
        },
        env={},
    )


def _link(event: Event) -> str:
    return f"http://bridge.test:9464/open/{event.id}"


def test_every_configured_type_builds_its_sink() -> None:
    """build_sink(sink_config, config=..., link_for=...) returns the class for each type."""
    config = _config()
    built = [build_sink(s, config=config, link_for=_link) for s in config.sinks]
    assert [type(s) for s in built] == [WebhookSink, MqttSink, WecomSink]
    assert [s.name for s in built] == ["oa", "bus", "chat"]
    assert all(isinstance(s, Sink) for s in built)


async def test_mqtt_sink_gets_the_bridge_instance_id() -> None:
    """The MQTT status topic is rendered with `[bridge] instance_id`."""
    config = _config()
    sink = build_sink(config.sink("bus"), config=config)
    assert isinstance(sink, MqttSink)
    assert sink.status_topic == "s/node-7"


def test_wecom_without_link_maker_is_a_programming_error() -> None:
    """A wecom sink cannot be built without the click-through link maker."""
    config = _config()
    with pytest.raises(TypeError):
        build_sink(config.sink("chat"), config=config)


def test_unknown_type_is_a_config_error() -> None:
    """A type missing from the registry is reported against the sink's `type` key."""
    config = _config()
    with patch.dict(SINK_TYPES, clear=True), pytest.raises(ConfigError) as caught:
        build_sink(config.sink("oa"), config=config)
    assert caught.value.key == "sinks.oa.type"


def test_bad_base64_secret_is_a_config_error() -> None:
    """A whsec_ secret whose key is not base64 is rejected when the sink is built."""
    data = {"sinks": [{"name": "oa", "type": "webhook", "url": "http://x/", "secret": "whsec_*"}]}
    config = parse_config(data, env={})
    with pytest.raises(ConfigError) as caught:
        build_sink(config.sink("oa"), config=config)
    assert caught.value.key == "sinks.oa.secret[0]"
