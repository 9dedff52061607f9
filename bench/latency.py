"""End-to-end latency: a mail injected at the simulator -> a webhook and an MQTT message.

    python bench/latency.py --json

Starts the bench simulator (bench/simserver.py), a private mosquitto and (for the Redis
run) a private redis-server on free loopback ports, then for each store backend a bridge
(`python -m bridge.cli run`) with --tenants tenants and two sinks: a webhook to a receiver
in this process that verifies every signature, and MQTT to the private broker, watched by
a subscriber in this process. After a warm-up it injects --rate mails per second (random
tenants) for --duration-s seconds via `POST /_sim/mail`, and times each mail from just
before its injection request to its arrival at each sink. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench import procs
from bench.configs import BridgeSetup, bridge_toml
from bench.floor import client_id
from bench.receivers import Recorder, mqtt_subscriber, percentiles, webhook_receiver

SECRET = "whsec_YmVuY2gtc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbg=="
HOOK_PATH = "/hooks/exmail"
MQTT_TOPIC = "exmail/+/+/mail"
SINKS = ["webhook", "mqtt"]
TARGET_P99_MS = 50.0


def _sink_tables(hook_port: int, mqtt_port: int) -> list[str]:
    return [
        "[[sinks]]",
        'name = "webhook"',
        'type = "webhook"',
        f'url = "http://127.0.0.1:{hook_port}{HOOK_PATH}"',
        f'secret = "{SECRET}"',
        "",
        "[[sinks]]",
        'name = "mqtt"',
        'type = "mqtt"',
        f'url = "mqtt://127.0.0.1:{mqtt_port}"',
        "",
    ]


class Run:
    """One backend's run: the bridge process plus the injector."""

    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
        self.args = args
        self.session = session
        self.sim = f"http://127.0.0.1:{args.sim_port}"
        self.rng = random.Random(7)

    async def connected(self) -> int:
        """Listens the simulator holds right now."""
        async with self.session.get(f"{self.sim}/_bench/connected") as resp:
            return int((await resp.json())["connected"])

    async def wait_connected(self, n: int, timeout_s: float) -> bool:
        """Wait until exactly `n` listens are held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.connected() == n:
                return True
            await asyncio.sleep(0.1)
        return False

    async def inject(self, recorder: Recorder, subject: str) -> None:
        """Ask the simulator for one mail to a random tenant; note when."""
        i = self.rng.randrange(self.args.tenants)
        body = {
            "tenant": client_id(i),
            "to": f"user{self.rng.randrange(20)}@t{i:05d}.example",
            "from": '"Bench"<bench@example.com>',
            "subject": subject,
            "summary": "latency bench",
        }
        recorder.sent_at[subject] = time.monotonic()
        async with self.session.post(f"{self.sim}/_sim/mail", json=body) as resp:
            resp.raise_for_status()

    async def inject_steady(self, recorder: Recorder, prefix: str, count: int) -> float:
        """Inject `count` mails at --rate per second; the rate actually achieved."""
        started = time.monotonic()
        for k in range(count):
            delay_s = started + k / self.args.rate - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            await self.inject(recorder, f"{prefix}-{k:06d}")
        return count / max(time.monotonic() - started, 1e-9)

    async def wait_delivered(self, recorder: Recorder, timeout_s: float) -> None:
        """Wait until every injected mail reached every sink (or `timeout_s`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not recorder.complete(SINKS):
                    recorder.arrival.clear()
                    await recorder.arrival.wait()


async def _backend_run(
    args: argparse.Namespace, store_name: str, store_url: str, tmp: Path
) -> dict[str, Any]:
    recorder = Recorder()
    subscribed = asyncio.Event()
    hook_port = procs.free_port()
    setup = BridgeSetup(
        tenants=args.tenants,
        sim_port=args.sim_port,
        http_port=procs.free_port(),
        store=store_url,
        startup_window_s=args.window_s,
        upstream_rate_per_s=args.upstream_rate,
        listen_hold_s=args.sim_hold_s + 10,
        sinks=_sink_tables(hook_port, args.mqtt_port),
    )
    config = tmp / f"latency-{store_name}.toml"
    config.write_text(bridge_toml(setup))
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        webhook_receiver(recorder, port=hook_port, path=HOOK_PATH, secrets=[SECRET]),
    ):
        watcher = asyncio.create_task(
            mqtt_subscriber(recorder, port=args.mqtt_port, topic=MQTT_TOPIC, subscribed=subscribed),
            name="bench-mqtt",
        )
        bridge = procs.start(
            f"bridge-{store_name}", procs.python("bridge.cli", "run", "-c", str(config)), tmp
        )
        try:
            await asyncio.wait_for(subscribed.wait(), 10)
            result = await _measure(Run(args, session), recorder, bridge)
            result["bridge_metrics"] = await _bridge_view(session, setup.http_port)
            return result
        finally:
            bridge.stop()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            await Run(args, session).wait_connected(0, 30)


