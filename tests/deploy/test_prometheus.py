"""The Prometheus alert rules, their unit tests and the compose Prometheus config."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.deploy.support import (
    DOCS,
    K8S,
    PROMETHEUS,
    alert_rules,
    bridge_metric_names,
    exported_series_names,
    load_yaml,
    markdown_anchors,
    promtool,
)

SEVERITIES = {"critical", "warning", "info"}
# The alerts the deploy kit promises (issue "Operate it", item 5).
REQUIRED_ALERTS = {
    "ExmailBridgeDown",
    "ExmailBridgeUpstreamUnreachable",
    "ExmailBridgeListenFailuresHigh",
    "ExmailBridgeTenantsParked",
    "ExmailBridgeBacklogGrowing",
    "ExmailBridgeDeadLettersPresent",
    "ExmailBridgeDeadLettersIncreasing",
    "ExmailBridgeDeliveryLatencyHigh",
    "ExmailBridgeSinkFailingPermanently",
}


def test_promtool_check_rules_passes() -> None:
    """`promtool check rules alerts.yml` accepts the rule file."""
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    """`promtool test rules alerts_test.yml` passes every case."""
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_passes_for_compose_prometheus() -> None:
    """The compose Prometheus config, with its rule file, passes `promtool check config`."""
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_compose_prometheus_scrapes_the_bridge_job() -> None:
    """Prometheus scrapes job `exmail-bridge` on port 9464 and loads alerts.yml."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    dns = jobs["exmail-bridge"]["dns_sd_configs"][0]
    assert dns["names"] == ["bridge"]
    assert dns["port"] == 9464


def test_required_alerts_exist() -> None:
    """Every alert the deploy kit promises is defined."""
    assert {rule["alert"] for rule in alert_rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_has_for_severity_and_annotations(rule: dict[str, Any]) -> None:
    """Each alert has `for:`, a known severity, a summary, a description and a runbook."""
    assert rule.get("for"), "needs a for: so one bad scrape does not page"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook"].startswith("docs/deploy.md#")


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_runbook_anchor_exists_in_docs(rule: dict[str, Any]) -> None:
    """Each alert's runbook link points at a heading of docs/deploy.md."""
    anchor = rule["annotations"]["runbook"].partition("#")[2]
    assert anchor in markdown_anchors(DOCS)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_alert_uses_only_exported_metrics(rule: dict[str, Any]) -> None:
    """Each alert expression names only series that bridge.metrics exports."""
    used = bridge_metric_names(rule["expr"])
    assert used or "up{" in rule["expr"]
    assert used <= exported_series_names(), used - exported_series_names()


def _unit_test_cases() -> dict[str, dict[str, int]]:
    cases: dict[str, dict[str, int]] = defaultdict(lambda: {"firing": 0, "silent": 0})
    for test in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]:
        for case in test.get("alert_rule_test", []):
            cases[case["alertname"]]["firing" if case["exp_alerts"] else "silent"] += 1
    return cases


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_has_firing_and_silent_unit_tests(rule: dict[str, Any]) -> None:
    """alerts_test.yml has a case where each alert fires and one where it must not."""
    cases = _unit_test_cases()[rule["alert"]]
    assert cases["firing"] >= 1, "no case where it fires"
    assert cases["silent"] >= 1, "no case where it must stay silent"


def test_unit_tests_name_only_defined_alerts() -> None:
    """alerts_test.yml does not test an alert that no longer exists."""
    assert set(_unit_test_cases()) <= {rule["alert"] for rule in alert_rules()}


def test_k8s_scrape_snippet_keeps_only_bridge_pods() -> None:
    """The plain scrape-config snippet keeps pods labelled exmail-bridge on port `http`."""
    # promtool cannot check it here: Debian's build leaves out Kubernetes discovery.
    job = load_yaml(K8S / "prometheus-scrape.yml")["scrape_configs"][0]
    assert job["job_name"] == "exmail-bridge"
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    keeps = {
        (rule["source_labels"][0], rule["regex"])
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    assert keeps == {
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "exmail-bridge"),
        ("__meta_kubernetes_pod_container_port_name", "http"),
    }
