"""The chaos soak, one minute of it, in the test suite (the 10-minute runs: bench/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakSettings, run_soak


@pytest.mark.timeout(400)
async def test_one_minute_of_chaos_loses_nothing(tmp_path: Path) -> None:
    """60 s of random faults on Redis: nothing lost, one id per mail, no dead dispatcher."""
    settings = SoakSettings(store="redis", duration_s=60.0, seed=10, workdir=tmp_path)
    report = await run_soak(settings)
    assert report["checks"] == {
        "nothing_lost": True,
        "one_id_per_mail": True,
        "no_dead_dispatcher": True,
        "rss_flat": True,
    }, report
    assert report["injected"] > 100
    assert sum(report["faults"].values()) >= 8