async def _measure(run: Run, recorder: Recorder, bridge: procs.Child) -> dict[str, Any]:
    args = run.args
    if not await run.wait_connected(args.tenants, args.window_s + 60):
        raise RuntimeError(f"the bridge did not connect every tenant:\n{bridge.tail()}")
    await run.inject_steady(recorder, "warmup", int(args.rate))  # one second's worth
    await run.wait_delivered(recorder, args.drain_s)
    recorder.reset()
    count = int(args.rate * args.duration_s)
    started, busy_s, bridge_s = time.monotonic(), procs.system_busy_s(), procs.cpu_s(bridge.pid)
    achieved = await run.inject_steady(recorder, "mail", count)
    await run.wait_delivered(recorder, args.drain_s)
    took_s = time.monotonic() - started
    sinks = {
        sink: {
            **percentiles(list(recorder.latency_s.get(sink, {}).values())),
            "missing": count - len(recorder.latency_s.get(sink, {})),
            "duplicates": recorder.duplicates.get(sink, 0),
        }
        for sink in SINKS
    }
    return {
        "injected": count,
        "injected_per_s": round(achieved, 1),
        "bad_signatures": recorder.bad_signatures,
        "bridge_cpu_pct": round((procs.cpu_s(bridge.pid) - bridge_s) / took_s * 100, 1),
        "machine_busy_pct": round(
            (procs.system_busy_s() - busy_s) / took_s / (os.cpu_count() or 1) * 100, 1
        ),
        "sinks": sinks,
    }


VIEW_METRICS = ("event_latency_seconds", "delivery_duration_seconds")


async def _bridge_view(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    """The bridge's own histograms (warm-up included): cumulative counts per bucket."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    view: dict[str, Any] = {}
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        metric = name.removeprefix("exmail_bridge_").removesuffix("_bucket")
        if not name.endswith("_bucket") or metric not in VIEW_METRICS:
            continue
        labels = dict(part.split("=", 1) for part in rest.split("}")[0].split(","))
        sink, le = labels["sink"].strip('"'), labels["le"].strip('"')
        view.setdefault(metric, {}).setdefault(sink, {})[f"le_{le}"] = float(rest.split()[-1])
    return view


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    worst = max(
        (s["p99_ms"] or float("inf") for r in results.values() for s in r["sinks"].values()),
        default=float("inf"),
    )
    lost = sum(s["missing"] for r in results.values() for s in r["sinks"].values())
    return {
        "worst_p99_ms": worst,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": worst <= TARGET_P99_MS and lost == 0,
        "missing_total": lost,
    }


async def _all_backends(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in args.stores:
        if name == "sqlite":
            results[name] = await _backend_run(args, name, f"sqlite:///{tmp}/latency.db", tmp)
        else:
            with procs.redis_server(tmp) as url:
                results[name] = await _backend_run(args, name, url, tmp)
        _say(args, f"{name}: {json.dumps(results[name])}")
    return results


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def _deployed_nodelay() -> bool:
    """Whether the broker config we ship turns Nagle's algorithm off."""
    conf = procs.REPO / "deploy" / "mosquitto" / "mosquitto.conf"
    try:
        lines = conf.read_text().splitlines()
    except OSError:
        return False
    return any(line.split() == ["set_tcp_nodelay", "true"] for line in lines)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="mails per second")
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "redis"])
    parser.add_argument("--framing", choices=["single", "ndjson", "concat"], default="single")
    parser.add_argument("--window-s", type=float, default=2.0, help="bridge startup_window_s")
    parser.add_argument("--upstream-rate", type=float, default=5000.0)
    parser.add_argument("--sim-hold-s", type=float, default=60.0)
    parser.add_argument(
        "--broker-nodelay",
        action=argparse.BooleanOptionalAction,
        help="mosquitto with set_tcp_nodelay true (default: as deploy/mosquitto ships it)",
    )
    parser.add_argument("--drain-s", type=float, default=30.0)
    args = parser.parse_args()
    args.stores = args.stores or ["sqlite", "redis"]
    if args.broker_nodelay is None:
        args.broker_nodelay = _deployed_nodelay()
    if args.tenants < 1 or args.rate <= 0 or args.duration_s <= 0:
        parser.error("--tenants, --rate and --duration-s must be positive")
    return args


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmpdir:
        tmp = Path(tmpdir)
        args.sim_port = procs.free_port()
        sim_argv = procs.python("bench.simserver", "--port", str(args.sim_port), "--uvloop")
        sim_argv += ["--hold-s", str(args.sim_hold_s), "--framing", args.framing]
        sim = procs.start("sim", [*sim_argv, "--max-s", "900"], tmp)
        try:
            procs.wait_port(args.sim_port)
            with procs.mosquitto_server(tmp, nodelay=args.broker_nodelay) as args.mqtt_port:
                results = await _all_backends(args, tmp)
        finally:
            sim.stop()
    return {
        "tenants": args.tenants,
        "rate_per_s": args.rate,
        "duration_s": args.duration_s,
        "framing": args.framing,
        "broker_tcp_nodelay": args.broker_nodelay,
        "stores": results,
        **_summary(results),
        "machine": procs.machine(),
    }


def main() -> int:
    """Run every backend and print the report."""
    args = _parse()
    import uvloop

    report = uvloop.run(_main(args))
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
