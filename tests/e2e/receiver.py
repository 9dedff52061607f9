"""A local webhook receiver that verifies every Standard Webhooks signature.

It checks each request with the `standardwebhooks` package (a peer's implementation, not
ours), records what it answered, and can be told to answer a status, hang, or go away
(`stop()`: connection refused) for a while.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.plugins.services import free_port

__all__ = ["Hit", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the receiver got: where, what it answered, and the verified event."""

    path: str
    status: int
    webhook_id: str
    content_type: str
    event: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the receiver accepted it (2xx)."""
        return 200 <= self.status < 300


class WebhookReceiver:
    """Serves any POST path on 127.0.0.1:`port`; `answer()` changes what it says."""

    def __init__(self, *, secret: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self._webhook = Webhook(secret)
        self._status: dict[str | None, int] = {None: 204}
        self._hang_s = 0.0
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.hits: list[Hit] = []
        self.unverified = 0  # requests whose signature or timestamp did not verify
        self.holding = 0  # requests held by `hang()` right now

    def url(self, path: str) -> str:
        """The full URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, status: int, path: str | None = None) -> None:
        """Answer `status` from now on (to every path, or to `path` only)."""
        if path is None:
            self._status = {None: status}
        else:
            self._status[path] = status

    def hang(self, seconds: float) -> None:
        """Hold every request this long before answering (0 = answer at once)."""
        self._hang_s = seconds

    async def start(self) -> None:
        """Accept connections (again)."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._release = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening: senders get connection refused until `start()`."""
        self._release.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = self._webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.unverified += 1
            return web.Response(status=401)
        if self._hang_s:
            await self._held(self._hang_s)
        status = self._status.get(request.path, self._status[None])
        hit = Hit(
            path=request.path,
            status=status,
            webhook_id=request.headers.get("webhook-id", ""),
            content_type=request.headers.get("content-type", ""),
            event=event,
        )
        self.hits.append(hit)
        return web.Response(status=status)

    async def _held(self, seconds: float) -> None:
        self.holding += 1
        try:
            async with asyncio.timeout(seconds):
                await self._release.wait()
        except TimeoutError:
            pass
        finally:
            self.holding -= 1

    def delivered(self, path: str | None = None) -> list[Hit]:
        """Requests answered 2xx (to `path`, or to any path)."""
        return [h for h in self.hits if h.ok and (path is None or h.path == path)]

    def delivered_ids(self, path: str | None = None) -> Counter[str]:
        """How many times each event id was accepted."""
        return Counter(h.webhook_id for h in self.delivered(path))

    def attempts(self, event_id: str) -> list[Hit]:
        """Every request that carried `event_id`, in order."""
        return [h for h in self.hits if h.webhook_id == event_id]
