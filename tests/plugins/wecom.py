"""WeCom simulator fixtures: a real aiohttp server on a free port, and a sink config for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bridge.config import WecomSinkConfig
from bridge.simulator.wecom import make_wecom_app
from bridge.simulator.wecom_state import WecomState
from tests.plugins.services import free_port

__all__ = ["FakeClock", "WecomSim", "serve_app"]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now_s += seconds


@asynccontextmanager
async def serve_app(app: web.Application, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1:`port` (default: a free one); yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = port or free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class WecomSim:
    """A running WeCom simulator: its state (in-process control) and base URL."""

    state: WecomState
    url: str
    clock: FakeClock

    def sink_table(self, **overrides: Any) -> dict[str, Any]:
        """A `[[sinks]]` table of a `wecom` sink pointing at this simulator."""
        fields: dict[str, Any] = {
            "name": "chat",
            "type": "wecom",
            "corp_id": self.state.corp_id,
            "corp_secret": self.state.corp_secret,
            "agent_id": self.state.agent_id,
            "api_base": self.url,
            "oauth_url": f"{self.url}/connect/oauth2/authorize",
            "timeout_s": 5.0,
        }
        return {**fields, **overrides}

    def sink_config(self, **overrides: Any) -> WecomSinkConfig:
        """A `wecom` sink config pointing at this simulator."""
        return WecomSinkConfig.model_validate(self.sink_table(**overrides))


@pytest.fixture
async def wecom_sim() -> AsyncIterator[WecomSim]:
    """A WeCom simulator with a fake clock, served on a free port."""
    clock = FakeClock()
    state = WecomState(clock=clock)
    async with serve_app(make_wecom_app(state)) as url:
        yield WecomSim(state=state, url=url, clock=clock)
