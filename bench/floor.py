"""The floor: the least a Python process can spend holding N Exmail listen long polls.

    python -m bench.floor --base http://127.0.0.1:P --tenants N [--loop uvloop|asyncio]

Fetches a token per tenant, then holds N `POST /openapi/listen` requests on one
ClientSession whose connector has no limit, re-polling when a hold ends. Prints
`floor ready` when every poll has been sent; runs until SIGTERM (or --max-s).

With `--rate R` every request (token and listen) first takes a slot from one token bucket
of R a second, the way the bridge shares `upstream_rate_per_s`, and each tenant asks for
its token and then listens at once: the fastest start-up possible at that cap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import aiohttp

from bridge.ratelimit import RateLimiter

TOKEN_CONCURRENCY = 200


def client_id(i: int) -> str:
    """The i-th bench tenant's admin account (the bridge config uses the same ones)."""
    return f"admin@t{i:05d}.example"


async def _token(session: aiohttp.ClientSession, base: str, i: int) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id(i), "client_secret": "k"}
    async with session.post(f"{base}/cgi-bin/token", data=form) as resp:
        token: str = (await resp.json())["access_token"]
        return token


async def _hold(
    session: aiohttp.ClientSession, base: str, token: str, rate: RateLimiter | None = None
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        if rate is not None:
            await rate.acquire()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.post(
                f"{base}/openapi/listen", data={"Ver": "0"}, headers=headers
            ) as resp:
                await resp.read()
        await asyncio.sleep(0.1)


async def fetch_tokens(session: aiohttp.ClientSession, base: str, n: int) -> list[str]:
    """A token per tenant, fetched by a few workers (no N coroutines alive at once)."""
    tokens = [""] * n
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            tokens[i] = await _token(session, base, i)

    await asyncio.gather(*(worker() for _ in range(min(TOKEN_CONCURRENCY, n))))
    return tokens


async def _capped(session: aiohttp.ClientSession, base: str, i: int, rate: RateLimiter) -> None:
    await rate.acquire()
    await _hold(session, base, await _token(session, base, i), rate)


async def _run(args: argparse.Namespace) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=args.hold_s + 30)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.rate:
            rate = RateLimiter(rate_per_s=args.rate)
            tasks = [
                asyncio.create_task(_capped(session, args.base, i, rate))
                for i in range(args.tenants)
            ]
        else:
            tokens = await fetch_tokens(session, args.base, args.tenants)
            tasks = [asyncio.create_task(_hold(session, args.base, t)) for t in tokens]
        print("floor ready", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    """Hold the polls until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="simulator URL, http://127.0.0.1:P")
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--hold-s", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s cap (0 = none)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--max-s", type=float, default=900.0, help="stop by itself after this")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(_run(args))
    else:
        asyncio.run(_run(args))


if __name__ == "__main__":
    main()
