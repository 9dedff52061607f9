"""The SQLite store thread's cost per event, measured alone: commit, claim + ack.

    python bench/store_ops.py --json

Runs the store's blocking operations (`bridge.store.sqlite_ops`) straight on one thread,
with no event loop and no GIL contention, over a burst like bench/throughput.py's: events
committed in batches of `--batch` for one unordered sink, then claimed `--claim` at a
time with each claim carrying the acks of the one before (as the dispatcher sends them).
Reports the median over `--rounds` fresh databases of the thread CPU and wall time per
event of each phase, in microseconds. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.events import Event, event_id
from bridge.store import sqlite_ops as ops
from bridge.store.sqlite_schema import connect

_SINK = "hook"


def _events(n: int, batch: int) -> list[list[ops.NewEvent]]:
    out = []
    for k in range(n):
        mailbox = f"user{k % 50}@t{k % 100:05d}.example"
        event = Event(
            id=event_id("acme", "bench", str(k)),
            type="exmail.mail.received",
            tenant="acme",
            mailbox=mailbox,
            time="2026-11-29T05:00:00.123Z",
            data={"from": "Ann <ann@example.com>", "subject": f"mail {k}", "unread": k},
        )
        out.append(ops.NewEvent(event.id, event.to_json(), mailbox, (_SINK,)))
    return [out[i : i + batch] for i in range(0, n, batch)]


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    run()
    return time.thread_time() - cpu0, time.perf_counter() - wall0


def _round(args: argparse.Namespace, folder: Path, n: int) -> dict[str, float]:
    conn = connect(folder / f"bench{n}.db")
    batches = _events(args.events, args.batch)
    now = time.time()

    def commit_all() -> None:  # a commit's time moves on, as the clock would
        for i, batch in enumerate(batches):
            ops.commit(conn, "acme", batch, str(i), now + i * 1e-3, 3600.0)

    def drain() -> None:  # the claim that finds nothing left forgets the last acks
        acked: list[int] = []
        while rows := ops.claim(conn, _SINK, args.claim, now + 60, now + 120, acked):
            acked = [row.row_id for row in rows]

    commit_cpu, commit_wall = _timed(commit_all)
    drain_cpu, drain_wall = _timed(drain)
    assert ops.counts(conn, _SINK) == (0, 0)
    conn.close()
    per = 1e6 / args.events
    return {
        "commit_cpu_us": commit_cpu * per,
        "commit_wall_us": commit_wall * per,
        "claim_ack_cpu_us": drain_cpu * per,
        "claim_ack_wall_us": drain_wall * per,
    }


def main() -> None:
    """Parse the arguments, run the rounds, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64, help="events per commit (a burst: 68)")
    parser.add_argument("--claim", type=int, default=16, help="deliveries per claim")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rounds = [_round(args, Path(tmp), n) for n in range(args.rounds)]
    out: dict[str, Any] = {
        "events": args.events,
        "batch": args.batch,
        "claim": args.claim,
        **{key: round(statistics.median(r[key] for r in rounds), 2) for key in rounds[0]},
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
