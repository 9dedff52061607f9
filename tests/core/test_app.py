"""`serve()` in process: the bridge's own long-lived tasks are supervised."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bridge.app import serve
from bridge.config import parse_config
from bridge.pool import Pool
from tests.core.test_listener import until
from tests.plugins.services import free_port
from tests.plugins.sim import ExmailSim


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False  # not listening yet


async def test_a_pool_that_dies_is_restarted(
    exmail_sim: ExmailSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in the pool's loop restarts it; the bridge still gets ready."""
    rebalance = Pool._rebalance
    calls = 0

    async def crash_once(self: Pool) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        await rebalance(self)

    monkeypatch.setattr(Pool, "_rebalance", crash_once)
    port = free_port()
    config = parse_config(
        {
            "bridge": {
                "store": f"sqlite:///{tmp_path}/bridge.db",
                "http_listen": f"127.0.0.1:{port}",
                "startup_window_s": 0.1,
            },
            "exmail": {"token_url": f"{exmail_sim.url}/cgi-bin/token", "api_base": exmail_sim.url},
            "tenants": [{"name": "acme", "client_id": "admin@acme.com", "client_secret": "k"}],
        },
        env={},
    )
    stop = asyncio.Event()
    bridge = asyncio.create_task(serve(config, stop))
    try:
        await until(lambda: _ready(f"http://127.0.0.1:{port}"), timeout_s=10)
    finally:
        stop.set()
        await bridge
    assert calls >= 2
