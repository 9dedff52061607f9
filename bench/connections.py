"""Memory per held listen, connect time and idle CPU of the bridge vs a bare aiohttp client.

    python bench/connections.py --tenants 10000 --json

One bench simulator process (bench/simserver.py, the `exmail-bridge simulate` app) holds
every listen for --sim-hold-s. Against it, one after the other, never at the same time:
the floor (bench/floor.py: tokens, then N bare `POST /openapi/listen` on one session)
with 0 and with N tenants, then the bridge (`python -m bridge.cli run`, SQLite store in
a temp dir, no sinks) with 0 and with N tenants. Per connection = (RSS with N held -
RSS of the same program with 0) / N, read from /proc/<pid>/status once every poll is
held and a settle time has passed.

Start-up is compared at the same rate cap: the floor then takes every request (token and
listen) from one bucket of --rate a second, like the bridge's `upstream_rate_per_s`, and
`spread_ratio` is the bridge's first-held -> all-held time over the floor's. After the
bridge holds all N, the simulator cuts them at once (the reconnect storm, bench/storm.py);
the floor gets the same storm, so both CPU-seconds per reconnect come from one run, as
do both CPU-seconds per tenant start. Then the bridge is stopped and started again on the
same database (bench/restart.py): its spread, start -> all held, and token requests (0).
Before everything, a bridge with --small tenants is timed from process start to all held
and to its first `/readyz` 200. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import probe, procs
from bench.configs import BridgeSetup, bridge_toml
from bench.restart import restart_report, restarted_bridge
from bench.storm import reconnect_storm, small_start

TARGET_RATIO = 1.5
# The last tenant starts at the end of the window; allow its own connect and the probe's
# 0.1 s polling interval on top.
WINDOW_SLACK_S = 0.5
SPREAD_TARGET = 1.3  # the bridge's start-up spread <= 1.3 x the floor's at the same rate cap
STORMS: dict[str, dict[str, object]] = {}  # loop -> the reconnect storm's figures
RESTARTS: dict[str, dict[str, object]] = {}  # loop -> the restart's figures


@dataclass(frozen=True, slots=True)
class Sample:
    """One program, measured while holding `connected` polls."""

    connected: int
    rss_kib: int
    pss_kib: int
    connect_s: float | None  # start -> all polls held
    first_connect_s: float | None  # start -> first poll held
    idle_cpu_pct: float | None
    machine_busy_pct: float | None  # all cores, every process, from start to all held
    cpu_s: float  # CPU-seconds the process used from its start until all were held
    gc_cpu_s: dict[str, dict[str, float]] | None = None  # the bridge's collector figures then


def _idle_cpu_pct(pid: int, idle_s: float) -> float:
    before = procs.cpu_s(pid)
    time.sleep(idle_s)
    return round((procs.cpu_s(pid) - before) / idle_s * 100, 2)


def _measure(
    child: procs.Child, args: argparse.Namespace, n: int, ready: bool, gc_port: int | None = None
) -> Sample:
    if not ready or not child.alive():
        raise RuntimeError(f"{child.name} did not start:\n{child.tail()}")
    busy_s, since = procs.system_busy_s(), time.monotonic()
    first_s, all_s = (
        probe.held_times(child, args.sim_port, n, args.window_s + args.connect_grace_s)
        if n
        else (None, 0.0)
    )
    took_s = max(time.monotonic() - since, 1e-3)
    cpu_s = procs.cpu_s(child.pid)
    gc_s = probe.gc_figures(gc_port) if gc_port else None
    busy_pct = (procs.system_busy_s() - busy_s) / took_s / (os.cpu_count() or 1) * 100
    time.sleep(args.settle_s)
    rss, pss = procs.rss_kib(child.pid), procs.pss_kib(child.pid)
    idle = _idle_cpu_pct(child.pid, args.idle_s) if n else None
    held = probe.sim_connected(args.sim_port)
    busy = _round(busy_pct) if n else None
    return Sample(held, rss, pss, _round(all_s), _round(first_s), idle, busy, round(cpu_s, 2), gc_s)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _drained(sim_port: int) -> None:
    if not probe.wait_for(lambda: probe.sim_connected(sim_port) == 0, 30.0):
        raise RuntimeError("the simulator still holds listens of a stopped client")


def run_floor(args: argparse.Namespace, n: int, tmp: Path) -> Sample:
    """Start the floor client with `n` tenants, measure it, stop it."""
    argv = procs.python("bench.floor", "--base", f"http://127.0.0.1:{args.sim_port}")
    argv += ["--tenants", str(n), "--loop", args.loop, "--max-s", str(args.max_child_s)]
    argv += ["--rate", str(args.rate)]
    child = procs.start(f"floor-{n}", argv, tmp)
    try:
        ready = probe.wait_for_line(child.log, "floor ready", 120.0)
        sample = _measure(child, args, n, ready)
        if n and args.storm:  # the same storm, for the floor's own CPU per reconnect
            STORMS["floor"] = reconnect_storm(child, args.sim_port, n, args.rate, args.sim_pid)
        return sample
    finally:
        child.stop()
        _drained(args.sim_port)


def run_bridge(args: argparse.Namespace, n: int, tmp: Path) -> Sample:
    """Start the bridge with `n` tenants, measure it, stop it."""
    http_port = procs.free_port()
    setup = BridgeSetup(
        tenants=n,
        sim_port=args.sim_port,
        http_port=http_port,
        store=f"sqlite:///{tmp}/bridge-{n}.db",
        startup_window_s=args.window_s,
        upstream_rate_per_s=args.rate,
        listen_hold_s=args.sim_hold_s + 10,
    )
    config = tmp / f"bridge-{n}.toml"
    config.write_text(bridge_toml(setup))
    # `exmail-bridge run` itself, except that the 0-tenant baseline must be allowed
    argv = procs.python("bench.bridge_run", "-c", str(config), "--loop", args.loop)
    child = procs.start(f"bridge-{n}", argv, tmp)
    try:
        ready = probe.wait_for(lambda: probe.http_ok(http_port, "/healthz"), 120.0)
        sample = _measure(child, args, n, ready, gc_port=http_port)
        if n and args.storm:
            gc_read = partial(probe.gc_figures, http_port)
            STORMS[args.loop] = reconnect_storm(
                child, args.sim_port, n, args.rate, args.sim_pid, gc_read=gc_read
            )
    finally:
        child.stop()
        _drained(args.sim_port)
    if n and args.restart:  # the same program again on the same database (bench/restart.py)
        timeout_s = args.window_s + args.connect_grace_s
        kept = {"sim_port": args.sim_port, "n": n, "loop": args.loop, "tmp": tmp}
        RESTARTS[args.loop] = restarted_bridge(config, **kept, timeout_s=timeout_s)
        _drained(args.sim_port)
    return sample


def _per_conn(loaded: Sample, base: Sample, n: int) -> tuple[float, float]:
    return (
        round((loaded.rss_kib - base.rss_kib) / n, 2),
        round((loaded.pss_kib - base.pss_kib) / n, 2),
    )


def _start_cpu_ms(loaded: Sample, base: Sample, n: int) -> float:
    """CPU per tenant start: (CPU until all held - the same program's start-up CPU) / n."""
    return round((loaded.cpu_s - base.cpu_s) / n * 1000, 3)


def _start_gc(loaded: Sample, base: Sample) -> dict[str, Any] | None:
    """The collector's CPU in the start (beyond the 0-tenant program's), and its share."""
    if loaded.gc_cpu_s is None or base.gc_cpu_s is None:
        return None
    return probe.gc_share(base.gc_cpu_s, loaded.gc_cpu_s, loaded.cpu_s - base.cpu_s)


def report(args: argparse.Namespace, samples: dict[str, Sample]) -> dict[str, object]:
    """The JSON object the benchmark prints."""
    n = args.tenants
    bridge_rss, bridge_pss = _per_conn(samples["bridge_n"], samples["bridge_0"], n)
    floor_rss, floor_pss = _per_conn(samples["floor_n"], samples["floor_0"], n)
    ratio = round(bridge_rss / floor_rss, 2) if floor_rss > 0 else None
    loaded = samples["bridge_n"]
    spread_s, floor_spread_s = _spread(loaded), _spread(samples["floor_n"])
    spread_ratio = (
        round(spread_s / floor_spread_s, 2) if spread_s is not None and floor_spread_s else None
    )
    return {
        "tenants": n,
        "connected": loaded.connected,
        "bridge_kib_per_conn": bridge_rss,
        "floor_kib_per_conn": floor_rss,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "memory_target_met": ratio is not None and ratio <= TARGET_RATIO,
        "bridge_pss_kib_per_conn": bridge_pss,
        "floor_pss_kib_per_conn": floor_pss,
        "connect_s": loaded.connect_s,
        "first_connect_s": loaded.first_connect_s,
        "connect_spread_s": _round(spread_s),
        "floor_connect_s": samples["floor_n"].connect_s,
        "floor_connect_spread_s": _round(floor_spread_s),
        "spread_ratio": spread_ratio,
        "spread_target_ratio": SPREAD_TARGET,
        "spread_target_met": spread_ratio is not None and spread_ratio <= SPREAD_TARGET,
        "rate_per_s": args.rate,
        "startup_window_s": args.window_s,
        "all_connected_within_window": (
            spread_s is not None and spread_s <= args.window_s + WINDOW_SLACK_S
        ),
        "start_cpu_ms_per_tenant": _start_cpu_ms(loaded, samples["bridge_0"], n),
        "start_gc": _start_gc(loaded, samples["bridge_0"]),
        "floor_start_cpu_ms_per_tenant": _start_cpu_ms(samples["floor_n"], samples["floor_0"], n),
        "reconnect_storm": STORMS.get(args.loop),
        "floor_reconnect_storm": STORMS.get("floor"),
        "restart": restart_report(RESTARTS.get(args.loop), floor_spread_s),
        "small_start": SMALL.get("run"),
        "idle_cpu_pct": loaded.idle_cpu_pct,
        "floor_idle_cpu_pct": samples["floor_n"].idle_cpu_pct,
        "idle_window_s": args.idle_s,
        "loop": args.loop,
        "samples": {name: asdict(s) for name, s in samples.items()},
        "machine": procs.machine(),
    }


def _spread(sample: Sample) -> float | None:
    """First listen held -> all held."""
    if sample.connect_s is None or sample.first_connect_s is None:
        return None
    return sample.connect_s - sample.first_connect_s


SMALL: dict[str, dict[str, object]] = {}


def _small(args: argparse.Namespace, tmp: Path) -> None:
    if args.small:
        SMALL["run"] = small_start(args.sim_port, args.small, args.rate, tmp)
        _drained(args.sim_port)
        _say(args, f"small start: {SMALL['run']}")


Step = Callable[[argparse.Namespace, int, Path], Sample]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--window-s", type=float, default=10.0, help="bridge startup_window_s")
    parser.add_argument("--rate", type=float, default=5000.0, help="upstream_rate_per_s")
    parser.add_argument("--sim-hold-s", type=float, default=110.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--connect-grace-s", type=float, default=60.0)
    parser.add_argument("--max-child-s", type=float, default=600.0)
    parser.add_argument(
        "--storm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the bridge holds every listen, cut them all at once and time the return",
    )
    parser.add_argument(
        "--restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then stop the bridge and start it again on the same database (its tokens kept)",
    )
    parser.add_argument(
        "--small", type=int, default=20, help="also time a bridge with this many tenants (0: no)"
    )
    args = parser.parse_args()
    if args.tenants < 1:
        parser.error("--tenants must be at least 1")
    return args


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def main() -> int:
    """Run the four measurements and print the report."""
    args = _parse()
    with tempfile.TemporaryDirectory(prefix="bench-conn-") as tmpdir:
        tmp = Path(tmpdir)
        args.sim_port = procs.free_port()
        sim_argv = procs.python("bench.simserver", "--port", str(args.sim_port), "--uvloop")
        sim_argv += ["--hold-s", str(args.sim_hold_s), "--max-s", str(args.max_child_s)]
        sim = procs.start("sim", sim_argv, tmp)
        args.sim_pid = sim.pid
        samples: dict[str, Sample] = {}
        try:
            procs.wait_port(args.sim_port)
            steps: list[tuple[str, Step, int]] = [
                ("floor_0", run_floor, 0),
                ("floor_n", run_floor, args.tenants),
                ("bridge_0", run_bridge, 0),
                ("bridge_n", run_bridge, args.tenants),
            ]
            _small(args, tmp)
            for name, step, n in steps:
                samples[name] = step(args, n, tmp)
                _say(args, f"{name}: {samples[name]}")
        finally:
            sim.stop()
    print(json.dumps(report(args, samples), indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
