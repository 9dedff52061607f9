"""Load for bench/callbacks.py: Tencent-shaped callbacks, sealed in advance, and two ways
to send them (closed loop at full speed, open loop at a fixed rate)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.receivers import percentiles
from bridge.exmail_api.crypto import CallbackCrypto

CORP = "wwbench0000000001"
TOKEN = "bench-callback-token"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
Sealed = tuple[dict[str, str], bytes]


def _message(i: int) -> bytes:
    return (
        f"<xml><CorpID><![CDATA[{CORP}]]></CorpID><MsgType><![CDATA[Mail]]></MsgType>"
        f"<MailID><![CDATA[bench-{i:08d}-{time.time_ns()}]]></MailID>"
        f"<ToUserID><![CDATA[user{i % 50}@bench.example]]></ToUserID>"
        '<FromUser><![CDATA["Sender"<sender@example.com>]]></FromUser>'
        f"<Title><![CDATA[邮件 {i}]]></Title><Time>{int(time.time())}</Time>"
        f"<NewCount>{i % 7 + 1}</NewCount></xml>"
    ).encode()


def seal_all(n: int) -> list[Sealed]:
    """`n` distinct callbacks, sealed and signed as Tencent would."""
    crypto = CallbackCrypto(token=TOKEN, aes_key=AES_KEY, receive_id=CORP)
    out: list[Sealed] = []
    for i in range(n):
        encrypt = crypto.encrypt(_message(i))
        ts, nonce = str(int(time.time())), f"{i}{time.time_ns() % 10**9}"
        query = {"msg_signature": crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        out.append((query, f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()))
    return out


async def send_all(url: str, batch: list[Sealed], concurrency: int) -> dict[str, Any]:
    """POST every callback with `concurrency` senders; rate, answer times, failures."""
    times: list[float] = []
    failures: dict[str, int] = {}
    todo = iter(batch)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def sender() -> None:
            for query, body in todo:
                began = time.perf_counter()
                async with http.post(url, params=query, data=body) as resp:
                    await resp.read()
                times.append(time.perf_counter() - began)
                if resp.status != 200:
                    failures[str(resp.status)] = failures.get(str(resp.status), 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "per_s": round(len(batch) / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "failures": failures,
        **percentiles(times),
    }


async def paced(url: str, batch: list[Sealed], concurrency: int, rate: float) -> dict[str, Any]:
    """Open loop: request k is due at k/rate s; its answer time counts from when it was due
    (a late send is waiting too), so a stall cannot hide behind a slow sender."""
    times: list[float] = []
    failures: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter() + 0.2

        async def sender(first: int) -> None:
            for k in range(first, len(batch), concurrency):
                due = start + k / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                query, body = batch[k]
                async with http.post(url, params=query, data=body) as resp:
                    await resp.read()
                times.append(time.perf_counter() - due)
                if resp.status != 200:
                    failures[str(resp.status)] = failures.get(str(resp.status), 0) + 1

        await asyncio.gather(*(sender(i) for i in range(concurrency)))
    return {"rate_per_s": rate, "failures": failures, **percentiles(times)}
