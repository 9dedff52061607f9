"""Two start-up measurements for bench/connections.py: the reconnect storm and a small start.

- `reconnect_storm`: the simulator cuts every held listen at once (`POST /_bench/drop`);
  how long until all are held again, how many token requests that caused (there should be
  none: every token is still valid), the busiest quarter second of the client's CPU and
  its CPU-seconds per reconnect (the bridge's, and the floor's in the same run).
- `small_start`: a bridge with a few tenants, from process start: when every listen is
  held, and when `/readyz` first answers 200, which must not be before. That is checked by
  asking the simulator right after the first 200 (it counts a listen before answering it,
  the bridge only after): two probes in turn can otherwise see the last listen land
  between them and report the 200 a few ms "before" all were held.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import probe, procs
from bench.configs import BridgeSetup, bridge_toml

__all__ = ["reconnect_storm", "small_start"]

STORM_TARGET = 1.3  # all held again within 1.3 x tenants / rate
SAMPLE_S = 0.25


def _counters(sim_port: int) -> tuple[int, int]:
    body = probe.get_json(sim_port, "/_bench/connected")
    return int(body["connected"]), int(body["token_requests"])


def _drop(sim_port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", sim_port, timeout=30)
    try:
        conn.request("POST", "/_bench/drop")
        return int(json.loads(conn.getresponse().read())["dropped"])
    finally:
        conn.close()


def reconnect_storm(
    child: procs.Child,
    sim_port: int,
    n: int,
    rate: float,
    sim_pid: int,
    gc_read: Callable[[], dict[str, dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """Drop all `n` held listens of `child` at once and time their return.

    Also the CPU-seconds of the simulator's one event-loop thread over the same time: it
    answers every reconnect, so no client can be held again sooner than that. `gc_read`
    (the bridge's collector figures, `probe.gc_figures`) is read before the drop and once
    all are held again, for the collector's share of the storm."""
    _, tokens_before = _counters(sim_port)
    gc_before = gc_read() if gc_read else None
    rss_before = procs.rss_kib(child.pid)
    cpu_before = procs.cpu_s(child.pid)
    sim_before = procs.thread_cpu_s(sim_pid)
    dropped = _drop(sim_port)
    started = time.monotonic()
    cpu_at, cpu_was, peak, held, took_s = started, cpu_before, 0.0, 0, None
    while time.monotonic() - started < 120 and child.alive():
        held, _ = _counters(sim_port)
        now = time.monotonic()
        if now - cpu_at >= SAMPLE_S:
            cpu_now = procs.cpu_s(child.pid)
            peak = max(peak, (cpu_now - cpu_was) / (now - cpu_at) * 100)
            cpu_at, cpu_was = now, cpu_now
        if held >= n:
            took_s = now - started
            break
        time.sleep(0.05)
    cpu_s = procs.cpu_s(child.pid) - cpu_before
    sim_s = procs.thread_cpu_s(sim_pid) - sim_before
    gc = probe.gc_share(gc_before, gc_read(), cpu_s) if gc_read and gc_before is not None else {}
    _, tokens_after = _counters(sim_port)
    target_s = STORM_TARGET * n / rate
    return {
        "dropped": dropped,
        "held_again": held,
        "all_held_again_s": None if took_s is None else round(took_s, 2),
        "target_s": round(target_s, 2),
        "target_met": took_s is not None and took_s <= target_s and tokens_after == tokens_before,
        "token_requests": tokens_after - tokens_before,
        "peak_cpu_pct": round(peak, 1),
        "cpu_s": round(cpu_s, 2),  # from the drop until all held again
        "cpu_ms_per_reconnect": round(cpu_s / max(dropped, 1) * 1000, 3),
        # The simulator's loop thread, drop -> all held: a lower bound on all_held_again_s.
        "simulator_loop_cpu_s": round(sim_s, 2),
        "simulator_ms_per_reconnect": round(sim_s / max(dropped, 1) * 1000, 3),
        "rss_kib_before": rss_before,
        "rss_kib_after": procs.rss_kib(child.pid),  # all held again
        **gc,
    }


def small_start(sim_port: int, tenants: int, rate: float, tmp: Path) -> dict[str, Any]:
    """Start a bridge with `tenants` tenants; time all held and the first /readyz 200."""
    http_port = procs.free_port()
    setup = BridgeSetup(
        tenants=tenants,
        sim_port=sim_port,
        http_port=http_port,
        store=f"sqlite:///{tmp}/small.db",
        startup_window_s=10.0,  # the old default: a bound now, no longer a delay
        upstream_rate_per_s=rate,
        listen_hold_s=120.0,
    )
    config = tmp / "small.toml"
    config.write_text(bridge_toml(setup))
    child = procs.start("bridge-small", procs.python("bridge.cli", "run", "-c", str(config)), tmp)
    held_s = ready_s = None
    held_at_ready = 0
    try:
        while time.monotonic() - child.started_at < 30 and child.alive():
            now_s = time.monotonic() - child.started_at
            if held_s is None and probe.sim_connected(sim_port) >= tenants:
                held_s = now_s
            if ready_s is None and probe.http_ok(http_port, "/readyz"):
                ready_s = time.monotonic() - child.started_at
                # The simulator counts a listen before it answers, the bridge after: when
                # /readyz is honest, every listen is counted the moment it says 200.
                held_at_ready = probe.sim_connected(sim_port)
            if held_s is not None and ready_s is not None:
                break
            time.sleep(0.02)
    finally:
        child.stop()
    return {
        "tenants": tenants,
        "all_held_s": None if held_s is None else round(held_s, 3),
        "readyz_200_s": None if ready_s is None else round(ready_s, 3),
        "held_at_readyz_200": held_at_ready,
        "readyz_not_before_held": ready_s is not None and held_at_ready >= tenants,
        "target_met": held_s is not None and held_s < 1.0,
    }
