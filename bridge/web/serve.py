"""Which apps listen where: the ops listener, and the public one when it has its own port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from bridge.binding import start_tcp_site
from bridge.config import BridgeSection
from bridge.web.ops import Health, ReadyCheck, make_healthz, make_http_app, make_ops_app
from bridge.web.public import Listener, PublicFace, make_public_app

__all__ = ["plan_listeners", "serving"]


def plan_listeners(
    bridge: BridgeSection, *, health: Health, ready: ReadyCheck, faces: Sequence[PublicFace]
) -> list[Listener]:
    """One listener when `public_listen` is unset or equal to `http_listen`, else two."""
    public = bridge.public_listen
    if public is None or public == bridge.http_listen:
        app = make_http_app(health=health, ready=ready, faces=faces)
        return [Listener(bridge.http_listen, app)]
    return [
        Listener(bridge.http_listen, make_ops_app(health=health, ready=ready)),
        Listener(public, make_public_app(faces=faces, healthz=make_healthz(health))),
    ]


@contextlib.asynccontextmanager
async def serving(listeners: Sequence[Listener]) -> AsyncIterator[None]:
    """Serve every listener until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        for listener in listeners:
            await stack.enter_async_context(_serve_one(listener))
        yield


@contextlib.asynccontextmanager
async def _serve_one(listener: Listener) -> AsyncIterator[None]:
    host, _, port = listener.address.rpartition(":")
    runner = web.AppRunner(listener.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await start_tcp_site(runner, host.strip("[]"), int(port))
        yield
    finally:
        await runner.cleanup()
