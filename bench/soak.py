"""Chaos soak: the real bridge against the simulator while faults fire at random.

    python -m bench.soak --store redis --duration-s 600 --seed 1

Mails go in at a steady rate (to 3 tenants, 5 mailboxes each) while, every few seconds, a
seeded random fault fires and mends: the upstream answering 5xx, 1002, 1200, resets, silent
sockets or invalid JSON; the webhook receiver answering 5xx, answering too late, or hanging;
Redis SIGKILLed and restarted from its AOF; Mosquitto restarted; the bridge SIGKILLed and
restarted. Then everything is mended and the outbox drains. Prints one JSON document and
exits 1 unless every check holds:

- nothing lost: every mail reached every routed sink, or is a dead letter with a reason;
- one id per mail: each mail arrived (on both sinks) under the one id derived from it;
- no dead dispatcher: `exmail_bridge_dispatcher_failing` is 0 for every sink at the end;
- RSS flat: the bridge's RSS grew by less than max(20%, 16 MiB) over its longest life.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import soak_checks as checks
from bench.procs import machine
from bench.soak_faults import Breaker
from bench.soak_world import BUS, HOOK, SINKS, TENANTS, World
from bridge import events
from tests.e2e.process import Scrape

__all__ = ["SoakSettings", "run_soak"]

RSS_SAMPLE_S = 2.0


@dataclass(frozen=True, slots=True)
class SoakSettings:
    """One soak run."""

    store: str = "redis"
    duration_s: float = 60.0
    seed: int = 1
    mails_per_s: float = 4.0
    fault_every_s: float = 3.0
    bridge_kill_every_s: float = 20.0  # at most one bridge SIGKILL this often
    drain_s: float = 120.0
    workdir: Path | None = None


@dataclass
class Tally:
    """What happened during a run."""

    injected: dict[str, str] = field(default_factory=dict)  # subject -> expected event id
    faults: Counter[str] = field(default_factory=Counter)
    rss_kib: list[tuple[int, float, int]] = field(default_factory=list)  # (life, t, kib)
    sent: dict[str, tuple[float, str]] = field(default_factory=dict)  # subject -> (t, tenant)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)  # fault (from, to, name)
    errors: list[str] = field(default_factory=list)


class Soak:
    """Runs one soak in a `World`."""

    def __init__(self, world: World, settings: SoakSettings) -> None:
        self.world = world
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.tally = Tally()
        self.breaker = Breaker(world, self.rng, self.tally, settings)

    async def run(self) -> dict[str, Any]:
        """Inject and break for `duration_s`, mend, drain, check."""
        started = time.monotonic()
        loops = [
            asyncio.create_task(self._inject(), name="soak-inject"),
            asyncio.create_task(self.breaker.run(), name="soak-faults"),
            asyncio.create_task(self._sample_rss(), name="soak-rss"),
        ]
        await asyncio.sleep(self.settings.duration_s)
        for task in loops[:2]:
            task.cancel()
        await asyncio.gather(*loops[:2], return_exceptions=True)
        await self.breaker.mend()
        drained = await self._drain()
        loops[2].cancel()
        await asyncio.gather(loops[2], return_exceptions=True)
        return await self._report(drained, time.monotonic() - started)

    # -- injecting ----------------------------------------------------------------------------

    async def _inject(self) -> None:
        n = 0
        while True:
            n += 1
            name = self.rng.choice(list(TENANTS))
            subject = f"soak-{n:06d}"
            to = f"user{self.rng.randrange(5)}@{name}.test"
            body = {"tenant": TENANTS[name], "to": to, "subject": subject, "summary": "chaos"}
            try:
                answer = await self.world.sim_call("POST", "/_sim/mail", body)
                self.tally.injected[subject] = events.event_id(name, "mail", answer["mail_id"])
                self.tally.sent[subject] = (self.breaker.now(), name)
            except Exception as exc:  # the soak reports it; it never stops injecting
                self.tally.errors.append(f"inject {subject}: {type(exc).__name__}")
            await asyncio.sleep(1 / self.settings.mails_per_s)

    # -- watching -----------------------------------------------------------------------------

    async def _sample_rss(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(RSS_SAMPLE_S)
            bridge = self.world.bridge
            if bridge is not None and bridge.running():
                try:
                    kib = bridge.rss_kib()
                except (OSError, RuntimeError):
                    continue
                t = round(time.monotonic() - started, 1)
                self.tally.rss_kib.append((self.world.incarnation, t, kib))

    def _arrived(self) -> dict[str, dict[str, set[str]]]:
        """Per sink: subject -> the event ids it arrived under."""
        seen: dict[str, dict[str, set[str]]] = {HOOK: defaultdict(set), BUS: defaultdict(set)}
        assert self.world.receiver is not None
        assert self.world.watch is not None
        for hit in self.world.receiver.delivered():
            seen[HOOK][str(hit.event["data"]["subject"])].add(hit.webhook_id)
        for mqtt_hit in self.world.watch.hits:
            seen[BUS][str(mqtt_hit.event["data"]["subject"])].add(mqtt_hit.event_id)
        return seen

    async def _dead(self) -> dict[str, dict[str, str]]:
        """Per sink: subject -> dead letter reason."""
        dead = await self._dead_letters()
        return {sink: {s: why for s, (why, _) in dead[sink].items()} for sink in SINKS}

    def _missing(
        self, arrived: dict[str, dict[str, set[str]]], dead: dict[str, dict[str, str]]
    ) -> dict[str, list[str]]:
        return {
            sink: sorted(
                s for s in self.tally.injected if s not in arrived[sink] and s not in dead[sink]
            )
            for sink in SINKS
        }

    async def _drain(self) -> bool:
        deadline = time.monotonic() + self.settings.drain_s
        while time.monotonic() < deadline:
            try:
                if not any(self._missing(self._arrived(), await self._dead()).values()):
                    return True
            except Exception as exc:  # the store may still be coming back
                self.tally.errors.append(f"drain: {type(exc).__name__}")
            await asyncio.sleep(1.0)
        return False

    # -- the verdict --------------------------------------------------------------------------

    async def _dispatchers_failing(self) -> dict[str, float]:
        scrape = Scrape.parse(await self.world.metrics_text())
        return {s: scrape.value("exmail_bridge_dispatcher_failing", sink=s) for s in SINKS}

    async def _report(self, drained: bool, took_s: float) -> dict[str, Any]:
        arrived, dead = self._arrived(), await self._dead_letters()
        reasons = {sink: {s: why for s, (why, _) in dead[sink].items()} for sink in SINKS}
        dead_ids = {sink: {s: i for s, (_, i) in dead[sink].items()} for sink in SINKS}
        missing = self._missing(arrived, reasons)
        wrong_ids = checks.id_problems(self.tally.injected, arrived, dead_ids)
        failing = await self._dispatchers_failing()
        growth = checks.rss_growth(self.tally.rss_kib)
        assert self.world.receiver is not None
        assert self.world.watch is not None
        verdict = {
            "nothing_lost": not any(missing.values()),
            "one_id_per_mail": not wrong_ids,
            "no_dead_dispatcher": not any(failing.values()) and await self.world.ready(),
            "rss_flat": checks.rss_flat(growth),
        }
        return {
            "store": self.settings.store,
            "seed": self.settings.seed,
            "duration_s": self.settings.duration_s,
            "took_s": round(took_s, 1),
            "drained": drained,
            "injected": len(self.tally.injected),
            "sinks": {
                sink: {
                    "delivered": len(arrived[sink]),
                    "dead": len(reasons[sink]),
                    "lost": len(missing[sink]),
                    "dead_reasons": dict(Counter(reasons[sink].values()).most_common(5)),
                    "lost_sample": missing[sink][:10],
                }
                for sink in SINKS
            },
            "repeats": {
                HOOK: checks.count_repeats(self.world.receiver.delivered_ids()),
                BUS: checks.count_repeats(self.world.watch.ids()),
            },
            "wrong_ids": wrong_ids[:10],
            "lost_near": self._near(sorted({s for lost in missing.values() for s in lost})),
            "faults": dict(sorted(self.tally.faults.items())),
            "bridge_lives": self.world.incarnation,
            "dispatcher_failing": failing,
            "rss": growth,
            "soak_errors": self.tally.errors[:10],
            "checks": verdict,
            "ok": all(verdict.values()),
        }

    def _near(self, subjects: list[str]) -> dict[str, str]:
        """For each lost mail: its tenant, when it went in, and the faults around then."""
        out = {}
        for subject in subjects[:10]:
            at, tenant = self.tally.sent[subject]
            close = [
                f"{name} {start:.1f}-{end:.1f}s"
                for start, end, name in self.tally.timeline
                if start - 5 <= at <= end + 5
            ]
            out[subject] = f"{tenant} at {at:.1f}s; faults near: {', '.join(close) or 'none'}"
        return out

    async def _dead_letters(self) -> dict[str, dict[str, tuple[str, str]]]:
        """Per sink: subject -> (reason, event id) of its dead letter."""
        dead: dict[str, dict[str, tuple[str, str]]] = {sink: {} for sink in SINKS}
        async with self.world.open_store() as store:
            for sink in SINKS:
                for letter in await store.dead_letters(sink, limit=1_000_000):
                    subject = str(letter.event.data.get("subject"))
                    dead[sink][subject] = (letter.reason, letter.event.id)
        return dead


async def run_soak(settings: SoakSettings) -> dict[str, Any]:
    """One soak run; the JSON-able report."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = settings.workdir or Path(tmp)
        run_s = settings.duration_s + settings.drain_s
        async with World(store=settings.store, workdir=workdir, run_s=run_s) as world:
            return await Soak(world, settings).run()


def main() -> int:
    """Run one soak; print its JSON; exit 1 when a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "redis"), default="redis")
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mails-per-s", type=float, default=4.0)
    parser.add_argument(
        "--bridge-kill-every-s",
        type=float,
        default=20.0,
        help="at most one bridge SIGKILL this often",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here")
    args = parser.parse_args()
    settings = SoakSettings(
        store=args.store,
        duration_s=args.duration_s,
        seed=args.seed,
        mails_per_s=args.mails_per_s,
        bridge_kill_every_s=args.bridge_kill_every_s,
        workdir=args.workdir,
    )
    report = asyncio.run(run_soak(settings))
    report["machine"] = machine()
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
