"""Shared helpers of the deploy-kit tests: paths, YAML, promtool, and exported metric names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
K8S = DEPLOY / "k8s"
GRAFANA = DEPLOY / "grafana"
DOCS = ROOT / "docs" / "deploy.md"

_METRIC_RE = re.compile(r"\bexmail_bridge_[a-z0-9_]+\b")
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def load_yaml(path: Path) -> Any:
    """The single YAML document in `path`."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_all(path: Path) -> list[Any]:
    """Every non-empty YAML document in `path`."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def metric_families() -> dict[str, str]:
    """Metric family name → type, for every object in bridge.metrics.REGISTRY."""
    return {family.name: family.type for family in REGISTRY.collect()}


def exported_series_names() -> set[str]:
    """Every series name the bridge can expose (`_total`, `_bucket`, `_info`, ...)."""
    names: set[str] = set()
    for name, kind in metric_families().items():
        names.update(name + suffix for suffix in _SUFFIXES[kind])
    return names


def family_of(series: str) -> str | None:
    """The metric family a series name belongs to, or None."""
    for name, kind in metric_families().items():
        if any(series == name + suffix for suffix in _SUFFIXES[kind]):
            return name
    return None


def bridge_metric_names(promql: str) -> set[str]:
    """The `exmail_bridge_*` names a PromQL expression mentions."""
    return set(_METRIC_RE.findall(promql))


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    """Run promtool; fail the test (never skip) when it is not installed."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed: apt-get install prometheus (Debian's package ships "
            "it; .ci/run installs it)"
        )
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule in deploy/prometheus/alerts.yml."""
    groups = load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def markdown_anchors(path: Path) -> set[str]:
    """GitHub-style anchors of every heading in a Markdown file."""
    anchors: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            anchors.add(slug)
    return anchors
