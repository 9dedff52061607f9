"""Routine per-tenant events are counted into one summary log line."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from bridge.tally import Tally


async def test_many_notes_make_one_summary_line() -> None:
    """Three reconnects of two kinds are one line with the counts by reason."""
    tally = Tally("listens_reconnected", every_s=60.0)
    with capture_logs() as logs:
        for reason in ("reset", "reset", "timeout"):
            tally.note(reason)
        tally.flush()
        tally.flush()  # nothing new: no second line
    lines = [entry for entry in logs if entry["event"] == "listens_reconnected"]
    assert len(lines) == 1
    assert lines[0]["count"] == 3
    assert lines[0]["reasons"] == {"reset": 2, "timeout": 1}


async def test_summary_line_follows_by_itself() -> None:
    """Without a flush, the line is logged once the interval has passed."""
    tally = Tally("listens_reconnected", every_s=0.01)
    with capture_logs() as logs:
        tally.note("reset")
        async with asyncio.timeout(10):
            while not logs:
                await asyncio.sleep(0.01)
    assert logs[0]["count"] == 1
