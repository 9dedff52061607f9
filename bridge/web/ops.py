"""The ops HTTP app: /metrics, /healthz, /readyz (and public routes sharing its port)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bridge.errors import StoreError
from bridge.metrics import REGISTRY
from bridge.web.public import Handler, PublicFace

__all__ = ["Health", "Readiness", "make_http_app", "make_ops_app"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """Why the bridge is not ready (empty: ready), and details for the /readyz body."""

    problems: list[str]
    detail: dict[str, object] = field(default_factory=dict)


ReadyCheck = Callable[[], Awaitable[list[str] | Readiness]]
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


def _json(
    status: int, problems: list[str], detail: dict[str, object] | None = None
) -> web.Response:
    body = {"status": "ok" if not problems else "fail", "problems": problems, **(detail or {})}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def make_ops_app(*, health: Health, ready: ReadyCheck) -> web.Application:
    """The private app: /metrics, /healthz and /readyz (`ready` returns why not ready)."""

    async def readyz(_: web.Request) -> web.Response:
        detail: dict[str, object] = {}
        try:
            result = await ready()
            if isinstance(result, Readiness):
                detail = result.detail
                result = result.problems
            problems = health.problems() + result
        except StoreError as exc:
            problems = [f"store unreachable: {exc}"]
        return _json(503 if problems else 200, problems, detail)

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(REGISTRY))
    app.router.add_get("/healthz", make_healthz(health))
    app.router.add_get("/readyz", readyz)
    return app


def make_healthz(health: Health) -> Handler:
    """The /healthz handler (also served on the public listener, for the ingress)."""

    async def healthz(_: web.Request) -> web.Response:
        problems = health.problems()
        return _json(503 if problems else 200, problems)

    return healthz


def make_http_app(
    *, health: Health, ready: ReadyCheck, faces: Sequence[PublicFace] = ()
) -> web.Application:
    """One app for both faces: the ops routes plus every public face's routes."""
    app = make_ops_app(health=health, ready=ready)
    for face in faces:
        app.router.add_routes(face.routes())
    return app
