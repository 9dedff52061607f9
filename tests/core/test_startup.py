"""Start-up: tenants start as the rate budget allows, and /readyz waits for their listens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiohttp
import orjson

from bridge.app import serve
from bridge.config import Config, parse_config
from bridge.ratelimit import MIN_WAIT_S, RateLimiter, pump_wait_s
from bridge.startgate import StartGate
from tests.plugins.services import free_port
from tests.plugins.sim import ExmailSim

TENANTS = 6


def _config(sim: ExmailSim, tmp_path: Path, port: int, **bridge: Any) -> Config:
    return parse_config(
        {
            "bridge": {
                "store": f"sqlite:///{tmp_path}/bridge.db",
                "http_listen": f"127.0.0.1:{port}",
                "instance_id": "solo",
                **bridge,
            },
            "exmail": {
                "token_url": f"{sim.url}/cgi-bin/token",
                "api_base": sim.url,
                "listen_hold_s": sim.state.settings.hold_s,
                "backoff_base_s": 0.05,
            },
            "tenants": [
                {"name": f"t{i}", "client_id": f"admin@t{i}.com", "client_secret": "k"}
                for i in range(TENANTS)
            ],
        },
        env={},
    )


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[None]:
    """The whole bridge, in this process, until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop), name="bridge")
    try:
        yield
    finally:
        stop.set()
        await task


def _held(sim: ExmailSim) -> int:
    return sum(t.listens_connected for t in sim.state.tenants.values())


async def _readyz(http: aiohttp.ClientSession, port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status, orjson.loads(await resp.read())
    except aiohttp.ClientConnectionError:
        return None  # not serving yet


async def test_readyz_is_503_until_every_listen_is_held(
    exmail_sim: ExmailSim, tmp_path: Path
) -> None:
    """/readyz names the tenants not listening yet, and says 200 only once all are held."""
    exmail_sim.state.configure(hold_s=60.0)  # a held listen stays held while we look
    port = free_port()
    # 2 requests a second: the six tenants' tokens and listens take several seconds.
    config = _config(exmail_sim, tmp_path, port, upstream_rate_per_s=2.0)
    seen: list[tuple[int, int]] = []  # (status, listens held when it answered)
    async with running(config), aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            while not seen or seen[-1][0] != 200:
                answer = await _readyz(http, port)
                if answer is not None:
                    seen.append((answer[0], _held(exmail_sim)))
                    body = answer[1]
                await asyncio.sleep(0.02)
    waiting = [held for status, held in seen if status == 503]
    assert waiting  # it said 503 while listens were missing
    assert min(waiting) < TENANTS
    assert all(held == TENANTS for status, held in seen if status == 200), seen[-5:]
    assert body["tenants"]["listening"] == TENANTS
    assert body["tenants"]["waiting"] == 0


async def test_failed_tenant_counts_as_settled_and_is_named(
    exmail_sim: ExmailSim, tmp_path: Path
) -> None:
    """A tenant whose credential is refused does not hold /readyz back; the body names it."""
    exmail_sim.state.configure(hold_s=60.0)
    exmail_sim.state.credentials = {f"admin@t{i}.com": "k" for i in range(1, TENANTS)}
    port = free_port()
    config = _config(exmail_sim, tmp_path, port)
    async with running(config), aiohttp.ClientSession() as http, asyncio.timeout(30):
        answer = await _readyz(http, port)
        while answer is None or answer[0] != 200:
            await asyncio.sleep(0.02)
            answer = await _readyz(http, port)
    assert answer[1]["tenants"]["failing"] == {"t0": "parked"}
    assert answer[1]["tenants"]["listening"] == TENANTS - 1


async def test_start_order_follows_the_rate_budget(exmail_sim: ExmailSim, tmp_path: Path) -> None:
    """Tenants take turns at the shared rate limiter: every first request before any second one."""
    exmail_sim.state.configure(hold_s=60.0)
    grants: list[str] = []
    real = RateLimiter.acquire

    async def noted(self: RateLimiter, key: str = "") -> None:
        await real(self, key)
        grants.append(key)

    port = free_port()
    # An hour-long window would delay the last tenant by most of an hour if it still spread.
    config = _config(exmail_sim, tmp_path, port, upstream_rate_per_s=20.0, startup_window_s=3600.0)
    with _patched(RateLimiter, "acquire", noted):
        async with running(config), aiohttp.ClientSession() as http, asyncio.timeout(30):
            while (answer := await _readyz(http, port)) is None or answer[0] != 200:
                await asyncio.sleep(0.02)
            held = _held(exmail_sim)
    names = [f"t{i}" for i in range(TENANTS)]
    first_round = grants[:TENANTS]
    assert sorted(first_round) == names  # a token each, every tenant in turn
    assert sorted(grants[TENANTS : 2 * TENANTS]) == names  # then a listen each
    assert held == TENANTS


def _patched(owner: type, name: str, value: Any) -> Any:
    return patch.object(owner, name, value)


async def test_start_gate_lets_a_bounded_number_start_together() -> None:
    """The third tenant starts only when one of the first two listens (or fails)."""
    gate = StartGate(2)
    await gate.enter("a")
    await gate.enter("b")
    third = asyncio.create_task(gate.enter("c"))
    await asyncio.sleep(0.01)
    assert not third.done()
    gate.leave("a")
    gate.leave("a")  # a second leave of the same tenant frees nothing more
    async with asyncio.timeout(5):
        await third
    fourth = asyncio.create_task(gate.enter("d"))
    await asyncio.sleep(0.01)
    assert not fourth.done()
    fourth.cancel()


def test_rate_pump_waits_for_a_few_tokens_at_once() -> None:
    """The rate pump sleeps for a few tokens at once (2 ms at 5,000/s), never a sub-ms timer."""
    assert pump_wait_s(tokens=0.0, burst=5000.0, rate_per_s=5000.0) == MIN_WAIT_S
    assert pump_wait_s(tokens=0.0, burst=1.0, rate_per_s=5000.0) == 1 / 5000
    assert pump_wait_s(tokens=0.5, burst=10.0, rate_per_s=10.0) == 0.05  # slow: a token


async def test_rate_limiter_grants_every_waiter_in_bursts() -> None:
    """Many waiters behind an empty bucket are all served, one per key in turn."""
    rate = RateLimiter(rate_per_s=5000.0, burst=20.0)
    served: list[str] = []

    async def one(key: str) -> None:
        await rate.acquire(key)
        served.append(key)

    await asyncio.gather(*(one(f"t{i}") for i in range(200)))
    assert sorted(served) == sorted(f"t{i}" for i in range(200))
