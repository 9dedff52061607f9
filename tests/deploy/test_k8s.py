"""The Kubernetes manifests: schema-valid offline, and consistent with each other."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from bridge.config import Config, parse_config
from tests.deploy.support import K8S, load_yaml, load_yaml_all

# Oldest and newest Kubernetes minor versions the manifests must satisfy; the schemas ship
# inside the kubernetes-validate wheel, so this needs no network.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# prometheus-operator CRDs are not in the core schema: checked structurally below.
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# Files in deploy/k8s that are not Kubernetes objects.
NOT_MANIFESTS = {"kustomization.yaml", "prometheus-scrape.yml"}
SECRET_EXAMPLE = "secret.example.yaml"


def _manifest_files() -> list[Path]:
    files = sorted(K8S.glob("*.y*ml"))
    return [path for path in files if path.name not in NOT_MANIFESTS]


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, doc) for p in _manifest_files() for doc in load_yaml_all(p)]


def _one(kind: str) -> dict[str, Any]:
    (doc,) = [doc for _, doc in _documents() if doc["kind"] == kind]
    return doc


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _one("Deployment")["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _pod_spec()["containers"]
    (container,) = containers
    return container


def _config_toml() -> str:
    text: str = _one("ConfigMap")["data"]["config.toml"]
    return text


def _config() -> Config:
    env = {key: str(value) for key, value in _one("Secret")["stringData"].items()}
    env["POD_NAME"] = "exmail-bridge-0"
    return parse_config(tomllib.loads(_config_toml()), env=env)


def _validate(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    ("name", "doc"),
    [item for item in _documents() if (item[1]["apiVersion"], item[1]["kind"]) not in CRDS],
    ids=lambda value: value if isinstance(value, str) else str(value.get("kind")),
)
def test_manifest_matches_kubernetes_schema(name: str, doc: dict[str, Any], version: str) -> None:
    """Each core manifest validates against the strict Kubernetes JSON schema."""
    _validate(doc, version)


def test_schema_validation_rejects_a_misspelled_field() -> None:
    """The strict schema catches a typo, so the validation above can fail."""
    doc = copy.deepcopy(_one("Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFileSystem"
    ] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(doc, K8S_VERSIONS[-1])


def test_crds_are_structurally_sound() -> None:
    """The ServiceMonitor has metadata, a selector and an endpoint on the Service's port."""
    monitor = _one("ServiceMonitor")
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(monitor["spec"]) <= {"jobLabel", "selector", "endpoints", "namespaceSelector"}
    service = _one("Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http"]
    assert ports == {"http", "public"}
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "exmail-bridge"


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    """kustomization.yaml applies every manifest, except the placeholder Secret."""
    resources = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    expected = {p.name for p in _manifest_files()} - {SECRET_EXAMPLE}
    assert resources == expected


def test_secret_example_holds_only_placeholders() -> None:
    """Every value of the example Secret is an obvious placeholder."""
    for key, value in _one("Secret")["stringData"].items():
        assert "REPLACE_ME" in value, key


def test_configmap_config_is_valid_for_the_redis_store() -> None:
    """The ConfigMap's config.toml validates and uses Redis, listening on 0.0.0.0:9464."""
    config = _config()
    assert config.bridge.store.startswith("redis://")
    assert config.bridge.http_listen == "0.0.0.0:9464"
    assert config.bridge.instance_id == "exmail-bridge-0"


def test_config_env_vars_are_provided_by_the_deployment() -> None:
    """Every ${VAR} in the config is set in the container's env (from the Secret or the pod)."""
    wanted = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", _config_toml()))
    provided = {env["name"] for env in _container()["env"]}
    assert wanted <= provided, wanted - provided


def test_secret_refs_name_keys_of_the_secret() -> None:
    """Each secretKeyRef names the exmail-bridge Secret and a key it has."""
    secret = _one("Secret")
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in _container()["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    ]
    assert refs
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_deployment_runs_two_replicas_with_probes() -> None:
    """Two replicas; exec probes run the CLI healthcheck (liveness) and --ready (readiness)."""
    assert _one("Deployment")["spec"]["replicas"] == 2
    container = _container()
    health = {"command": ["exmail-bridge", "healthcheck"]}
    assert container["startupProbe"]["exec"] == health
    assert container["livenessProbe"]["exec"] == health
    assert container["readinessProbe"]["exec"] == {"command": [*health["command"], "--ready"]}


def test_container_ports_are_the_configs_listeners() -> None:
    """The `http` and `public` container ports are the config's http_listen and public_listen."""
    config, container = _config(), _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(config.bridge.http_listen.rpartition(":")[2])
    assert config.bridge.public_listen is not None
    assert ports["public"] == int(config.bridge.public_listen.rpartition(":")[2])


def test_ingress_routes_only_the_public_port() -> None:
    """Every Ingress path goes to the Service's `public` port, over TLS, on public_url's host."""
    spec = _one("Ingress")["spec"]
    (rule,) = spec["rules"]
    backends = [p["backend"]["service"] for p in rule["http"]["paths"]]
    assert backends == [{"name": _one("Service")["metadata"]["name"], "port": {"name": "public"}}]
    assert spec["tls"][0]["hosts"] == [rule["host"]]
    assert _config().bridge.public_url == f"https://{rule['host']}"


def test_deployment_grace_exceeds_bridge_grace() -> None:
    """terminationGracePeriodSeconds leaves the bridge its grace_s plus a margin."""
    assert _pod_spec()["terminationGracePeriodSeconds"] > _config().bridge.grace_s + 5


def test_deployment_is_locked_down() -> None:
    """Non-root, read-only root filesystem with an emptyDir /tmp, no privilege escalation."""
    pod, container = _pod_spec(), _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert (
        volumes[mounts["/etc/exmail-bridge"]]["configMap"]["name"]
        == _one("ConfigMap")["metadata"]["name"]
    )


def test_deployment_sets_resource_requests_and_limits() -> None:
    """The container declares CPU and memory requests and a memory limit."""
    resources = _container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_service_and_pdb_select_the_pods() -> None:
    """The Service and the PodDisruptionBudget select the Deployment's pods."""
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _one("Service")["spec"]["selector"].items() <= pod_labels.items()
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["minAvailable"] < _one("Deployment")["spec"]["replicas"]
