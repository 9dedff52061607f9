"""Subscriptions against the same number of configured webhook sinks, in one run.

    python bench/subscriptions.py --json

For each N in --counts (default 1, 100, 1000) it runs the bridge (`python -m bridge.cli
run`, --store sqlite or redis, one tenant, the bench simulator) twice: once with N `[[sinks]]`
webhooks (the floor) and once with no sinks and N subscriptions made through
`POST /v1/subscriptions`. Every destination posts to one receiver in this process.

Two phases per run:
- latency: --paced mails, one every --gap-s seconds, so each mail's fan-out is measured
  alone: mail injected -> each delivery arrived (p50/p99 over all deliveries), and the
  bridge's own commit -> delivered histogram (its mean, `event_latency_seconds`);
- throughput: --burst mails at once; events/s = mails / (first injection -> last delivery),
  and deliveries/s = events/s x N.

Prints one JSON object; `ratio` compares subscriptions with static sinks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import orjson
from aiohttp import web

from bench import procs
from bench.configs import BridgeSetup, bridge_toml
from bench.floor import client_id
from bench.receivers import percentiles

SECRET = "whsec_YmVuY2gtc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbg=="
ADMIN = "bench-admin-token-0123456789abcdef"


class Arrivals:
    """When each (destination, subject) arrived."""

    def __init__(self) -> None:
        self.at: dict[str, list[float]] = defaultdict(list)
        self.changed = asyncio.Event()

    def count(self) -> int:
        """Deliveries so far."""
        return sum(len(v) for v in self.at.values())


@contextlib.asynccontextmanager
async def receiver(arrivals: Arrivals, port: int) -> AsyncIterator[None]:
    """Accept every POST; note its arrival by the mail subject in the event."""

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        arrivals.at[orjson.loads(body)["data"].get("subject", "")].append(time.monotonic())
        arrivals.changed.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def _sinks(n: int, hook_port: int) -> list[str]:
    tables: list[str] = []
    for i in range(n):
        tables += [
            "[[sinks]]",
            f'name = "s{i:04d}"',
            'type = "webhook"',
            f'url = "http://127.0.0.1:{hook_port}/h/{i}"',
            f'secret = "{SECRET}"',
            "",
        ]
    return tables


def _api_table() -> list[str]:
    return [
        "[api]",
        f'admin_tokens = ["{ADMIN}"]',
        "allow_private_targets = true",
        "rate_per_s = 100000",
        "rate_burst = 100000",
        "",
    ]


class Bench:
    """One run of the bridge with N destinations of one kind."""

    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession, tmp: Path):
        self.args = args
        self.session = session
        self.tmp = tmp
        self.sim = f"http://127.0.0.1:{args.sim_port}"
        self.runs = 0

    async def inject(self, arrivals: Arrivals, subject: str, sent: dict[str, float]) -> None:
        """One mail to the bench tenant."""
        body = {"tenant": client_id(0), "to": "bob@t00000.example", "from": "b@x.example"}
        body["subject"] = subject
        sent[subject] = time.monotonic()
        async with self.session.post(f"{self.sim}/_sim/mail", json=body) as resp:
            resp.raise_for_status()

    async def until_delivered(self, arrivals: Arrivals, want: int, timeout_s: float) -> bool:
        """Wait until `want` deliveries arrived."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while arrivals.count() < want:
                    arrivals.changed.clear()
                    await arrivals.changed.wait()
        return arrivals.count() >= want

    async def subscribe(self, port: int, hook_port: int, n: int) -> float:
        """Make N subscriptions over the API; seconds it took."""
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {ADMIN}"}
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            body = {"url": f"http://127.0.0.1:{hook_port}/sub/{i}", "secret": SECRET}
            async with (
                sem,
                self.session.post(
                    f"http://127.0.0.1:{port}/v1/subscriptions", json=body, headers=headers
                ) as resp,
            ):
                if resp.status != 201:
                    raise RuntimeError(await resp.text())

        await asyncio.gather(*(one(i) for i in range(n)))
        return time.monotonic() - started

    def _store_url(self, kind: str, n: int) -> str:
        self.runs += 1
        if self.args.redis_url:  # each run in a database of its own (redis has 16)
            return f"{self.args.redis_url.rsplit('/', 1)[0]}/{self.runs % 16}"
        return f"sqlite:///{self.tmp}/{kind}-{n}.db"

    async def run(self, kind: str, n: int) -> dict[str, Any]:
        """Start the bridge with N destinations of `kind`; measure both phases."""
        arrivals, hook_port, http_port = Arrivals(), procs.free_port(), procs.free_port()
        static = _sinks(n, hook_port) if kind == "static" else []
        setup = BridgeSetup(
            tenants=1,
            sim_port=self.args.sim_port,
            http_port=http_port,
            store=self._store_url(kind, n),
            startup_window_s=0,
            listen_hold_s=30,
            sinks=[*static, *_api_table()],
        )
        config = self.tmp / f"{kind}-{n}.toml"
        config.write_text(bridge_toml(setup))
        async with receiver(arrivals, hook_port):
            bridge = procs.start(
                f"bridge-{kind}-{n}", procs.python("bridge.cli", "run", "-c", str(config)), self.tmp
            )
            try:
                procs.wait_port(http_port, timeout_s=60)
                made_s = await self.subscribe(http_port, hook_port, n) if kind != "static" else 0
                await asyncio.sleep(2.5)  # subscriptions reach routing; listeners connect
                result = await self._measure(arrivals, n, bridge)
                result["subscribe_s"] = round(made_s, 2)
                result["commit_to_delivery_mean_ms"] = await self._bridge_mean_ms(http_port)
                return result
            finally:
                bridge.stop()

    async def _measure(self, arrivals: Arrivals, n: int, bridge: procs.Child) -> dict[str, Any]:
        sent: dict[str, float] = {}
        await self.inject(arrivals, "warmup", sent)
        if not await self.until_delivered(arrivals, n, 60):
            raise RuntimeError(f"warm-up not delivered:\n{bridge.tail()}")
        arrivals.at.clear()
        for k in range(self.args.paced):
            await self.inject(arrivals, f"paced-{k}", sent)
            await asyncio.sleep(self.args.gap_s)
        delivered = await self.until_delivered(arrivals, self.args.paced * n, 120)
        latencies = [at - sent[subject] for subject, times in arrivals.at.items() for at in times]
        paced = {**percentiles(latencies), "complete": delivered}
        arrivals.at.clear()
        started, cpu = time.monotonic(), procs.cpu_s(bridge.pid)
        await asyncio.gather(
            *(self.inject(arrivals, f"burst-{k}", sent) for k in range(self.args.burst))
        )
        complete = await self.until_delivered(arrivals, self.args.burst * n, 300)
        last = max((t for times in arrivals.at.values() for t in times), default=started)
        took_s = max(last - started, 1e-6)
        return {
            "destinations": n,
            "latency": paced,
            "burst_complete": complete,
            "events_per_s": round(self.args.burst / took_s, 1),
            "deliveries_per_s": round(self.args.burst * n / took_s, 1),
            "bridge_cpu_pct": round((procs.cpu_s(bridge.pid) - cpu) / took_s * 100, 1),
        }

    async def _bridge_mean_ms(self, port: int) -> float | None:
        async with self.session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith("exmail_bridge_event_latency_seconds_sum"):
                total += float(line.split()[-1])
            elif line.startswith("exmail_bridge_event_latency_seconds_count"):
                count += float(line.split()[-1])
        return round(total / count * 1000, 2) if count else None


