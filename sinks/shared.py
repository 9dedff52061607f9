"""What a sink shares with other replicas through the store, handed over when it is built."""

from __future__ import annotations

from typing import Any

from bridge.config import MqttSinkConfig, SinkConfig, WecomSinkConfig
from bridge.store.base import Store
from bridge.tokenstash import TokenStash
from sinks.mqtt_marks import StoreMarks
from sinks.wecom_budget import StoreBudget

__all__ = ["sink_extras"]


def sink_extras(config: SinkConfig, store: Store) -> dict[str, Any]:
    """Keyword arguments for `build_sink`: a WeCom sink counts its budget in the store
    (per app and member, so every replica and every sink of that app share it) and keeps
    its app's access token there (sealed, so a restart fetches none); an MQTT
    sink keeps its retained counts' marks there."""
    if isinstance(config, MqttSinkConfig):
        return {"marks": StoreMarks(store=store, scope=config.name)}
    if isinstance(config, WecomSinkConfig):
        scope = f"{config.corp_id}:{config.agent_id}"
        budget = StoreBudget(store=store, scope=scope, per_min=config.per_member_per_min)
        return {"budget": budget, "tokens": TokenStash(store=store)}
    return {}
