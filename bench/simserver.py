"""The Exmail simulator for the benchmarks: `exmail-bridge simulate`, plus two bench routes.

    python -m bench.simserver --port P --hold-s 110 [--framing single] [--uvloop]

Same app as `exmail-bridge simulate` (bridge/simulator/exmail.py), and:
GET  /_bench/connected   {"connected": listens held right now, summed over all tenants,
                          "listen_requests": listen requests so far,
                          "token_requests": token requests so far}
GET  /_bench/held        {"held": client_ids of the tenants with a listen held right now}
POST /_bench/drop        cut every held listen at once (a reconnect storm) -> {"dropped": n}
POST /_bench/mails       {"mails": [{"tenant", "to", "from", "subject", "summary"}, ...]}
                         queue many mails in one call -> {"queued": n}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from bridge.simulator.exmail import STATE, make_exmail_app, start_site
from bridge.simulator.exmail_faults import FRAMINGS, SimSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _connected(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {
        "connected": sum(t.listens_connected for t in state.tenants.values()),
        "listen_requests": sum(state.listen_requests.values()),
        "token_requests": sum(state.token_requests.values()),
    }
    return web.json_response(body)


async def _held(request: web.Request) -> web.Response:
    state = request.app[STATE]
    held = [t.client_id for t in state.tenants.values() if t.listens_connected > 0]
    return web.json_response({"held": held})


async def _mails(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body: Any = orjson.loads(await request.read())
    for mail in body["mails"]:
        state.send_mail(
            mail["tenant"],
            to=mail["to"],
            sender=mail.get("from", "bench@example.com"),
            subject=mail.get("subject", ""),
            summary=mail.get("summary", ""),
        )
    return web.json_response({"queued": len(body["mails"])})


_HELD = web.AppKey("held", dict[int, web.Request])  # id(request) -> request


@web.middleware
async def _track_listens(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != "/openapi/listen":
        return await handler(request)
    held = request.app[_HELD]
    held[id(request)] = request
    try:
        return await handler(request)
    finally:
        held.pop(id(request), None)


async def _drop(request: web.Request) -> web.Response:
    """Abort every held listen's connection; the handlers are cancelled with them."""
    tracked: dict[int, web.Request] = request.app[_HELD]
    held = list(tracked.values())
    for req in held:
        if req.transport is not None:
            req.transport.abort()
    return web.json_response({"dropped": len(held)})


async def _serve(args: argparse.Namespace) -> None:
    settings = SimSettings(hold_s=args.hold_s, framing=args.framing)
    app = make_exmail_app(settings=settings)
    app.router.add_get("/_bench/connected", _connected)
    app.router.add_post("/_bench/mails", _mails)
    app.router.add_post("/_bench/drop", _drop)
    app.router.add_get("/_bench/held", _held)
    app[_HELD] = {}
    app.middlewares.append(_track_listens)
    runner = await start_site(app, host="127.0.0.1", port=args.port)
    print(f"bench simulator on 127.0.0.1:{args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_s)
    except TimeoutError:
        print("bench simulator: --max-s reached, stopping", flush=True)
    finally:
        await runner.cleanup()


def main() -> None:
    """Serve until SIGTERM (or --max-s)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hold-s", type=float, default=110.0)
    parser.add_argument("--framing", choices=FRAMINGS, default="single")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--max-s", type=float, default=1800.0, help="stop by itself after this")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop

            uvloop.run(_serve(args))
        else:
            asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