def _ratios(static: dict[str, Any], subs: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    return {
        "p50": ratio(subs["latency"]["p50_ms"], static["latency"]["p50_ms"]),
        "p99": ratio(subs["latency"]["p99_ms"], static["latency"]["p99_ms"]),
        "events_per_s": ratio(subs["events_per_s"], static["events_per_s"]),
    }


async def _each_count(args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        bench = Bench(args, session, tmp)
        for n in args.counts:
            static = await bench.run("static", n)
            subs = await bench.run("subscription", n)
            results[str(n)] = {
                "static": static,
                "subscription": subs,
                "ratio": _ratios(static, subs),
            }
            if not args.json:
                print(json.dumps({n: results[str(n)]}), file=sys.stderr, flush=True)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-subs-") as tmpdir:
        tmp = Path(tmpdir)
        args.sim_port = procs.free_port()
        sim_argv = procs.python("bench.simserver", "--port", str(args.sim_port), "--uvloop")
        sim = procs.start("sim", [*sim_argv, "--hold-s", "20", "--max-s", "900"], tmp)
        results: dict[str, Any] = {}
        try:
            procs.wait_port(args.sim_port)
            with contextlib.ExitStack() as stack:
                args.redis_url = None
                if args.store == "redis":
                    args.redis_url = stack.enter_context(procs.redis_server(tmp))
                await _each_count(args, tmp, results)
        finally:
            sim.stop()
    return {
        "store": args.store,
        "paced_mails": args.paced,
        "gap_s": args.gap_s,
        "burst_mails": args.burst,
        "runs": results,
        "machine": procs.machine(),
    }


def main() -> int:
    """Run every N, both kinds, and print the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--paced", type=int, default=20, help="mails in the latency phase")
    parser.add_argument("--gap-s", type=float, default=0.2)
    parser.add_argument("--burst", type=int, default=20, help="mails in the throughput phase")
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    args = parser.parse_args()
    report = asyncio.run(_main(args))
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
