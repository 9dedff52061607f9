"""The soak's faults: each one breaks a part of the world for a while, then mends it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bench.soak_world import HOOK_TIMEOUT_S, TENANTS, World

if TYPE_CHECKING:
    from bench.soak import SoakSettings, Tally

__all__ = ["UPSTREAM_FAULTS", "Breaker"]

UPSTREAM_FAULTS: dict[str, dict[str, Any]] = {
    "upstream_5xx": {"http_5xx": 0.5},
    "upstream_1002": {"err_1002": 0.5},
    "upstream_1200": {"err_1200": 0.3},
    "upstream_reset": {"reset": True},
    "upstream_silent": {"silent": True},
    "upstream_invalid_json": {"invalid_json": True},
}


class Breaker:
    """Fires a seeded random fault every few seconds until cancelled."""

    def __init__(
        self,
        world: World,
        rng: random.Random,
        tally: Tally,
        settings: SoakSettings,
    ) -> None:
        self.world = world
        self.rng = rng
        self.faults = tally.faults
        self.errors = tally.errors
        self.timeline = tally.timeline
        self.settings = settings
        self._started = time.monotonic()
        self._last_bridge_kill = time.monotonic()

    def now(self) -> float:
        """Seconds since the soak started."""
        return time.monotonic() - self._started

    def _faults(self) -> dict[str, Callable[[float], Awaitable[None]]]:
        faults: dict[str, Callable[[float], Awaitable[None]]] = {
            name: self._upstream(changes) for name, changes in UPSTREAM_FAULTS.items()
        }
        faults |= {
            "receiver_5xx": self._receiver_5xx,
            "receiver_timeout": self._receiver_slow(HOOK_TIMEOUT_S + 0.5),
            "receiver_hang": self._receiver_slow(3600.0),
            "mosquitto_restart": self._mosquitto_restart,
            "bridge_kill": self._bridge_kill,
        }
        if self.world.redis is not None:
            faults["redis_kill"] = self._redis_kill
        return faults

    async def run(self) -> None:
        faults = self._faults()
        names = sorted(faults)
        while True:
            await asyncio.sleep(self.settings.fault_every_s * self.rng.uniform(0.5, 1.5))
            name = self.rng.choice(names)
            if name == "bridge_kill" and not self._bridge_kill_due():
                continue
            self.faults[name] += 1
            started = self.now()
            try:
                await faults[name](self.rng.uniform(1.0, 4.0))
            except Exception as exc:
                self.errors.append(f"fault {name}: {type(exc).__name__}: {exc}")
            finally:
                self.timeline.append((started, self.now(), name))

    def _upstream(self, changes: dict[str, Any]) -> Callable[[float], Awaitable[None]]:
        async def fault(lasts_s: float) -> None:
            tenant = TENANTS[self.rng.choice(list(TENANTS))]
            await self.world.sim_call("POST", "/_sim/faults", {"tenant": tenant, **changes})
            try:
                await asyncio.sleep(lasts_s)
            finally:
                await self.world.sim_call("DELETE", "/_sim/faults")

        return fault

    async def _receiver_5xx(self, lasts_s: float) -> None:
        assert self.world.receiver is not None
        self.world.receiver.answer(503)
        try:
            await asyncio.sleep(lasts_s)
        finally:
            self.world.receiver.answer(204)

    def _receiver_slow(self, hold_s: float) -> Callable[[float], Awaitable[None]]:
        async def fault(lasts_s: float) -> None:
            assert self.world.receiver is not None
            self.world.receiver.hang(hold_s)
            try:
                await asyncio.sleep(lasts_s)
            finally:
                self.world.receiver.hang(0)

        return fault

    async def _mosquitto_restart(self, lasts_s: float) -> None:
        assert self.world.mosquitto is not None
        await asyncio.to_thread(self.world.mosquitto.stop)
        await asyncio.sleep(min(lasts_s, 2.0))
        await asyncio.to_thread(self.world.mosquitto.start)

    async def _redis_kill(self, lasts_s: float) -> None:
        redis = self.world.redis
        assert redis is not None
        assert redis.proc is not None
        redis.proc.kill()
        await asyncio.to_thread(redis.proc.wait)
        redis.proc = None
        await asyncio.sleep(min(lasts_s, 2.0))
        await asyncio.to_thread(redis.start)

    def _bridge_kill_due(self) -> bool:
        return time.monotonic() - self._last_bridge_kill >= self.settings.bridge_kill_every_s

    async def _bridge_kill(self, lasts_s: float) -> None:
        self._last_bridge_kill = time.monotonic()
        self.world.kill_bridge()
        await asyncio.sleep(min(lasts_s, 1.0))
        await self.world.start_bridge()

    async def mend(self) -> None:
        """Clear every fault and make sure every part runs."""
        await self.world.sim_call("DELETE", "/_sim/faults")
        assert self.world.receiver is not None
        assert self.world.bridge is not None
        self.world.receiver.answer(204)
        self.world.receiver.hang(0)
        if self.world.redis is not None and self.world.redis.proc is None:
            await asyncio.to_thread(self.world.redis.start)
        if self.world.mosquitto is not None and self.world.mosquitto.proc is None:
            await asyncio.to_thread(self.world.mosquitto.start)
        if not self.world.bridge.running():
            await self.world.start_bridge()
