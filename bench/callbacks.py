"""Callbacks per second the receiver commits, against a bare verify-decrypt-answer handler.

    python bench/callbacks.py --json

For each store backend (SQLite; Redis on a private redis-server), and in the same run:

1. the **floor**: `bench/callback_bare.py`, an aiohttp process that only verifies,
   decrypts and answers (the bridge's own verification code, no store);
2. the **bridge**: `python -m bridge.cli run` with one `api` tenant in callback mode and one
   webhook sink, so each commit writes the outbox as in production; the sink's first
   attempt is an hour away (`retry_s = [3600]`), so the dispatcher's sends are not part of
   this measurement (bench/latency.py measures delivery).

The same load hits both: --requests distinct Mail callbacks (sealed and signed before the
clock starts, fresh nonces and MailIDs), sent by --concurrency concurrent senders over
keep-alive connections after a warm-up. Reported: callbacks/s, the answer time of each
request (p50/p99), the ratio bridge/floor, and the pass/fail of the targets (ratio >= 0.7,
bridge p99 < 50 ms). The bridge's own count of committed callbacks is checked.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench import probe, procs
from bench.callback_load import AES_KEY, CORP, TOKEN, paced, seal_all, send_all

TARGET_RATIO = 0.7
TARGET_P99_MS = 50.0


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then time --requests callbacks (sealed beforehand); the load is the same."""
    await send_all(url, seal_all(args.warmup), args.concurrency)
    batch = seal_all(args.requests)
    busy_before, began = procs.system_busy_s(), time.monotonic()
    result = await send_all(url, batch, args.concurrency)
    wall = time.monotonic() - began
    result["machine_busy_pct"] = round(100 * (procs.system_busy_s() - busy_before) / wall, 1)
    return result


def _bridge_toml(store: str, port: int, dead_port: int) -> str:
    return "\n".join(
        [
            "[bridge]",
            f'store = "{store}"',
            f'http_listen = "127.0.0.1:{port}"',
            'instance_id = "bench"',
            'log_level = "warning"',
            'log_format = "json"',
            "",
            "[[tenants]]",
            'name = "bench"',
            'protocol = "api"',
            f'corp_id = "{CORP}"',
            'corp_secret = "unused-in-callback-mode"',
            f'callback_token = "{TOKEN}"',
            f'callback_aes_key = "{AES_KEY}"',
            "",
            "[[sinks]]",
            'name = "oa"',
            'type = "webhook"',
            f'url = "http://127.0.0.1:{dead_port}/hook"',
            'secret = "whsec_YmVuY2gtc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbg=="',
            "retry_s = [3600]",
            "",
        ]
    )


@contextmanager
def _child(name: str, argv: list[str], tmp: Path, ready: Any) -> Iterator[procs.Child]:
    """Run a child until the block ends; `ready()` must hold within 30 s."""
    child = procs.start(name, argv, tmp)
    try:
        if not probe.wait_for(ready, 30.0):
            raise RuntimeError(f"{name} did not start:\n{child.tail()}")
        yield child
    finally:
        child.stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _committed(port: int) -> int:
    """The bridge's own count of committed callbacks (from /metrics)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    prefix = 'exmail_bridge_callbacks_total{outcome="committed"}'
    return sum(
        int(float(line.split()[-1])) for line in text.splitlines() if line.startswith(prefix)
    )


def _floor_argv(port: int) -> list[str]:
    argv = procs.python("bench.callback_bare", "--port", str(port), "--token", TOKEN)
    return [*argv, "--aes-key", AES_KEY, "--corp-id", CORP]


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, and every round's rate and p99."""
    ordered = sorted(runs, key=lambda r: float(r["per_s"]))
    return {
        **ordered[len(ordered) // 2],
        "rounds_per_s": [r["per_s"] for r in runs],
        "rounds_p99_ms": [r["p99_ms"] for r in runs],
    }


async def run_store(
    args: argparse.Namespace, tmp: Path, backend: str, store: str
) -> dict[str, Any]:
    """Floor and bridge side by side on one store backend, measured in alternation."""
    floor_port, bridge_port = procs.free_port(), procs.free_port()
    config = tmp / f"bridge-{backend}.toml"
    config.write_text(_bridge_toml(store, bridge_port, procs.free_port()), encoding="utf-8")
    bridge_argv = procs.python("bridge.cli", "run", "-c", str(config))
    floors: list[dict[str, Any]] = []
    bridges: list[dict[str, Any]] = []
    with (
        _child(f"floor-{backend}", _floor_argv(floor_port), tmp, lambda: _accepts(floor_port)),
        _child(
            f"bridge-{backend}", bridge_argv, tmp, lambda: probe.http_ok(bridge_port, "/readyz")
        ),
    ):
        # The open-loop phase first, on fresh processes with empty stores.
        batches = [seal_all(int(args.paced_rate * args.paced_s)) for _ in range(2)]
        rate = args.paced_rate
        floor_paced = await paced(_url(floor_port), batches[0], args.concurrency, rate)
        bridge_paced = await paced(_url(bridge_port), batches[1], args.concurrency, rate)
        for _ in range(args.rounds):
            floors.append(await measure(_url(floor_port), args))
            bridges.append(await measure(_url(bridge_port), args))
        committed = _committed(bridge_port)
    floor, bridge = _median(floors), _median(bridges)
    bridge["committed_by_bridge"] = committed
    sent = args.rounds * (args.requests + args.warmup) + len(batches[1])
    bridge["all_committed"] = committed == sent
    ratio = round(bridge["per_s"] / floor["per_s"], 3)
    p99 = bridge_paced["p99_ms"]
    return {
        "floor": floor,
        "bridge": bridge,
        "floor_paced": floor_paced,
        "bridge_paced": bridge_paced,
        "ratio": ratio,
        "ratio_ok": ratio >= TARGET_RATIO,
        "p99_ok": p99 is not None and p99 < TARGET_P99_MS,
    }


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/exmail/callback/bench"


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as tmpdir:
        tmp = Path(tmpdir)
        if "sqlite" in args.stores:
            store = f"sqlite:///{tmp / 'data' / 'bridge.db'}"
            results["sqlite"] = await run_store(args, tmp, "sqlite", store)
        if "redis" in args.stores:
            with procs.redis_server(tmp) as url:
                results["redis"] = await run_store(args, tmp, "redis", url)
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "paced_rate_per_s": args.paced_rate,
        "targets": {"ratio": TARGET_RATIO, "p99_ms": TARGET_P99_MS},
        "stores": results,
        "met": all(
            r["ratio_ok"] and r["p99_ok"] and r["bridge"]["all_committed"] for r in results.values()
        ),
        "machine": procs.machine(),
    }


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the JSON on one line")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="floor/bridge alternations")
    parser.add_argument("--paced-rate", type=float, default=300.0, help="open-loop callbacks/s")
    parser.add_argument("--paced-s", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "redis"])
    args = parser.parse_args()
    args.stores = args.stores or ["sqlite", "redis"]
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--requests and --concurrency must be positive")
    return args


def main() -> int:
    """Run every backend and print the report."""
    args = _parse()
    import uvloop

    report = uvloop.run(_main(args))
    print(json.dumps(report, indent=None if args.json else 2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
