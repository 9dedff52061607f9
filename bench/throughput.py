"""Burst throughput: N mails queued at once at the simulator -> verifying webhook receivers.

    python bench/throughput.py --json

Starts the bench simulator (bench/simserver.py, ndjson framing: a held listen streams every
queued push, so one socket read carries many) and, one after the other, never at the same
time, on the same tenants and the same burst:

1. the floor (bench/passthrough.py): decode, sign, POST, no store, with 1 webhook;
2. the bridge (`python -m bridge.cli run`) on SQLite and on a private Redis (AOF, fsync
   every second, as deploy/ runs it), with 1 and with 3 webhook sinks.

Each run waits until every tenant's listen is held, queues --mails mails in chunks through
`POST /_bench/mails` and stops the clock when the receivers (in this process, every
signature verified, ids counted) have every mail at every sink. It reports events/s (mails
per second end to end) and the program's CPU-seconds per 1,000 mails. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from bench import probe, procs
from bench.configs import BridgeSetup, bridge_toml
from bench.floor import client_id
from bench.latency import _bridge_view
from sinks.signing import verify

SECRET = "whsec_YmVuY2gtc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbg=="
INJECT_CHUNK = 2000
TARGET_FLOOR_RATIO = 0.9  # bridge events/s >= 0.9 x the floor's, 1 sink, each store
TARGET_CPU_RATIO = 1.5  # bridge CPU per 1,000 with 3 sinks <= 1.5 x (floor's with 1) x 3


@dataclass
class Hooks:
    """What the receivers saw: ids per sink, duplicates, bad signatures, last arrival."""

    ids: dict[str, set[str]] = field(default_factory=dict)
    duplicates: int = 0
    bad_signatures: int = 0
    last_at: float = 0.0
    arrival: asyncio.Event = field(default_factory=asyncio.Event)

    def complete(self, sinks: int, mails: int) -> bool:
        """Every mail at every sink."""
        return len(self.ids) >= sinks and all(len(s) >= mails for s in self.ids.values())


@contextlib.asynccontextmanager
async def receiver(hooks: Hooks, port: int) -> AsyncIterator[None]:
    """Serve POST /hook/{n} on 127.0.0.1:`port`, verifying every signature."""

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify([SECRET], request.headers, body):
            hooks.bad_signatures += 1
            return web.Response(status=400)
        seen = hooks.ids.setdefault(request.match_info["n"], set())
        ident = request.headers["webhook-id"]
        hooks.duplicates += ident in seen
        seen.add(ident)
        hooks.last_at = time.monotonic()
        hooks.arrival.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{n}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def _sink_tables(port: int, sinks: int) -> list[str]:
    lines: list[str] = []
    for n in range(sinks):
        lines += ["[[sinks]]", f'name = "hook{n}"', 'type = "webhook"']
        lines += [f'url = "http://127.0.0.1:{port}/hook/{n}"', f'secret = "{SECRET}"', ""]
    return lines


def _mails(args: argparse.Namespace, run: str) -> Iterator[list[dict[str, str]]]:
    chunk: list[dict[str, str]] = []
    for k in range(args.mails):
        i = k % args.tenants
        to = f"user{k % 50}@t{i:05d}.example"
        chunk.append({"tenant": client_id(i), "to": to, "subject": f"{run}-{k}"})
        if len(chunk) == INJECT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _burst(
    args: argparse.Namespace, child: procs.Child, hooks: Hooks, sinks: int, run: str
) -> dict[str, Any]:
    """Queue the burst, wait for every mail at every sink, measure."""
    sim = f"http://127.0.0.1:{args.sim_port}"
    spy = _profiler(args, child, run)
    cpu0, busy0, t0 = procs.cpu_s(child.pid), procs.system_busy_s(), time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for chunk in _mails(args, run):
            async with session.post(f"{sim}/_bench/mails", json={"mails": chunk}) as resp:
                resp.raise_for_status()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.drain_s):
            while not hooks.complete(sinks, args.mails):
                hooks.arrival.clear()
                await hooks.arrival.wait()
    took_s = max(hooks.last_at - t0, 1e-6)
    cpu_s = procs.cpu_s(child.pid) - cpu0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    delivered = min((len(s) for s in hooks.ids.values()), default=0) if hooks.ids else 0
    return {
        "sinks": sinks,
        "delivered_per_sink": delivered,
        "missing": args.mails - delivered,
        "duplicates": hooks.duplicates,
        "bad_signatures": hooks.bad_signatures,
        "took_s": round(took_s, 3),
        "events_per_s": round(delivered / took_s, 1),
        "cpu_s": round(cpu_s, 2),
        "cpu_s_per_1000": round(cpu_s / max(delivered, 1) * 1000, 3),
        "machine_busy_pct": round(
            (procs.system_busy_s() - busy0) / took_s / (os.cpu_count() or 1) * 100, 1
        ),
    }


def _profiler(
    args: argparse.Namespace, child: procs.Child, run: str
) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `child` (raw collapsed stacks into --profile-dir) for the burst."""
    if args.profile_dir is None:
        return None
    out = args.profile_dir / f"{run}.txt"
    argv = ["py-spy", "record", "--pid", str(child.pid), "--format", "raw", "--rate", "200"]
    argv = [str(Path(sys.executable).parent / argv[0]), *argv[1:], "--nonblocking", "-o", str(out)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the burst
    return spy


def _wait_held(args: argparse.Namespace, child: procs.Child) -> None:
    ok = probe.wait_for(lambda: probe.sim_connected(args.sim_port) >= args.tenants, 120.0)
    if not ok or not child.alive():
        raise RuntimeError(f"{child.name} did not hold every listen:\n{child.tail()}")


def _drained(args: argparse.Namespace) -> None:
    if not probe.wait_for(lambda: probe.sim_connected(args.sim_port) == 0, 30.0):
        raise RuntimeError("the simulator still holds listens of a stopped program")


async def run_floor(args: argparse.Namespace, tmp: Path, sinks: int) -> dict[str, Any]:
    """The pass-through with `sinks` webhooks."""
    hooks, port = Hooks(), procs.free_port()
    argv = procs.python("bench.passthrough", "--base", f"http://127.0.0.1:{args.sim_port}")
    argv += ["--tenants", str(args.tenants), "--secret", SECRET, "--max-s", "600"]
    for n in range(sinks):
        argv += ["--hook", f"http://127.0.0.1:{port}/hook/{n}"]
    async with receiver(hooks, port):
        child = procs.start(f"floor-{sinks}", argv, tmp)
        try:
            if not probe.wait_for_line(child.log, "passthrough ready", 60.0):
                raise RuntimeError(f"the floor did not start:\n{child.tail()}")
            _wait_held(args, child)
            return await _burst(args, child, hooks, sinks, f"floor{sinks}")
        finally:
            child.stop()
            _drained(args)


async def run_bridge(args: argparse.Namespace, tmp: Path, store: str, sinks: int) -> dict[str, Any]:
    """The bridge on `store` with `sinks` webhook sinks."""
    if store == "sqlite":
        return await _bridge_burst(args, tmp, store, f"sqlite:///{tmp}/tp-{sinks}.db", sinks)
    redis_dir = tmp / f"redis-{sinks}"
    redis_dir.mkdir()
    with procs.redis_server(redis_dir) as url:
        return await _bridge_burst(args, tmp, store, url, sinks)


async def _bridge_burst(
    args: argparse.Namespace, tmp: Path, store: str, url: str, sinks: int
) -> dict[str, Any]:
    hooks, port, http_port = Hooks(), procs.free_port(), procs.free_port()
    setup = BridgeSetup(
        tenants=args.tenants,
        sim_port=args.sim_port,
        http_port=http_port,
        store=url,
        startup_window_s=1.0,
        upstream_rate_per_s=5000.0,
        listen_hold_s=args.sim_hold_s + 10,
        sinks=_sink_tables(port, sinks),
    )
    config = tmp / f"bridge-{store}-{sinks}.toml"
    config.write_text(bridge_toml(setup))
    async with receiver(hooks, port):
        argv = procs.python("bridge.cli", "run", "-c", str(config))
        child = procs.start(f"bridge-{store}-{sinks}", argv, tmp)
        try:
            if not probe.wait_for(lambda: probe.http_ok(http_port, "/healthz"), 60.0):
                raise RuntimeError(f"the bridge did not start:\n{child.tail()}")
            _wait_held(args, child)
            gc_before = probe.gc_figures(http_port)
            result = await _burst(args, child, hooks, sinks, f"{store}{sinks}")
            result |= probe.gc_share(gc_before, probe.gc_figures(http_port), result["cpu_s"])
            async with aiohttp.ClientSession() as session:
                result["bridge_metrics"] = await _bridge_view(session, http_port)
            return result
        finally:
            child.stop()
            _drained(args)


def _ratios(results: dict[str, dict[str, Any]], stores: list[str]) -> dict[str, Any]:
    floor = results["floor_1"]
    out: dict[str, Any] = {}
    for store in stores:
        one, three = results.get(f"{store}_1"), results.get(f"{store}_3")
        if one:
            ratio = one["events_per_s"] / max(floor["events_per_s"], 1e-9)
            out[f"{store}_1_vs_floor"] = round(ratio, 3)
            out[f"{store}_1_target_met"] = ratio >= TARGET_FLOOR_RATIO and one["missing"] == 0
        if three:
            ratio = three["cpu_s_per_1000"] / max(floor["cpu_s_per_1000"] * 3, 1e-9)
            out[f"{store}_3_cpu_vs_floor_x3"] = round(ratio, 3)
            out[f"{store}_3_target_met"] = ratio <= TARGET_CPU_RATIO and three["missing"] == 0
    return out


async def _all(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {"floor_1": await run_floor(args, tmp, 1)}
    _say(args, f"floor_1: {results['floor_1']}")
    for store in args.stores:
        for sinks in args.sinks:
            name = f"{store}_{sinks}"
            results[name] = await run_bridge(args, tmp, store, sinks)
            _say(args, f"{name}: {results[name]}")
    return results


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "redis"])
    parser.add_argument("--sinks", nargs="+", type=int, choices=[1, 2, 3], default=[1, 3])
    parser.add_argument("--framing", choices=["single", "ndjson", "concat"], default="ndjson")
    parser.add_argument("--sim-hold-s", type=float, default=60.0)
    parser.add_argument("--drain-s", type=float, default=300.0)
    parser.add_argument(
        "--profile-dir", type=Path, help="py-spy every run's burst into DIR/<run>.txt (raw)"
    )
    args = parser.parse_args()
    args.stores = args.stores or ["sqlite", "redis"]
    if args.mails < 1 or args.tenants < 1:
        parser.error("--mails and --tenants must be positive")
    return args


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmpdir:
        tmp = Path(tmpdir)
        args.sim_port = procs.free_port()
        sim_argv = procs.python("bench.simserver", "--port", str(args.sim_port), "--uvloop")
        sim_argv += ["--hold-s", str(args.sim_hold_s), "--framing", args.framing]
        sim = procs.start("sim", [*sim_argv, "--max-s", "1800"], tmp)
        try:
            procs.wait_port(args.sim_port)
            results = await _all(args, tmp)
        finally:
            sim.stop()
    return {
        "mails": args.mails,
        "tenants": args.tenants,
        "framing": args.framing,
        "runs": results,
        **_ratios(results, args.stores),
        "machine": procs.machine(),
    }


def main() -> int:
    """Run the floor and every store/sink combination; print the report."""
    args = _parse()
    import uvloop

    report = uvloop.run(_main(args))
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
