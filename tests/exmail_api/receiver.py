"""The callback receiver served on a real socket, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.config import TenantConfig
from bridge.events import Event
from bridge.exmail_api.callback import CallbackReceiver
from bridge.routing import Router
from bridge.sources.commit import Committer
from bridge.store.base import Store
from tests.exmail_api.helpers import Callback, api_tenant

SINK = "oa"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read."""

    status: int
    body: bytes


@dataclass
class Receiver:
    """A running receiver: its base URL, a client session, and the store behind it."""

    url: str
    http: aiohttp.ClientSession
    store: Store

    async def post(self, cb: Callback, tenant: str = "globex") -> Answer:
        """POST a callback; its status and body."""
        async with self.http.post(
            f"{self.url}/exmail/callback/{tenant}", params=cb.query, data=cb.body
        ) as resp:
            return Answer(status=resp.status, body=await resp.read())

    async def committed(self) -> list[Event]:
        """Every event committed so far (claimed from the one sink)."""
        return [d.event for d in await self.store.claim(SINK, limit=100, lease_s=60)]


@asynccontextmanager
async def serving(store: Store, *tenants: TenantConfig) -> AsyncIterator[Receiver]:
    """The receiver on a free port of 127.0.0.1, as the public listener mounts it."""
    router = Router(routes=(), sinks=[SINK])
    receiver = CallbackReceiver(
        tenants=tenants or (api_tenant(),),
        committer_for=lambda t: Committer(
            tenant=t.name, store=store, router=router, backoff_base_s=0.01
        ),
    )
    app = web.Application()
    app.router.add_routes(receiver.routes())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Receiver(url=str(server.make_url("")).rstrip("/"), http=http, store=store)
    finally:
        await server.close()
