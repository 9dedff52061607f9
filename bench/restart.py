"""The restart measurement for bench/connections.py: a bridge started again on its store.

After the bridge holding N has been measured (and stormed), it is stopped and the same
program is started again on the same database. Its tokens are in the store, sealed, so it
should hold every listen with no token request: one upstream request per tenant instead
of two. Reported: process start -> first held and -> all held, the spread between them,
and the token requests the restart caused, next to the floor's spread (bench/floor.py
fetches its tokens before it listens, so its spread covers the listens only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import probe, procs

__all__ = ["restart_report", "restarted_bridge"]


def _token_requests(sim_port: int) -> int:
    return int(probe.get_json(sim_port, "/_bench/connected")["token_requests"])


def restarted_bridge(
    config: Path, *, sim_port: int, n: int, loop: str, tmp: Path, timeout_s: float
) -> dict[str, Any]:
    """Start the bridge of `config` again (its store kept) and time its listens."""
    tokens_before = _token_requests(sim_port)
    argv = procs.python("bench.bridge_run", "-c", str(config), "--loop", loop)
    child = procs.start(f"bridge-restart-{n}", argv, tmp)
    try:
        first_s, all_s = probe.held_times(child, sim_port, n, timeout_s)
    finally:
        child.stop()
    spread_s = None if first_s is None or all_s is None else all_s - first_s
    return {
        "tenants": n,
        "first_held_s": _round(first_s),
        "all_held_s": _round(all_s),  # process start -> all held
        "spread_s": _round(spread_s),  # first held -> all held
        "token_requests": _token_requests(sim_port) - tokens_before,  # expect 0
    }


def restart_report(measured: dict[str, Any] | None, floor_spread_s: float | None) -> Any:
    """The restart's figures with the floor's spread and the ratio between them."""
    if measured is None:
        return None
    spread_s = measured["spread_s"]
    ratio = round(spread_s / floor_spread_s, 2) if spread_s is not None and floor_spread_s else None
    return {**measured, "floor_spread_s": _round(floor_spread_s), "spread_ratio": ratio}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
