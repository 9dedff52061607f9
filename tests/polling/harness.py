"""Pollers over the real simulator and a real store: build, run for a while, read events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bridge.config import Config, parse_config
from bridge.events import Event
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.exmail_api.client import ApiClient
from bridge.ratelimit import RateLimiter
from bridge.routing import Router
from bridge.sources import SourceDeps, build_source
from bridge.sources.poller import Poller
from bridge.states import StateBoard
from bridge.store.base import Store
from tests.plugins.sim import ExmailSim

__all__ = [
    "CORP",
    "SINK",
    "Polling",
    "Sleeps",
    "config_for",
    "drain_events",
    "polling",
    "rounds_done",
    "sim_post",
    "until",
]

CORP = "wwglobex0000000001"
SINK = "s"


def config_for(sim: ExmailSim, *, exmail: dict[str, Any] | None = None, **tenant: Any) -> Config:
    """A config with one tenant `globex` (protocol api unless given) aimed at `sim`."""
    return parse_config(
        {
            "exmail": {
                "api_url": sim.url,
                "wecom_api_url": sim.url,
                "poll_interval_s": 0.2,
                "directory_interval_s": 3600,
                "timeout_s": 2,
                "backoff_base_s": 0.01,
                "backoff_cap_s": 0.05,
                **(exmail or {}),
            },
            "tenants": [
                {"name": "globex", "protocol": "api", "corp_id": CORP, "corp_secret": "s", **tenant}
            ],
        },
        env={},
    )


@dataclass
class Sleeps:
    """A sleep that records what it was asked and waits a bounded real time."""

    asked: list[float] = field(default_factory=list)
    cap_s: float = 0.05

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(min(seconds, self.cap_s))


@dataclass
class Polling:
    """A running poller and what it needs."""

    poller: Poller
    store: Store
    board: StateBoard
    sleeps: Sleeps


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until `check()` is true (the test fails after `timeout_s`)."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.01)


async def rounds_done(run: Polling, n: int) -> bool:
    """Whether the poller finished `n` rounds."""
    return run.poller.rounds >= n


@asynccontextmanager
async def polling(
    config: Config, store: Store, *, sleeps: Sleeps | None = None
) -> AsyncIterator[Polling]:
    """Run the config's first tenant's source (a poller) until the block ends."""
    sleeps = sleeps or Sleeps()
    board = StateBoard()
    settings = config.exmail
    async with make_session(settings, max_connections=8) as session:
        rate = RateLimiter(rate_per_s=1000)
        deps = SourceDeps(
            config=config,
            store=store,
            router=Router(routes=[], sinks=[SINK]),
            board=board,
            rate=rate,
            legacy=ExmailClient(session=session, settings=settings, rate=rate),
            api=ApiClient(session=session, settings=settings, base_url=settings.api_url, rate=rate),
            wecom_mail=ApiClient(
                session=session,
                settings=settings,
                base_url=settings.wecom_api_url,
                provider="wecom",
                rate=rate,
            ),
            sleep=sleeps,
        )
        poller = build_source(config.tenants[0], deps)
        assert isinstance(poller, Poller)
        task = asyncio.create_task(poller.run(), name="poller[test]")
        try:
            yield Polling(poller=poller, store=store, board=board, sleeps=sleeps)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await poller.drain()


async def drain_events(store: Store, kind: str | None = None) -> list[Event]:
    """Every event waiting for the test sink (of type `kind` when given), claimed and acked."""
    found = await store.claim(SINK, limit=1000, lease_s=60)
    for delivery in found:
        await store.ack(delivery)
    return [d.event for d in found if kind is None or d.event.type == kind]


async def sim_post(sim: ExmailSim, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the simulator's control API."""
    async with aiohttp.ClientSession() as http, http.post(f"{sim.url}/_sim/{path}", json=body) as r:
        doc: dict[str, Any] = await r.json()
        assert r.status == 200, doc
        return doc
