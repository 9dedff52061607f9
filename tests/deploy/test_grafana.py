"""The Grafana dashboard and its provisioning files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    GRAFANA,
    bridge_metric_names,
    exported_series_names,
    family_of,
    load_yaml,
    metric_families,
    promtool,
)

# Grafana's own variables, replaced by plain PromQL before promtool reads a query.
_GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_USER_VAR_RE = re.compile(r"\$\{?(job|instance)\}?")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboard.json").read_text(encoding="utf-8"))
    return data


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _panel_queries() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _template_queries() -> list[str]:
    return [var["definition"] for var in _dashboard()["templating"]["list"] if "definition" in var]


def _plain_promql(expr: str) -> str:
    for var, value in _GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return _USER_VAR_RE.sub(".*", expr)


def test_dashboard_has_stable_uid_and_unique_panel_ids() -> None:
    """The dashboard parses, has a fixed uid and no two panels share an id."""
    dashboard = _dashboard()
    assert dashboard["uid"] == "exmail-bridge"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_queries_the_selected_prometheus() -> None:
    """Every panel has a query and uses the dashboard's datasource variable."""
    for panel in _panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_queries_use_only_exported_metrics() -> None:
    """Every PromQL query (panels and variables) names only series bridge.metrics exports."""
    known = exported_series_names()
    for expr in _panel_queries() + _template_queries():
        used = bridge_metric_names(expr)
        assert used or "up{" in expr, expr
        assert used <= known, (expr, used - known)


def test_every_exported_metric_is_on_the_dashboard() -> None:
    """Each metric family of bridge.metrics appears in at least one panel."""
    shown = {family_of(name) for expr in _panel_queries() for name in bridge_metric_names(expr)}
    assert set(metric_families()) <= shown, set(metric_families()) - shown


def test_panel_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool accepts every panel query (Grafana variables substituted)."""
    rules = [
        {"record": f"dashboard:query{i}", "expr": _plain_promql(expr)}
        for i, expr in enumerate(_panel_queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "title",
    [
        "Listen connections by state",
        "Reconnects by reason",
        "Upstream errors by endpoint and code",
        "Token refreshes",
        "Events by type",
        "Deduplicated events",
        "Deliveries by sink and outcome",
        "Delivery duration p50 / p99 by sink",
        "Event latency p50 / p99 by sink",
        "Backlog by sink",
        "Dead letters by sink",
        "Tenants by state",
        "Build info",
    ],
)
def test_promised_panel_exists(title: str) -> None:
    """The dashboard carries each panel the deploy kit promises."""
    assert title in {p["title"] for p in _panels()}


def test_datasource_provisioning_points_at_compose_prometheus() -> None:
    """The provisioned datasource is the compose Prometheus, default, uid `prometheus`."""
    sources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = sources["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    assert source["isDefault"] is True


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    """The dashboard provider reads the folder compose mounts dashboard.json into."""
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "exmail-bridge.yml")
    (entry,) = provider["providers"]
    compose = load_yaml(GRAFANA.parent / "compose.yaml")
    targets = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]]
    assert f"{entry['options']['path']}/dashboard.json" in targets
