"""A WeCom sink with the preference gate, its dispatcher and releaser, on a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.delivery.preferences_gate import PreferenceGate
from bridge.delivery.preferences_release import HoldReleaser
from bridge.dispatch import Dispatcher
from bridge.events import Event
from bridge.simulator.wecom_state import Sent
from bridge.store.base import Routed, Store
from sinks.wecom import WecomSink
from tests.plugins.wecom import FakeClock, WecomSim
from tests.wecom.helpers import fake_link

__all__ = ["Gated", "gated_sink", "shanghai"]


def shanghai(text: str) -> float:
    """Unix seconds of a wall time in Asia/Shanghai, e.g. "2026-11-30 23:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@dataclass
class Gated:
    """The running pieces."""

    sink: WecomSink
    store: Store
    releaser: HoldReleaser
    wall: FakeClock
    sim: WecomSim

    async def commit(self, *events: Event) -> None:
        """Put mails in the sink's outbox as the listener would."""
        await self.store.commit("acme", [Routed(event=e, sinks=("chat",)) for e in events])

    async def cards(self, userid: str, count: int) -> list[Sent]:
        """Wait (bounded) until `userid` received `count` cards; return them."""
        async with asyncio.timeout(10):
            while len(self.sim.state.messages(userid)) < count:
                await asyncio.sleep(0.02)
        return self.sim.state.messages(userid)

    async def settled(self) -> None:
        """Wait (bounded) until the outbox is empty."""
        async with asyncio.timeout(10):
            while await self.store.backlog("chat"):
                await asyncio.sleep(0.02)


@asynccontextmanager
async def gated_sink(sim: WecomSim, store: Store, wall: FakeClock) -> AsyncIterator[Gated]:
    """A gated `chat` sink (bob owns bob@acme.com) with its dispatcher running."""
    sim.state.add_member("bob", "bob@acme.com")
    config = sim.sink_config(users={"bob@acme.com": "bob"})
    gate = PreferenceGate(store=store, sink="chat", corp_id=config.corp_id, clock=wall)
    sink = WecomSink(
        config=config,
        link_for=fake_link,
        clock=sim.clock,
        gate=gate,
        settings_url="http://bridge.test/me",
    )
    releaser = HoldReleaser(store=store, sink="chat", every_s=3600, clock=wall)
    await sink.start()
    dispatcher = Dispatcher(sink=sink, store=store, retry_s=(0, 1), concurrency=16, timeout_s=5)
    task = asyncio.create_task(dispatcher.run(), name="dispatch[chat]")
    try:
        yield Gated(sink=sink, store=store, releaser=releaser, wall=wall, sim=sim)
    finally:
        dispatcher.stop()
        await task
        await sink.aclose()
