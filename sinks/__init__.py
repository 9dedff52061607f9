"""Sinks: where events go. A plain registry keyed by the `type` of a `[[sinks]]` entry.

    sink = build_sink(config.sink("oa"), config=config, link_for=signer.links_for("oa", ttl_s=ttl))
    await sink.start(); await sink.send(event); await sink.aclose()

Each factory imports its module when first called, so importing `sinks` stays cheap and a
sink type whose module is missing fails only when configured. A factory takes what it
needs from the `SinkContext` (the bridge's instance id, public URL, the click-through link
maker) and ignores the rest; `extra` keyword arguments go to the sink class being built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge.config import BridgeSection, Config, MqttSinkConfig, WebhookSinkConfig, WecomSinkConfig
from bridge.errors import ConfigError
from bridge.events import Event
from sinks.base import BatchSink, Sink, SinkError

__all__ = [
    "SINK_TYPES",
    "AnySinkConfig",
    "BatchSink",
    "Sink",
    "SinkContext",
    "SinkError",
    "SinkFactory",
    "build_sink",
]

AnySinkConfig = WebhookSinkConfig | MqttSinkConfig | WecomSinkConfig
_C = TypeVar("_C", WebhookSinkConfig, MqttSinkConfig, WecomSinkConfig)


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a sink may need from the rest of the bridge."""

    instance_id: str
    public_url: str
    link_for: Callable[[Event], str | None] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


SinkFactory = Callable[[Any, SinkContext], Sink]


def _webhook(config: Any, ctx: SinkContext) -> Sink:
    from sinks.webhook import WebhookSink

    return WebhookSink(config=_expect(config, WebhookSinkConfig), **ctx.extra)


def _mqtt(config: Any, ctx: SinkContext) -> Sink:
    from sinks.mqtt import MqttSink

    return MqttSink(
        config=_expect(config, MqttSinkConfig), instance_id=ctx.instance_id, **ctx.extra
    )


def _wecom(config: Any, ctx: SinkContext) -> Sink:
    if ctx.link_for is None:
        raise TypeError("a wecom sink needs link_for (the click-through link maker)")
    # Looked up by name: the registry must not break while sinks/wecom.py changes shape.
    wecom_sink = importlib.import_module("sinks.wecom").WecomSink
    sink: Sink = wecom_sink(
        config=_expect(config, WecomSinkConfig), link_for=ctx.link_for, **ctx.extra
    )
    return sink


SINK_TYPES: dict[str, SinkFactory] = {
    "webhook": _webhook,
    "mqtt": _mqtt,
    "wecom": _wecom,
}


def build_sink(
    sink_config: AnySinkConfig,
    /,
    *,
    config: Config | None = None,
    instance_id: str | None = None,
    public_url: str | None = None,
    link_for: Callable[[Event], str | None] | None = None,
    **extra: Any,
) -> Sink:
    """The sink for one `[[sinks]]` entry; ConfigError when its `type` is unknown.

    `instance_id` and `public_url` default to `config.bridge`'s (or the defaults of
    `[bridge]` when no `config` is given).
    """
    factory = SINK_TYPES.get(sink_config.type)
    if factory is None:
        key = f"sinks.{sink_config.name}.type"
        raise ConfigError(key, f"unknown sink type {sink_config.type!r}")
    bridge = config.bridge if config is not None else BridgeSection()
    ctx = SinkContext(
        instance_id=instance_id or bridge.instance_id,
        public_url=public_url or bridge.public_url,
        link_for=link_for,
        extra=extra,
    )
    return factory(sink_config, ctx)


def _expect(config: Any, kind: type[_C]) -> _C:
    if not isinstance(config, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(config).__name__}")
    return config
