"""Small synchronous probes the bench drivers poll: the simulator's counters, HTTP health."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procs

__all__ = [
    "gc_figures",
    "gc_share",
    "get_json",
    "http_ok",
    "sim_connected",
    "wait_for",
    "wait_for_line",
]


def get_json(port: int, path: str, timeout_s: float = 30.0) -> Any:
    """GET http://127.0.0.1:`port``path` and decode its JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def http_ok(port: int, path: str) -> bool:
    """Whether GET answers 200 right now."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def sim_connected(port: int) -> int:
    """How many listens the bench simulator is holding right now."""
    return int(get_json(port, "/_bench/connected")["connected"])


def wait_for(check: Callable[[], bool], timeout_s: float, every_s: float = 0.1) -> bool:
    """Poll `check` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every_s)
    return check()


def wait_for_line(log: Path, text: str, timeout_s: float) -> bool:
    """Wait until `text` appears in the file `log`."""
    return wait_for(lambda: log.exists() and text in log.read_text(errors="replace"), timeout_s)


_GC_FAMILIES = {
    "exmail_bridge_gc_seconds_total": "cpu_s",
    "exmail_bridge_gc_collections_total": "collections",
    "exmail_bridge_gc_collected_objects_total": "collected",
}


def gc_figures(port: int) -> dict[str, dict[str, float]]:
    """The bridge's collector figures so far ("cpu_s", "collections", "collected"), each by
    generation ("0", "1", "2"), from its /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    found: dict[str, dict[str, float]] = {key: {} for key in _GC_FAMILIES.values()}
    for line in text.splitlines():
        name, _, rest = line.partition('{generation="')
        if name in _GC_FAMILIES:
            found[_GC_FAMILIES[name]][rest.split('"')[0]] = float(line.split()[-1])
    return found


def gc_share(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], cpu_s: float
) -> dict[str, Any]:
    """The collector's work between two `gc_figures` readings, and its share of `cpu_s`."""
    delta = {
        key: {g: round(v - before[key].get(g, 0.0), 3) for g, v in values.items()}
        for key, values in after.items()
    }
    total = sum(delta["cpu_s"].values())
    return {
        "gc_cpu_s": round(total, 3),
        "gc_share": round(total / cpu_s, 3) if cpu_s > 0 else None,
        "gc_by_generation": delta,
    }


def held_times(
    child: procs.Child, sim_port: int, n: int, timeout_s: float
) -> tuple[float | None, float | None]:
    """(first held, all `n` held), seconds after `child` started, as the simulator counts
    them; None where it did not happen within `timeout_s` from now, or before it died."""
    first_s: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.alive():
        held = sim_connected(sim_port)
        now_s = time.monotonic() - child.started_at
        if held and first_s is None:
            first_s = now_s
        if held >= n:
            return first_s, now_s
        time.sleep(0.05)
    return first_s, None
