"""The README keeps up with the code it documents."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.deploy.support import metric_families

ROOT = Path(__file__).resolve().parents[2]


def test_readme_lists_every_metric() -> None:
    """Each metric family the bridge exports has a row in the README's metrics table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in metric_families() if f"`{name}" not in readme]
    assert missing == []


def test_every_test_has_a_one_line_docstring() -> None:
    """Every test function in tests/ states the behaviour it pins in a one-line docstring."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                doc = ast.get_docstring(node, clean=False)
                if not doc or "\n" in doc.strip():
                    offenders.append(f"{path.relative_to(ROOT)}::{node.name}")
    assert offenders == []
