"""The subscription API served for real: the `/v1/` face on a TCP port over a real store
(SQLite or Redis), its registry routing commits and running dispatchers, and webhook
receivers that verify every signature with the `standardwebhooks` package.

    async def test_x(api: ApiHarness) -> None:
        created = await api.create(url=api.receiver.url("/hook"))
        await api.commit(api.event(1))
        await api.until(lambda: api.receiver.delivered(), "the delivery")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from bridge.config import Config, parse_config
from bridge.delivery.subscriptions_app import Subscriptions, subscriptions
from bridge.events import Event, event_id
from bridge.store.base import Store
from bridge.store.subscriptions import OutboxWithSubscriptions, with_subscriptions
from bridge.web.public import make_public_app
from tests.e2e.receiver import WebhookReceiver
from tests.plugins.services import free_port
from tests.plugins.store import StoreMaker

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
QUICK_RETRY_S = [0, 0.2, 0.2]

Check = Callable[[], bool | Awaitable[bool]]


def whsec() -> str:
    """A fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def api_config(port: int, **api: Any) -> Config:
    """A config whose [api] suits tests: an admin token, local receivers allowed."""
    settings = {
        "admin_tokens": [ADMIN_TOKEN],
        "allow_private_targets": True,
        "retry_s": QUICK_RETRY_S,
        "timeout_s": 2,
        "refresh_s": 0.2,
        "rate_per_s": 1000,
        "rate_burst": 1000,
        **api,
    }
    return parse_config(
        {
            "bridge": {
                "public_url": f"http://127.0.0.1:{port}",
                "http_listen": f"127.0.0.1:{port}",
            },
            "api": settings,
            # An admin-configured sink: never dispatched here, its outbox shows what the
            # bridge announced (e.g. exmail.subscription.disabled).
            "sinks": [
                {"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": whsec()}
            ],
        },
        env={},
    )


@dataclass
class ApiHarness:
    """One test's API server, store and receiver."""

    store: OutboxWithSubscriptions
    subs: Subscriptions
    port: int
    http: aiohttp.ClientSession
    receiver: WebhookReceiver
    secret: str
    sent: int = field(default=0)

    def url(self, path: str) -> str:
        """The API URL of `path`."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = ADMIN_TOKEN
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        """One request; (status, parsed JSON or None, headers)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.url(path), json=body, headers=headers) as resp:
            raw = await resp.read()
            parsed = await resp.json(content_type=None) if raw else None
            return resp.status, parsed, resp.headers

    async def create(self, token: str | None = ADMIN_TOKEN, **fields: Any) -> dict[str, Any]:
        """Create a subscription (to the receiver with its secret unless told); its body."""
        body = {"url": self.receiver.url("/hook"), "secret": self.secret, **fields}
        status, created, _ = await self.call("POST", "/v1/subscriptions", body, token=token)
        assert status == 201, created
        await self.until(lambda: self.subs.registry.get(created["id"]) is not None, "the reload")
        return dict(created)

    def event(self, n: int, tenant: str = "acme", kind: str = "exmail.mail.received") -> Event:
        """A mail event numbered `n`."""
        return Event(
            id=event_id(tenant, "api-test", str(n), str(time.monotonic_ns())),
            type=kind,
            tenant=tenant,
            mailbox=f"bob@{tenant}.com",
            time="2026-11-29T10:00:00.000Z",
            data={"n": n},
        )

    async def commit(self, *events: Event) -> None:
        """Commit events through the router, as a listener does."""
        for event in events:
            await self.store.commit(event.tenant, self.subs.router.route([event]))

    async def until(self, check: Check, what: str, timeout_s: float = 15.0) -> None:
        """Poll `check` until true; fail naming `what`."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serve_api(store: Store, config: Config, port: int) -> AsyncIterator[Subscriptions]:
    """The subscription parts over `store`, with `/v1/` on `port`."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with subscriptions(config, store) as subs:
        runner = web.AppRunner(make_public_app(faces=[subs.face], healthz=healthz))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield subs
        finally:
            await runner.cleanup()


@pytest.fixture
def api_settings() -> dict[str, Any]:
    """Extra `[api]` keys for the `api` fixture (override in a test module)."""
    return {}


@pytest.fixture
async def api(store_maker: StoreMaker, api_settings: dict[str, Any]) -> AsyncIterator[ApiHarness]:
    """The API on both stores, with one running receiver."""
    port = free_port()
    secret = whsec()
    receiver = WebhookReceiver(secret=secret)
    await receiver.start()
    async with (
        store_maker.open() as store,
        serve_api(store, api_config(port, **api_settings), port) as subs,
        aiohttp.ClientSession() as http,
    ):
        yield ApiHarness(
            store=with_subscriptions(store),
            subs=subs,
            port=port,
            http=http,
            receiver=receiver,
            secret=secret,
        )
    await receiver.stop()
    assert receiver.unverified == 0, "a webhook request failed signature verification"
