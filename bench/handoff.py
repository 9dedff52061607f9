"""Hand-off between two replicas on Redis: the longest time a tenant has no held listen.

    python bench/handoff.py --json

Starts a private redis-server, the bench simulator and a verifying webhook receiver, then
two bridges (`python -m bridge.cli run`, replicas `a` and `b`) on the same Redis with
--tenants tenants. Mails go to random tenants at --mail-rate a second the whole time. Once
the two have split the tenants:

1. replica `a` is stopped gracefully (SIGTERM) and, as in a rolling restart, started again
   (the watch covers both its leaving and its joining);
2. replica `b` is SIGKILLed.

During each step the simulator's held listens are read every --poll-s
(`GET /_bench/held`), and each tenant's longest gap without one is noted from the signal
(or kill) on. At the end every injected mail must have reached the webhook (the legacy
protocol cannot replay a push, so a push written into a killed replica's socket is lost:
that is counted, not hidden). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench import procs
from bench.configs import BridgeSetup, bridge_toml, tenant_name
from bench.floor import client_id
from bench.throughput import SECRET, Hooks, receiver
from bridge.events import event_id

GRACEFUL_TARGET_S = 2.0
KILL_SLACK_S = 2.0  # SIGKILL gap target: lease_ttl_s + this


class Bench:
    """The shared parts: simulator URL, one HTTP session, the receiver's record."""

    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession) -> None:
        self.args = args
        self.session = session
        self.sim = f"http://127.0.0.1:{args.sim_port}"
        self.hooks = Hooks()
        self.sent = 0
        self.sent_at: dict[str, float] = {}  # event id -> when the mail was injected
        self.marks: dict[str, float] = {}  # "sigterm", "sigkill" -> when
        self.rng = random.Random(11)

    async def held(self) -> set[str]:
        """Client ids with a listen held right now."""
        async with self.session.get(f"{self.sim}/_bench/held") as resp:
            return set((await resp.json())["held"])

    async def inject(self, stop: asyncio.Event) -> None:
        """Send mails to random tenants at --mail-rate until `stop`."""
        while not stop.is_set():
            i = self.rng.randrange(self.args.tenants)
            mail = {"tenant": client_id(i), "to": f"u@t{i:05d}.example", "subject": f"m{self.sent}"}
            async with self.session.post(f"{self.sim}/_sim/mail", json=mail) as resp:
                if resp.status != 404:  # 404: the tenant has not asked for a token yet
                    resp.raise_for_status()
                    mail_id = (await resp.json())["mail_id"]
                    self.sent_at[event_id(tenant_name(i), "mail", mail_id)] = time.monotonic()
                    self.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / self.args.mail_rate)

    async def gaps(self, watch_s: float) -> dict[str, float]:
        """Each tenant's longest stretch without a held listen over the next `watch_s`."""
        everyone = {client_id(i) for i in range(self.args.tenants)}
        last_seen = dict.fromkeys(everyone, time.monotonic())
        longest = dict.fromkeys(everyone, 0.0)
        deadline = time.monotonic() + watch_s
        while time.monotonic() < deadline:
            held, now = await self.held(), time.monotonic()
            for tenant in everyone:
                if tenant in held:
                    longest[tenant] = max(longest[tenant], now - last_seen[tenant])
                    last_seen[tenant] = now
            await asyncio.sleep(self.args.poll_s)
        now = time.monotonic()
        return {t: max(longest[t], now - last_seen[t]) for t in everyone}

    async def settled(self, timeout_s: float) -> bool:
        """Every tenant held, and still so after one rebalance tick."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(await self.held()) >= self.args.tenants:
                await asyncio.sleep(self.args.lease_ttl_s / 3 + 1)
                if len(await self.held()) >= self.args.tenants:
                    return True
            await asyncio.sleep(0.2)
        return False


def _sink(port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}/hook/0"
    return [
        "[[sinks]]",
        'name = "hook"',
        'type = "webhook"',
        f'url = "{url}"',
        f'secret = "{SECRET}"',
    ]


def _start(args: argparse.Namespace, tmp: Path, name: str, hook_port: int) -> procs.Child:
    setup = BridgeSetup(
        tenants=args.tenants,
        sim_port=args.sim_port,
        http_port=procs.free_port(),
        store=args.redis_url,
        startup_window_s=10.0,
        upstream_rate_per_s=5000.0,
        listen_hold_s=args.sim_hold_s + 10,
        instance_id=name,
        lease_ttl_s=args.lease_ttl_s,
        sinks=_sink(hook_port),
    )
    config = tmp / f"replica-{name}.toml"
    config.write_text(bridge_toml(setup))
    return procs.start(f"replica-{name}", procs.python("bridge.cli", "run", "-c", str(config)), tmp)


def _summary(gaps: dict[str, float]) -> dict[str, float]:
    ordered = sorted(gaps.values())
    return {
        "max_gap_s": round(ordered[-1], 3),
        "p50_gap_s": round(ordered[len(ordered) // 2], 3),
        "p99_gap_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    }


async def _steps(bench: Bench, tmp: Path, hook_port: int) -> dict[str, Any]:
    args = bench.args
    a = _start(args, tmp, "a", hook_port)
    b = _start(args, tmp, "b", hook_port)
    try:
        if not await bench.settled(60):
            raise RuntimeError(f"the replicas did not settle:\n{a.tail()}\n{b.tail()}")
        # The watch covers the whole rolling restart: a leaves, and a joins again.
        watch = asyncio.create_task(bench.gaps(args.watch_s * 2 + 4))
        await asyncio.sleep(args.poll_s * 2)
        bench.marks["sigterm"] = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(a.proc.wait, 30)
        a = _start(args, tmp, "a", hook_port)
        graceful = _summary(await watch)
        if not await bench.settled(60):
            raise RuntimeError(f"the restarted replica did not settle:\n{a.tail()}")
        watch = asyncio.create_task(bench.gaps(args.lease_ttl_s + args.watch_s))
        await asyncio.sleep(args.poll_s * 2)
        bench.marks["sigkill"] = time.monotonic()
        b.proc.kill()
        killed = _summary(await watch)
        return {"graceful": graceful, "sigkill": killed}
    finally:
        await asyncio.to_thread(a.stop)
        await asyncio.to_thread(b.stop)


async def _run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    hook_port = procs.free_port()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        contextlib.AsyncExitStack() as stack,
    ):
        bench = Bench(args, session)
        await stack.enter_async_context(receiver(bench.hooks, hook_port))
        stop = asyncio.Event()
        injector = asyncio.create_task(bench.inject(stop))
        try:
            steps = await _steps(bench, tmp, hook_port)
        finally:
            stop.set()
            await injector
        survivor = _start(args, tmp, "c", hook_port)  # delivers what the killed one left
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.lease_ttl_s + 30):
                    while not bench.hooks.complete(1, bench.sent):
                        bench.hooks.arrival.clear()
                        await bench.hooks.arrival.wait()
        finally:
            await asyncio.to_thread(survivor.stop)
        got = bench.hooks.ids.get("0", set())
        lost = {
            ident: {m: round(at - t, 3) for m, t in bench.marks.items()}
            for ident, at in bench.sent_at.items()
            if ident not in got
        }
        return {
            **steps,
            "mails_sent": bench.sent,
            "mails_lost": len(lost),
            "lost_sent_after_s": list(lost.values()),  # seconds after each signal
        }


def _report(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    kill_target = args.lease_ttl_s + KILL_SLACK_S
    return {
        "tenants": args.tenants,
        "lease_ttl_s": args.lease_ttl_s,
        **result,
        "graceful_target_s": GRACEFUL_TARGET_S,
        "graceful_target_met": result["graceful"]["max_gap_s"] <= GRACEFUL_TARGET_S,
        "sigkill_target_s": kill_target,
        "sigkill_target_met": result["sigkill"]["max_gap_s"] <= kill_target,
        "machine": procs.machine(),
    }


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--lease-ttl-s", type=float, default=10.0)
    parser.add_argument("--mail-rate", type=float, default=20.0, help="mails per second")
    parser.add_argument("--watch-s", type=float, default=6.0)
    parser.add_argument("--poll-s", type=float, default=0.05)
    parser.add_argument("--sim-hold-s", type=float, default=110.0)
    return parser.parse_args()


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-handoff-") as tmpdir:
        tmp = Path(tmpdir)
        args.sim_port = procs.free_port()
        sim_argv = procs.python("bench.simserver", "--port", str(args.sim_port), "--uvloop")
        sim = procs.start("sim", [*sim_argv, "--hold-s", str(args.sim_hold_s)], tmp)
        try:
            procs.wait_port(args.sim_port)
            with procs.redis_server(tmp) as args.redis_url:
                return _report(args, await _run(args, tmp))
        finally:
            sim.stop()


def main() -> int:
    """Run both hand-offs and print the report."""
    args = _parse()
    import uvloop

    report = uvloop.run(_main(args))
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
