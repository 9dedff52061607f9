"""The throughput floor: a non-durable pass-through from Exmail listens to webhooks.

    python -m bench.passthrough --base http://127.0.0.1:P --tenants N --hook URL [--hook URL]

Holds one listen per tenant like the bridge, and for every mail push does only what cannot
be skipped: decode the stream, build the CloudEvent, sign it (Standard Webhooks), POST it to
every --hook with at most --concurrency requests in flight per hook over keep-alive
connections. No store, no retries, no routing, no metrics: what the bridge's durability and
bookkeeping cost is the difference to this. Prints `passthrough ready` once every listen is
sent; runs until SIGTERM (or --max-s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

import aiohttp

from bench.floor import fetch_tokens
from bridge import events
from bridge.exmail.decode import StreamDecoder
from bridge.exmail.pushes import MailPush
from bridge.exmail.shapes import push_of
from sinks.signing import decode_secret, signed_headers
from sinks.webhook import CONTENT_TYPE


class Hook:
    """One webhook target: a keep-alive pool and a cap on requests in flight."""

    def __init__(self, url: str, secret: str, concurrency: int) -> None:
        self.url = url
        self._keys = (decode_secret(secret),)
        self._slots = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        self.session = aiohttp.ClientSession(connector=connector)
        self._tasks: set[asyncio.Task[None]] = set()

    async def post(self, event: events.Event) -> None:
        """Wait for a free slot, then send the event without waiting for the answer."""
        await self._slots.acquire()
        task = asyncio.create_task(self._send(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, event: events.Event) -> None:
        try:
            body = event.to_json()
            headers = signed_headers(self._keys, event.id, int(time.time()), body)
            headers["content-type"] = CONTENT_TYPE
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.post(self.url, data=body, headers=headers) as resp:
                    await resp.read()
        finally:
            self._slots.release()


def _event(tenant: str, push: MailPush) -> events.Event:
    return events.mail_received(
        tenant=tenant,
        mailbox=push.mailbox,
        mail_id=push.mail_id,
        sender=push.sender,
        to=push.receiver,
        subject=push.subject,
        summary=push.summary,
        unread_count=push.new_count,
    )


async def _listen(
    session: aiohttp.ClientSession, base: str, tenant: str, token: str, hooks: list[Hook]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.post(
                f"{base}/openapi/listen", data={"Ver": "0"}, headers=headers
            ) as resp:
                decoder = StreamDecoder()
                while chunk := await resp.content.readany():
                    for item in decoder.feed(chunk):
                        push = push_of(item)
                        if isinstance(push, MailPush):
                            event = _event(tenant, push)
                            for hook in hooks:
                                await hook.post(event)


async def _run(args: argparse.Namespace) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=args.hold_s + 30)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    hooks = [Hook(url, args.secret, args.concurrency) for url in args.hook]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tokens = await fetch_tokens(session, args.base, args.tenants)
        tasks = [
            asyncio.create_task(_listen(session, args.base, f"t{i:05d}", t, hooks))
            for i, t in enumerate(tokens)
        ]
        print("passthrough ready", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for hook in hooks:
        await hook.session.close()


def main() -> None:
    """Pass pushes through until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="simulator URL, http://127.0.0.1:P")
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--hook", action="append", required=True, help="webhook URL (repeat)")
    parser.add_argument("--secret", required=True, help="whsec_... signing secret")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hold-s", type=float, default=120.0)
    parser.add_argument("--max-s", type=float, default=900.0, help="stop by itself after this")
    args = parser.parse_args()
    import uvloop

    uvloop.run(_run(args))


if __name__ == "__main__":
    main()
