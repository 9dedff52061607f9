"""Polling: do many `api` tenants keep to the one upstream rate budget, spread evenly?

    python bench/polling.py --json

Starts the simulator on a free port with T new-API corps of M mailboxes, and runs T
pollers (the bridge's own sources, built by the registry) in this process on one shared
`RateLimiter`, on a SQLite store, for `--seconds`. The simulator counts the `mail/newcount`
requests it answers per 100 ms. Two scenarios, measured in the same run:

- `saturated`: the tenants want more than the budget (T·M / interval > rate). The floor is
  the budget itself: the measured rate must stay at or under it (plus the limiter's burst).
- `spread`: the tenants want half the budget. They must get what they want, evenly: the
  coefficient of variation of requests per 100 ms shows whether the polls bunch up.

Prints one JSON object; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge import logs
from bridge.config import parse_config
from bridge.exmail.client import ExmailClient
from bridge.exmail.session import make_session
from bridge.exmail_api.client import ApiClient
from bridge.ratelimit import RateLimiter
from bridge.routing import Router
from bridge.simulator.exmail import make_exmail_app, site_port, start_site
from bridge.simulator.exmail_newapi_http import NEWAPI
from bridge.sources import SourceDeps, build_source
from bridge.states import StateBoard
from bridge.store.sqlite import SqliteStore

BUCKET_S = 0.1
WARMUP_S = 2.0  # the first (reconcile) rounds poll at once; measure after them


def _counting(stamps: list[float]) -> Any:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/cgi-bin/mail/newcount":
            stamps.append(time.monotonic())
        return await handler(request)

    return count


def _config(url: str, tenants: int, mailboxes: int, interval_s: float, rate: float) -> Any:
    return parse_config(
        {
            "bridge": {"upstream_rate_per_s": rate},
            "exmail": {"api_url": url, "poll_interval_s": interval_s, "timeout_s": 5},
            "tenants": [
                {
                    "name": f"t{i}",
                    "protocol": "api",
                    "corp_id": f"wwbench{i:06d}",
                    "corp_secret": "s",
                    "watch": [f"u{j}@t{i}.example" for j in range(mailboxes)],
                }
                for i in range(tenants)
            ],
        },
        env={},
    )


async def _scenario(
    name: str, args: argparse.Namespace, tenants: int, rate: float
) -> dict[str, Any]:
    stamps: list[float] = []
    app = make_exmail_app()
    app.middlewares.append(_counting(stamps))
    runner = await start_site(app, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{site_port(runner)}"
    config = _config(url, tenants, args.mailboxes, args.interval_s, rate)
    for tenant in config.tenants:
        corp = app[NEWAPI].corp(tenant.corp_id)
        assert corp is not None
        corp.users.update({box: {"name": box} for box in tenant.watch})
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(path=Path(tmp) / "b.db", dedupe_window_s=3600) as store:
            measured = await _run(config, store, stamps, args.seconds)
    await runner.cleanup()
    wanted = tenants * args.mailboxes / args.interval_s
    return {
        "scenario": name,
        "tenants": tenants,
        "budget_per_s": rate,
        "wanted_per_s": wanted,
        **measured,
    }


async def _run(config: Any, store: Any, stamps: list[float], seconds: float) -> dict[str, Any]:
    rate = RateLimiter(rate_per_s=config.bridge.upstream_rate_per_s)
    async with make_session(config.exmail, max_connections=256) as session:
        deps = SourceDeps(
            config=config,
            store=store,
            router=Router(routes=[], sinks=["s"]),
            board=StateBoard(),
            rate=rate,
            legacy=ExmailClient(session=session, settings=config.exmail, rate=rate),
            api=ApiClient(
                session=session, settings=config.exmail, base_url=config.exmail.api_url, rate=rate
            ),
        )
        sources = [build_source(t, deps) for t in config.tenants]
        started = time.monotonic()
        tasks = [asyncio.create_task(s.run()) for s in sources]
        await asyncio.sleep(WARMUP_S + seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    window = [t for t in stamps if started + WARMUP_S <= t < started + WARMUP_S + seconds]
    buckets = [0] * int(seconds / BUCKET_S)
    for stamp in window:
        buckets[min(int((stamp - started - WARMUP_S) / BUCKET_S), len(buckets) - 1)] += 1
    mean = statistics.fmean(buckets)
    return {
        "measured_per_s": round(len(window) / seconds, 1),
        "per_100ms_mean": round(mean, 2),
        "per_100ms_cv": round(statistics.pstdev(buckets) / mean, 3) if mean else None,
        "per_100ms_max": max(buckets),
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    rate = args.rate
    saturated = await _scenario(
        "saturated", args, tenants=int(rate * args.interval_s * 2 / args.mailboxes), rate=rate
    )
    spread = await _scenario(
        "spread", args, tenants=int(rate * args.interval_s / 2 / args.mailboxes), rate=rate
    )
    checks = {
        "saturated_within_budget": saturated["measured_per_s"] <= rate * 1.05,
        "saturated_uses_budget": saturated["measured_per_s"] >= rate * 0.8,
        "spread_gets_what_it_wants": spread["measured_per_s"] >= spread["wanted_per_s"] * 0.9,
    }
    return {
        "benchmark": "polling",
        "scenarios": [saturated, spread],
        "checks": checks,
        "ok": all(checks.values()),
        "load_avg": list(__import__("os").getloadavg()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="upstream_rate_per_s")
    parser.add_argument("--mailboxes", type=int, default=5, help="watched mailboxes per tenant")
    parser.add_argument("--interval-s", type=float, default=2.0, help="poll_interval_s")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured window")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    logs.configure("warning", "console")
    report = asyncio.run(_main(args))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2 if not args.json else 0).decode())
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
