"""The README keeps up with the code it documents."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.support import metric_families

ROOT = Path(__file__).resolve().parents[2]


def test_readme_lists_every_metric() -> None:
    """Each metric family the bridge exports has a row in the README's metrics table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in metric_families() if f"`{name}" not in readme]
    assert missing == []
