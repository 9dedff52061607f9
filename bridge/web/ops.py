"""The ops HTTP app: /metrics, /healthz, /readyz and the click-through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bridge.errors import StoreError
from bridge.metrics import REGISTRY

__all__ = ["Health", "make_http_app"]

ReadyCheck = Callable[[], Awaitable[list[str]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LAG_LIMIT_S = 5.0


class Health:
    """Measures event-loop lag with a ticker: a blocked loop fails /healthz."""

    def __init__(self, *, tick_s: float = 0.5) -> None:
        self._tick_s = tick_s
        self.last_tick = time.monotonic()
        self.lag_s = 0.0

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(self._tick_s)
            now = time.monotonic()
            self.lag_s = max(0.0, now - before - self._tick_s)
            self.last_tick = now

    def problems(self) -> list[str]:
        """Why the process is not healthy (empty when it is)."""
        stale = time.monotonic() - self.last_tick - self._tick_s
        if max(self.lag_s, stale) > LAG_LIMIT_S:
            return [f"event loop lagging {max(self.lag_s, stale):.1f}s"]
        return []


def _json(status: int, problems: list[str]) -> web.Response:
    body = {"status": "ok" if not problems else "fail", "problems": problems}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def make_http_app(
    *, health: Health, ready: ReadyCheck, open_handler: Handler | None = None
) -> web.Application:
    """The aiohttp app; `ready` returns the reasons the bridge is not ready."""

    async def healthz(_: web.Request) -> web.Response:
        problems = health.problems()
        return _json(503 if problems else 200, problems)

    async def readyz(_: web.Request) -> web.Response:
        try:
            problems = health.problems() + await ready()
        except StoreError as exc:
            problems = [f"store unreachable: {exc}"]
        return _json(503 if problems else 200, problems)

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(REGISTRY))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if open_handler is not None:
        app.router.add_get("/open/{token}", open_handler)
    return app
