"""The webhook sink keeps connections alive, at most `concurrency` of them per receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bridge.config import WebhookSinkConfig
from sinks.webhook import WebhookSink
from tests.plugins.services import free_port
from tests.sinks.helpers import mail_event
from tests.sinks.test_webhook import SECRET_A


class Peers:
    """A receiver that notes which client connection each request came on."""

    def __init__(self) -> None:
        self.seen: list[object] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        """Note the peer, answer 204 after a moment (so sends overlap)."""
        await request.read()
        transport = request.transport
        self.seen.append(transport.get_extra_info("peername") if transport else None)
        await asyncio.sleep(0.01)
        return web.Response(status=204)


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    """A running peer-noting receiver."""
    recv = Peers()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recv.url = f"http://127.0.0.1:{port}/hook"
    yield recv
    await runner.cleanup()


async def _sink(url: str, concurrency: int) -> WebhookSink:
    fields = {"name": "oa", "type": "webhook", "url": url, "secret": SECRET_A}
    config = WebhookSinkConfig.model_validate({**fields, "concurrency": concurrency})
    sink = WebhookSink(config=config)
    await sink.start()
    return sink


async def test_sends_reuse_at_most_concurrency_connections(peers: Peers) -> None:
    """Thirty overlapping sends ride on no more connections than `concurrency`."""
    sink = await _sink(peers.url, concurrency=3)
    try:
        await asyncio.gather(*(sink.send(mail_event(mail_id=f"m{n}")) for n in range(30)))
    finally:
        await sink.aclose()
    assert len(peers.seen) == 30
    assert len(set(peers.seen)) <= 3


async def test_sequential_sends_keep_one_connection(peers: Peers) -> None:
    """One send after another reuses the same kept-alive connection."""
    sink = await _sink(peers.url, concurrency=16)
    try:
        for n in range(10):
            await sink.send(mail_event(mail_id=f"m{n}"))
    finally:
        await sink.aclose()
    assert len(set(peers.seen)) == 1
